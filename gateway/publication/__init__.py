"""What happens to a job's outputs once it has run, apart from the worker loop.

* :mod:`.publisher` -- check the runner's manifest, copy outputs to the
  publication store (local folder or S3) and build the OGC results mapping;
* :mod:`.s3` -- the S3 backend (uploads, links, deletion);
* :mod:`.footprint` -- size, sha256, media type and raster footprint of each file;
* :mod:`.stac_items` -- the STAC Item of a successful job and the per-user catalog;
* :mod:`.retention` -- ``hpcgw cleanup``: expiry of published outputs, cache bound.

The worker (:mod:`gateway.workflow.finaliser`) calls the publisher; the HTTP
routes read links and STAC documents from here.
"""
