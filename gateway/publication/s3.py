"""Published outputs in an S3 bucket (AWS, MinIO, Ceph RGW...): upload, links, deletion.

Objects are ``<prefix>/<job id>/<file>``. Uploads go through boto3's managed
transfer: files from ``multipart_threshold_bytes`` are sent as multipart
uploads, read from disk part by part, so memory stays bounded by about
``max_concurrency`` parts whatever the file size. Each object carries its
media type, its sha256 as user metadata (``x-amz-meta-sha256``) and an S3
SHA-256 checksum that the service verifies on receipt.

Links are either ``<public_base_url>/<key>`` (never expire) or pre-signed GET
URLs valid ``presign_expiry_seconds``, signed locally when asked for (no request).

Errors are :class:`PublicationError`: ``transient`` for what may pass (the
endpoint unreachable, timeouts, throttling, 5xx; botocore has already retried
them), permanent for configuration problems (no such bucket, access denied,
no credentials), each with a message an operator can act on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from gateway.settings_workflow import S3PublicationSettings
from gateway.workflow.errors import (
    PublicationError,
    TransientPublicationError,
    publication_error,
)

log = logging.getLogger(__name__)

_NO_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "InvalidToken",
        "ExpiredToken",
    }
)
_TRANSIENT = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})
#: Objects deleted per DeleteObjects request (the S3 maximum).
_DELETE_BATCH = 1000


@dataclass(frozen=True)
class Link:
    """A download URL of a published object, and when it stops working (None: never)."""

    href: str
    expires: datetime | None = None


def _secret(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8").strip() if path else None


def client_factory(settings: S3PublicationSettings) -> Callable[[], Any]:
    """A factory of boto3 S3 clients: key files, else ``profile``, else boto3's chain."""

    def factory() -> Any:
        config = Config(
            s3={"addressing_style": settings.addressing_style},
            signature_version="s3v4",
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            retries={"max_attempts": settings.retries + 1, "mode": "standard"},
        )
        keyed = settings.access_key_id_file or settings.secret_access_key_file
        session = boto3.session.Session(
            aws_access_key_id=_secret(settings.access_key_id_file),
            aws_secret_access_key=_secret(settings.secret_access_key_file),
            region_name=settings.region,
            profile_name=None if keyed else settings.profile,
        )
        return session.client(
            "s3", endpoint_url=settings.endpoint_url, config=config, verify=settings.verify_tls
        )

    return factory


class S3Outputs:
    """The bucket holding published outputs (one client, created on first use, shared)."""

    def __init__(
        self, settings: S3PublicationSettings, factory: Callable[[], Any] | None = None
    ) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._factory = factory or client_factory(settings)
        self._client: Any = None
        self._lock = threading.Lock()

    # -- naming -------------------------------------------------------------------

    def job_prefix(self, job_id: str) -> str:
        """``<prefix>/<job id>/`` -- every object of the job is under it."""
        return f"{self.settings.prefix}/{job_id}/" if self.settings.prefix else f"{job_id}/"

    def key(self, job_id: str, filename: str) -> str:
        return self.job_prefix(job_id) + filename

    def where(self, key: str = "", bucket: str | None = None) -> str:
        """``s3://bucket/key at <endpoint>``, for messages."""
        endpoint = self.settings.endpoint_url or f"AWS region {self.settings.region}"
        return f"s3://{bucket or self.bucket}/{key} ({endpoint})"

    # -- client -------------------------------------------------------------------

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._factory()
                except (BotoCoreError, OSError, ValueError) as exc:
                    raise PublicationError(f"cannot set up the S3 client: {exc}") from None
            return self._client

    # -- upload -------------------------------------------------------------------

    def upload(self, path: Path, key: str, content_type: str, sha256: str) -> None:
        """Upload ``path`` to ``key`` (multipart from the threshold), then check its size."""
        s = self.settings
        config = TransferConfig(
            multipart_threshold=s.multipart_threshold_bytes,
            multipart_chunksize=s.multipart_chunk_bytes,
            max_concurrency=s.max_concurrency,
        )
        extra = {
            "ContentType": content_type,
            "Metadata": {"sha256": sha256},
            "ChecksumAlgorithm": "SHA256",
        }
        client = self.client()
        manager = create_transfer_manager(client, config)
        try:
            with self._errors(key):
                manager.upload(str(path), self.bucket, key, extra_args=extra).result()
                head = client.head_object(Bucket=self.bucket, Key=key)
        except OSError as exc:
            raise TransientPublicationError(
                f"cannot read {path.name} to upload it: {exc}"
            ) from None
        finally:
            manager.shutdown()
        size = path.stat().st_size
        if head.get("ContentLength") != size:
            raise TransientPublicationError(
                f"{self.where(key)} holds {head.get('ContentLength')} bytes after uploading {size}"
            )

    # -- links --------------------------------------------------------------------

    def link(self, key: str, bucket: str | None = None) -> Link:
        """A public URL when ``public_base_url`` is set, else a fresh pre-signed GET URL."""
        public = self.settings.public_base_url
        if public and (bucket is None or bucket == self.bucket):
            return Link(f"{public}/{quote(key)}")
        expiry = self.settings.presign_expiry_seconds
        params = {"Bucket": bucket or self.bucket, "Key": key}
        with self._errors(key, bucket):
            href = self.client().generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expiry
            )
        return Link(href, datetime.now(UTC) + timedelta(seconds=expiry))

    # -- listing and deletion -----------------------------------------------------

    def _objects(self, prefix: str, bucket: str | None = None) -> Iterator[dict[str, Any]]:
        paginator = self.client().get_paginator("list_objects_v2")
        with self._errors(prefix, bucket):
            for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
                yield from page.get("Contents", [])

    def job_ids(self) -> list[str]:
        """Job ids with objects under the prefix (folders not named like a job are skipped)."""
        base = f"{self.settings.prefix}/" if self.settings.prefix else ""
        paginator = self.client().get_paginator("list_objects_v2")
        ids: list[str] = []
        with self._errors(base):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = str(common["Prefix"])[len(base) :].rstrip("/")
                    if _is_job_id(name):
                        ids.append(name)
        return sorted(ids)

    def job_bytes(self, job_id: str, bucket: str | None = None) -> int:
        return sum(int(o.get("Size", 0)) for o in self._objects(self.job_prefix(job_id), bucket))

    def delete_job(self, job_id: str, bucket: str | None = None) -> int:
        """Delete every object of ``job_id``; returns the bytes freed (0: nothing there)."""
        target = bucket or self.bucket
        objects = list(self._objects(self.job_prefix(job_id), target))
        client = self.client()
        for start in range(0, len(objects), _DELETE_BATCH):
            batch = [{"Key": o["Key"]} for o in objects[start : start + _DELETE_BATCH]]
            with self._errors(self.job_prefix(job_id), target):
                answer = client.delete_objects(
                    Bucket=target, Delete={"Objects": batch, "Quiet": True}
                )
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise TransientPublicationError(
                    f"cannot delete {self.where(first.get('Key', ''), target)}: "
                    f"{first.get('Code')} {first.get('Message', '')}".strip()
                )
        return sum(int(o.get("Size", 0)) for o in objects)

    # -- errors -------------------------------------------------------------------

    @contextmanager
    def _errors(self, key: str, bucket: str | None = None) -> Iterator[None]:
        """Turns boto3's errors raised in the block into :class:`PublicationError`."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, self.where(key, bucket)) from None


def _translate(exc: ClientError | BotoCoreError, where: str) -> PublicationError:
    """A boto3 error as a message naming the object, the cause and what to check."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PublicationError(
            f"{where}: no S3 credentials (set publication.s3.access_key_id_file and "
            "secret_access_key_file, a profile, or AWS_* variables)"
        )
    if isinstance(exc, BotoCoreError):
        return TransientPublicationError(f"{where}: S3 request failed: {exc}")
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = str(error.get("Message") or "").strip()
    if code in _NO_BUCKET:
        return PublicationError(f"{where}: the S3 bucket does not exist (publication.s3.bucket)")
    if code in _DENIED or status == 403:
        return PublicationError(
            f"{where}: S3 denied access ({code or status}; check publication.s3 credentials "
            "and the bucket policy)"
        )
    transient = code in _TRANSIENT or (isinstance(status, int) and status >= 500)
    detail = f"{where}: S3 answered {code or status}" + (f": {message}" if message else "")
    return publication_error(detail, transient=transient)


def _is_job_id(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
