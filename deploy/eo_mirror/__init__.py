"""The demo's local EO mirror: generated sample scenes in a static STAC catalog over HTTP.

DEVELOPMENT AND DEMO ONLY (see ``deploy/eo_mirror/README.md``). Independent of
the gateway: :mod:`.scenes` draws the synthetic COGs (an optical pair with a
known shift, a SAR-like pair with a known change), :mod:`.catalog` writes the
STAC catalog once into a cache folder, :mod:`.server` serves it on loopback.
"""
