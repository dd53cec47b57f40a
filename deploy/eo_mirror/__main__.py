"""Command line of the demo EO mirror: ``python -m deploy.eo_mirror generate|serve|urls``.

* ``generate`` -- make the scenes and the STAC catalog once (cached) and print the folder;
* ``serve`` -- generate if needed, then serve the folder on loopback (foreground);
* ``urls`` -- print the URLs the demo and the README use (catalog, NDVI Item, its COG).

``deploy/eo_mirror/run.sh start|stop|status`` runs ``serve`` in the background.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deploy.eo_mirror.catalog import default_root, ensure_mirror, item_path
from deploy.eo_mirror.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MirrorServer,
    NotLoopback,
    check_loopback,
)

#: The scene the demo's NDVI job reads (4 bands: red is band 3, near-infrared band 4).
NDVI_ITEM = "demo-optical-20260601"


def mirror_urls(base: str) -> dict[str, str]:
    """The mirror's well-known URLs below ``base`` (``http://127.0.0.1:8190``)."""
    item = f"{base}/{item_path(NDVI_ITEM)}"
    return {
        "catalog": f"{base}/catalog.json",
        "ndvi_item": item,
        "ndvi_image": item.removesuffix(".json") + ".tif",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.eo_mirror", description=__doc__)
    parser.add_argument("command", choices=["generate", "serve", "urls"])
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {default_root()}")
    parser.add_argument("--host", default=DEFAULT_HOST, help="a loopback address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    if args.command == "urls":
        for name, url in mirror_urls(f"http://{args.host}:{args.port}").items():
            print(f"{name} {url}")
        return 0
    if args.command == "generate":
        print(ensure_mirror(args.dir))
        return 0
    try:
        check_loopback(args.host)  # before generating anything
    except NotLoopback as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = ensure_mirror(args.dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = MirrorServer(root, args.host, args.port)
    logging.getLogger("eo_mirror").info("serving %s on %s", root, server.url)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
