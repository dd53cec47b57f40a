"""gunicorn embedding for ``hpcgw serve``; also ``gateway.wsgi:application`` for other servers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from gateway.settings import Settings, load_settings


def application_factory(config: Path | None = None) -> Flask:
    from gateway.app import create_app

    settings = load_settings(config) if config else load_settings()
    # the serving command already migrated; N workers must not race on it
    settings.database.auto_upgrade = False
    return create_app(settings)


class GatewayLogs(glogging.Logger):
    """gunicorn's error and access lines through the gateway's own handler, so they come
    in the configured format (JSON lines too: gateway.logs) rather than gunicorn's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


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
            "logger_class": GatewayLogs,
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
