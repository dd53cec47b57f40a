# An EO Application Package in miniature: a Directory input (the STAC catalog the
# gateway stages from a STAC Item/Catalog href) and a Directory output holding a
# STAC catalog (published as the job's assets). Copies every asset of every Item.
cwlVersion: v1.2
class: CommandLineTool
id: stac-copy
label: Copy STAC assets
doc: Copies every asset of the Items of a STAC catalog into a new STAC catalog.
baseCommand: [python3, -c]
arguments:
  - |
    import json, pathlib, shutil, sys
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path("out")
    out.mkdir()
    links = [{"rel": "root", "href": "./catalog.json"}]
    for link in json.loads((src / "catalog.json").read_text())["links"]:
        if link["rel"] != "item":
            continue
        path = src / link["href"]
        item = json.loads(path.read_text())
        folder = out / item["id"]
        folder.mkdir()
        for key, asset in item["assets"].items():
            shutil.copy(path.parent / asset["href"], folder / ("copy-" + key + ".tif"))
            asset["href"] = "./copy-" + key + ".tif"
        item["links"] = []
        (folder / "item.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": "./" + item["id"] + "/item.json"})
        print(item["id"], sorted(item["assets"]))
    catalog = {"type": "Catalog", "id": "out", "stac_version": "1.0.0",
               "description": "copies", "links": links}
    (out / "catalog.json").write_text(json.dumps(catalog))
inputs:
  scenes:
    type: Directory
    label: STAC Item or Catalog
    inputBinding: {position: 1}
outputs:
  copies:
    type: Directory
    outputBinding: {glob: out}
  listing:
    type: stdout
    format: iana:text/plain
stdout: listing.txt
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
