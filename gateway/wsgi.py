"""gunicorn embedding for ``hpcgw serve``; also ``gateway.wsgi:application`` for other servers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from gateway.settings import Settings, load_settings


def application_factory(config: Path | None = None) -> Flask:
    from gateway.app import create_app

    settings = load_settings(config) if config else load_settings()
    # the serving command already migrated; N workers must not race on it
    settings.database.auto_upgrade = False
    return create_app(settings)


class GatewayServer(BaseApplication):
    """Runs the Flask app under gunicorn with settings-driven options."""

    def __init__(self, settings: Settings, config: Path | None) -> None:
        self._settings = settings
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        srv = self._settings.server
        options: dict[str, Any] = {
            "bind": f"{srv.host}:{srv.port}",
            "workers": srv.workers,
            "threads": srv.threads,
            "worker_class": "gthread",
            "timeout": int(srv.sync_timeout_seconds) + 30,
            "accesslog": "-",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return application_factory(self._config)


def __getattr__(name: str) -> Any:
    """``gateway.wsgi:application`` built lazily from $HPCGW_CONFIG."""
    if name == "application":
        return application_factory(
            Path(os.environ["HPCGW_CONFIG"]) if "HPCGW_CONFIG" in os.environ else None
        )
    raise AttributeError(name)
