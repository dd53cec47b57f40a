// The job page: poll the job's JSON status until it is final (then reload once to show the
// results), and draw the results' footprint with Leaflet on a plain background (tiles only
// when configured). No inline script: the page's Content-Security-Policy forbids it.
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var bar = document.getElementById("job-progress-bar");

  function setProgress(value) {
    bar.style.width = value + "%";
    bar.textContent = value + "%";
    document.getElementById("job-progress").setAttribute("aria-valuenow", String(value));
  }
  setProgress(parseInt(bar.getAttribute("data-width") || "0", 10));

  function show(doc) {
    var badge = document.getElementById("job-status");
    badge.textContent = doc.status;
    badge.className = "badge fs-6 status-" + doc.status;
    setProgress(doc.progress || 0);
    document.getElementById("job-message").textContent = doc.message || "";
    if (doc.slurmJobId) { document.getElementById("job-slurm-id").textContent = doc.slurmJobId; }
    if (doc.started) { document.getElementById("job-started").textContent = doc.started; }
  }

  function poll() {
    fetch(root.getAttribute("data-status-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { throw new Error("signed out"); }
        return r.json();
      })
      .then(function (doc) {
        show(doc);
        if (["successful", "failed", "dismissed"].indexOf(doc.status) >= 0) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1500);
        }
      })
      .catch(function () {
        document.getElementById("job-message").textContent =
          "The status could not be read (signed out?): reload the page.";
      });
  }
  if (root.getAttribute("data-final") !== "true") { window.setTimeout(poll, 1000); }

  var itemUrl = root.getAttribute("data-item-url");
  var mapDiv = document.getElementById("map");
  if (itemUrl && mapDiv && window.L) {
    fetch(itemUrl, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (item) {
        var map = L.map(mapDiv, { attributionControl: true });
        var tiles = root.getAttribute("data-tiles");
        if (tiles) {
          L.tileLayer(tiles, { attribution: root.getAttribute("data-attribution") || "" }).addTo(map);
        }
        var layer = L.geoJSON(item.geometry, { style: { color: "#198754", weight: 2, fillOpacity: 0.25 } });
        layer.addTo(map);
        map.fitBounds(layer.getBounds(), { padding: [20, 20] });
        mapDiv.setAttribute("data-drawn", "true");
      });
  }
})();
