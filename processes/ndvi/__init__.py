"""The ``ndvi`` process: NDVI GeoTIFF, PNG quicklook and statistics from a multi-band image."""
