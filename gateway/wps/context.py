"""What every WPS handler needs: the shared services, the authenticator and public URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from gateway.identity.auth import Authenticator
from gateway.services import Services


@dataclass(frozen=True)
class WpsContext:
    services: Services
    authenticator: Authenticator

    @property
    def base_url(self) -> str:
        return self.services.settings.server.base_url.rstrip("/")

    @property
    def wps_url(self) -> str:
        """The one WPS endpoint (GET for KVP, POST for XML)."""
        return f"{self.base_url}/wps"

    def status_url(self, job_id: str, *, lineage: bool = False) -> str:
        """WPS 1.0.0 ``statusLocation`` of a job (the live ExecuteResponse)."""
        url = f"{self.wps_url}/status/{quote(job_id, safe='')}"
        return f"{url}?lineage=true" if lineage else url

    @property
    def service_instance(self) -> str:
        return f"{self.wps_url}?service=WPS&request=GetCapabilities&version=1.0.0"

    @property
    def title(self) -> str:
        return self.services.settings.server.title

    @property
    def abstract(self) -> str:
        return self.services.settings.server.description

    @property
    def sync_timeout(self) -> float:
        return self.services.settings.server.sync_timeout_seconds
