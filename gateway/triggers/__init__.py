"""Triggers: stored rules that start jobs on events (geObservatory-style).

Module map: ``records`` (the rule a user writes, the stored records),
``events`` (events, the FDSN event GeoJSON feed, criteria), ``template``
(``{{event.*}}`` placeholders in the input template), ``stac_search`` (the
STAC item-search source), ``tables``/``store`` (the database, once-per-event
activations), ``service`` (owner-isolated management, firing as the owner),
``poller`` (the worker stage polling feeds under a named lease), ``config``
(settings), ``routes`` (``/triggers``) and ``cli`` (``hpcgw triggers``).
See ``docs/triggers.md``.
"""
