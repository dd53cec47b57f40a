"""Test servers for triggers and nearline inputs (test fixtures only, never product code).

EMSC's and USGS's FDSN event services, a provider's STAC API and a tape
archive are not reachable from the test machines, so the tests run small
loopback servers that answer in the real formats and protocols instead:

* :class:`FeedServer` -- an FDSN event web service's GeoJSON answer
  (``/fdsnws/event/1/query``): a FeatureCollection of Point features
  ``[lon, lat, depth]`` with ``mag``, ``time`` (ms since the epoch, as USGS;
  ``iso_times=True``: ISO text and ``depth``/``flynn_region`` as EMSC) and
  honouring ``If-None-Match`` / ``If-Modified-Since`` with ``304``; ``/broken``
  answers text that is not GeoJSON.
* :class:`StacSearchServer` -- a STAC API item search (``POST /search``),
  filtering its items by collection, bbox and datetime as a STAC API does,
  and their assets at ``/data/<name>``.
* :class:`TapeServer` -- a nearline archive: ``/tape/<name>`` answers ``202
  Accepted`` with ``Retry-After`` the first ``n`` times (staging from tape),
  then the file; ``/busy/<name>`` answers ``503`` with ``Retry-After`` instead.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Quake:
    """One earthquake of the test feed."""

    id: str
    lon: float
    lat: float
    depth_km: float
    mag: float
    time: datetime = field(default_factory=lambda: datetime(2026, 12, 7, 6, 0, tzinfo=UTC))
    region: str = "TEST REGION"


def fdsn_geojson(quakes: list[Quake], iso_times: bool = False) -> dict[str, Any]:
    """The FDSN event GeoJSON of ``quakes`` (USGS layout, or EMSC's with ``iso_times``)."""
    features = []
    for q in quakes:
        if iso_times:  # EMSC: ISO time, depth and region in the properties, z negated
            props: dict[str, Any] = {
                "unid": q.id,
                "time": q.time.isoformat().replace("+00:00", "Z"),
                "lat": q.lat,
                "lon": q.lon,
                "depth": q.depth_km,
                "mag": q.mag,
                "magtype": "mw",
                "flynn_region": q.region,
            }
            coords = [q.lon, q.lat, -q.depth_km]
        else:  # USGS: time in ms, depth as the third coordinate
            props = {"mag": q.mag, "time": int(q.time.timestamp() * 1000), "place": q.region}
            coords = [q.lon, q.lat, q.depth_km]
        features.append(
            {
                "type": "Feature",
                "id": q.id,
                "properties": props,
                "geometry": {"type": "Point", "coordinates": coords},
            }
        )
    return {"type": "FeatureCollection", "metadata": {"count": len(features)}, "features": features}


class _Server:
    """A ThreadingHTTPServer on a free loopback port; counts requests by path."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.not_modified = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.requests[self.path.split("?")[0]] += 1
                outer.get(self)

            def do_POST(self) -> None:
                with outer.lock:
                    outer.requests[self.path.split("?")[0]] += 1
                length = int(self.headers.get("Content-Length") or 0)
                outer.post(self, self.rfile.read(length))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 404, b"")

    def post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        send(handler, 404, b"")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class FeedServer(_Server):
    """FDSN event GeoJSON at ``/fdsnws/event/1/query`` (conditional requests honoured)."""

    def __init__(self, iso_times: bool = False) -> None:
        self.quakes: list[Quake] = []
        self.iso_times = iso_times
        self.modified = time.time()
        super().__init__()

    @property
    def query_url(self) -> str:
        return f"{self.url}/fdsnws/event/1/query?format=geojson&orderby=time"

    def publish(self, *quakes: Quake) -> None:
        with self.lock:
            self.quakes.extend(quakes)
            self.modified = time.time() + 1  # a later Last-Modified than any served

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        if path == "/broken":
            send(handler, 200, b"<html>maintenance</html>", {"Content-Type": "text/html"})
            return
        if path != "/fdsnws/event/1/query":
            send(handler, 404, b"")
            return
        with self.lock:
            body = json.dumps(fdsn_geojson(self.quakes, self.iso_times)).encode()
            modified = email.utils.formatdate(int(self.modified), usegmt=True)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        validators = {"ETag": etag, "Last-Modified": modified}
        if handler.headers.get("If-None-Match") == etag:
            with self.lock:
                self.not_modified += 1
            send(handler, 304, b"", validators)
            return
        send(handler, 200, body, {"Content-Type": "application/json", **validators})


class StacSearchServer(_Server):
    """``POST /search`` over a list of STAC Items (collections, bbox, datetime filters)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.searches: list[dict[str, Any]] = []
        #: The assets' content, served at ``/data/<name>``.
        self.files: dict[str, bytes] = {}
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        kind, _, name = handler.path.lstrip("/").partition("/")
        if kind == "data" and name in self.files:
            send(handler, 200, self.files[name], {"Content-Type": "image/tiff"})
            return
        send(handler, 404, b"")

    def add_item(
        self, collection: str, item_id: str, bbox: list[float], when: datetime, asset: str
    ) -> None:
        minx, miny, maxx, maxy = bbox
        ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
        self.items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": item_id,
                "collection": collection,
                "bbox": bbox,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"datetime": when.isoformat().replace("+00:00", "Z")},
                "assets": {asset: {"href": f"{self.url}/data/{item_id}.tif", "type": "image/tiff"}},
                "links": [
                    {"rel": "self", "href": f"{self.url}/collections/{collection}/items/{item_id}"}
                ],
            }
        )

    def post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.path != "/search":
            send(handler, 404, b"")
            return
        search = json.loads(body)
        self.searches.append(search)
        found = [i for i in self.items if _selected(i, search)]
        doc = {"type": "FeatureCollection", "features": found, "links": []}
        send(handler, 200, json.dumps(doc).encode(), {"Content-Type": "application/geo+json"})


def _selected(item: dict[str, Any], search: dict[str, Any]) -> bool:
    if item["collection"] not in search.get("collections", [item["collection"]]):
        return False
    bbox = search.get("bbox")
    if bbox is not None:
        minx, miny, maxx, maxy = item["bbox"]
        if minx > bbox[2] or maxx < bbox[0] or miny > bbox[3] or maxy < bbox[1]:
            return False
    start = (search.get("datetime") or "../..").split("/")[0]
    if start not in ("", ".."):
        when = datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        if when < datetime.fromisoformat(start.replace("Z", "+00:00")):
            return False
    return True


class TapeServer(_Server):
    """A nearline archive: ``/tape/<name>`` answers 202 ``waits`` times, then the file;
    ``/busy/<name>`` answers 503 with ``Retry-After`` ``waits`` times."""

    def __init__(self, files: dict[str, bytes], waits: int, retry_after: int = 1) -> None:
        self.files = files
        self.left: Counter[str] = Counter({name: waits for name in files})
        self.retry_after = retry_after
        self.answers: list[tuple[str, int]] = []
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Range") == "bytes=0-0":  # the admission probe
            send(handler, 206, b"x", {"Content-Range": "bytes 0-0/*"})
            return
        kind, _, name = handler.path.lstrip("/").partition("/")
        if kind not in ("tape", "busy") or name not in self.files:
            send(handler, 404, b"")
            return
        with self.lock:
            waiting = self.left[name] > 0
            self.left[name] -= 1
        if waiting:
            status = 202 if kind == "tape" else 503
            self.answers.append((name, status))
            text = b'{"status": "staging from tape"}'
            send(handler, status, text, {"Retry-After": str(self.retry_after)})
            return
        self.answers.append((name, 200))
        send(handler, 200, self.files[name], {"Content-Type": "application/octet-stream"})


@contextmanager
def serving(server: _Server) -> Iterator[Any]:
    try:
        yield server
    finally:
        server.close()
