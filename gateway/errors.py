"""Gateway exception tree and its OGC exception documents (RFC 7807 shape).

Only the gateway maps errors to HTTP. Each class carries its HTTP status and
the OGC exception ``type`` URI; the HTTP surfaces render them as
``{"type", "title", "status", "detail"}`` (OGC API) or as an OWS
ExceptionReport (WPS) -- never a stack trace::

    GatewayError
    ├── BadRequest            400  malformed JSON, bad query parameter
    │   └── InvalidInput      400  inputs do not match the process description
    ├── Unauthorized          401  missing or invalid bearer token
    ├── Forbidden             403  role missing, user not provisioned
    │   ├── QuotaExceeded     403  the quote would exceed a budget
    │   └── ImmutableProcess  403  replace/undeploy of a built-in process (Part 2)
    ├── NoSuchProcess         404
    ├── NoSuchJob             404  unknown job, or another user's job
    ├── ResultNotReady        404  results of an unfinished job
    ├── JobFailed             500  results of a failed job (the job's own exception)
    ├── NotAcceptable         406
    ├── DuplicateProcess      409  deploy of an id that exists (Part 2)
    ├── Conflict              409  refused by the resource's current state (relink)
    ├── PayloadTooLarge       413
    ├── UnsupportedMediaType  415
    └── ServiceUnavailable    503  the job store or site cannot be reached
"""

from __future__ import annotations

from typing import Any

_BASE = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
_COMMON = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/"
_PART2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0/"


class GatewayError(Exception):
    """Base of errors that become an OGC exception document."""

    status: int = 500
    type_uri: str = _COMMON + "server-error"
    title: str = "Internal server error"
    #: The WPS exceptionCode this error maps to.
    wps_code: str = "NoApplicableCode"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        return doc


class BadRequest(GatewayError):
    status = 400
    type_uri = _COMMON + "bad-request"
    title = "Bad request"
    wps_code = "InvalidParameterValue"


class InvalidInput(BadRequest):
    type_uri = _BASE + "invalid-input"
    title = "Invalid input"


class Unauthorized(GatewayError):
    status = 401
    type_uri = _COMMON + "unauthorized"
    title = "Authentication required"


class Forbidden(GatewayError):
    status = 403
    type_uri = _COMMON + "forbidden"
    title = "Forbidden"


class QuotaExceeded(Forbidden):
    type_uri = _BASE + "quota-exceeded"
    title = "Budget exceeded"


class ImmutableProcess(Forbidden):
    type_uri = _PART2 + "immutable-process"
    title = "Immutable process"


class NoSuchProcess(GatewayError):
    status = 404
    type_uri = _BASE + "no-such-process"
    title = "No such process"
    wps_code = "NoSuchProcess"


class NoSuchJob(GatewayError):
    status = 404
    type_uri = _BASE + "no-such-job"
    title = "No such job"
    wps_code = "NoSuchJob"


class ResultNotReady(GatewayError):
    status = 404
    type_uri = _BASE + "result-not-ready"
    title = "Result not ready"
    wps_code = "ResultNotReady"


class JobFailed(GatewayError):
    """Results were asked of a failed job; the detail is the job's own failure."""

    status = 500
    type_uri = _BASE + "job-failed"
    title = "Job failed"


class NotAcceptable(GatewayError):
    status = 406
    type_uri = _COMMON + "not-acceptable"
    title = "Not acceptable"


class DuplicateProcess(GatewayError):
    status = 409
    type_uri = _PART2 + "duplicated-process"
    title = "Duplicated process"


class Conflict(GatewayError):
    status = 409
    type_uri = _COMMON + "conflict"
    title = "Conflict"


class NotFound(GatewayError):
    status = 404
    type_uri = _COMMON + "not-found"
    title = "Not found"


class MethodNotAllowed(GatewayError):
    status = 405
    type_uri = _COMMON + "method-not-allowed"
    title = "Method not allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type_uri = _COMMON + "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type_uri = _COMMON + "unsupported-media-type"
    title = "Unsupported media type"


class ServiceUnavailable(GatewayError):
    status = 503
    type_uri = _COMMON + "service-unavailable"
    title = "Service unavailable"
