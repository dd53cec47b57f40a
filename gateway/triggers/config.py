"""The ``triggers`` section of the settings (see ``deploy/config/gateway.example.yaml``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TriggerSettings(BaseModel):
    """How the worker polls trigger feeds."""

    #: Whether workers poll feeds at all (manual activations work either way).
    enabled: bool = True
    #: The named lease one worker holds while it polls (several workers, one poller).
    lease_seconds: float = Field(default=60.0, gt=0)
    #: Feeds polled per worker cycle at most (the most overdue first).
    batch: int = Field(default=20, ge=1, le=1000)
    #: Time limits of one feed request (connect + read, and the whole request).
    timeout_seconds: float = Field(default=20.0, gt=0)
    #: Largest feed or search answer read.
    max_feed_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    #: After a failed poll the feed is tried again after this long (or its interval if longer).
    error_retry_seconds: float = Field(default=60.0, gt=0)
    #: Shortest poll interval a rule may ask for (protects the feeds' providers).
    min_interval_seconds: float = Field(default=60.0, ge=0)
