"""``s3://bucket/key`` inputs, read with boto3 from the configured endpoint, streamed.

The endpoint is operator configuration; the bucket and key come from the
user. Addressing is path-style (the bucket never becomes part of a host
name), and the endpoint's address is checked by the egress policy before
each fetch, like any other outbound request. botocore retries transient
errors itself (``standard`` mode); what remains is reported as transient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.egress import EgressPolicy, EgressRefused, UnresolvableHost
from gateway.settings_workflow import S3Settings
from gateway.staging.base import CHUNK, FetchResult, HashingSink, StagingError, Validators
from gateway.staging.reference import parse_s3
from gateway.workflow.errors import TransientStagingError, staging_error

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


def _secret(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8").strip() if path else None


def s3_client_factory(
    settings: S3Settings, connect_timeout: float, read_timeout: float, retries: int
) -> Callable[[], Any]:
    """A factory of boto3 S3 clients for ``settings`` (credentials read from files)."""

    def factory() -> Any:
        # boto3 (~10 MiB, and more per client) is loaded by the first s3:// input only
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": retries + 1, "mode": "standard"},
            signature_version=UNSIGNED if settings.anonymous else None,
            proxies={},
        )
        session = boto3.session.Session(
            aws_access_key_id=_secret(settings.access_key_id_file),
            aws_secret_access_key=_secret(settings.secret_access_key_file),
            region_name=settings.region,
        )
        return session.client(
            "s3", endpoint_url=settings.endpoint_url, config=config, verify=settings.verify_tls
        )

    return factory


class S3Fetcher:
    """Streams S3 objects into a :class:`HashingSink`."""

    def __init__(
        self, settings: S3Settings, policy: EgressPolicy, client_factory: Callable[[], Any]
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.client_factory = client_factory

    def endpoint(self) -> str:
        return self.settings.endpoint_url or f"https://s3.{self.settings.region}.amazonaws.com"

    def check_endpoint(self) -> None:
        """The endpoint's address must pass the egress policy (raises EgressError)."""
        self.policy.check_url(self.endpoint())

    def fetch(self, url: str, sink: HashingSink, known: Validators | None = None) -> FetchResult:
        bucket, key = parse_s3(url)
        try:
            self.check_endpoint()
        except EgressRefused as exc:
            raise StagingError(f"{url}: the S3 endpoint is not reachable: {exc.detail}") from None
        except UnresolvableHost as exc:
            raise TransientStagingError(f"{url}: {exc.detail}") from None
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if known is not None and known.etag:
            params["IfNoneMatch"] = known.etag
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client_factory()
        try:
            try:
                obj = client.get_object(**params)
            except ClientError as exc:
                return self._client_error(url, exc, known)
            sink.check_announced(obj.get("ContentLength"))
            body = obj["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    sink.write(chunk)
            finally:
                body.close()
        except BotoCoreError as exc:
            raise TransientStagingError(f"{url}: S3 request failed ({exc})") from None
        finally:
            client.close()
        validators = Validators(obj.get("ETag"), None)
        return FetchResult(sink.size, sink.sha256, validators, obj.get("ContentType"))

    @staticmethod
    def _client_error(url: str, exc: ClientError, known: Validators | None) -> FetchResult:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if (code == "304" or status == 304) and known is not None:
            return FetchResult(validators=known, not_modified=True)
        if code in _NOT_FOUND:
            raise StagingError(f"{url}: no such S3 object") from None
        if code in _DENIED:
            raise StagingError(f"{url}: access to the S3 object was denied") from None
        transient = isinstance(status, int) and status >= 500
        raise staging_error(f"{url}: S3 answered {code or status}", transient=transient) from None
