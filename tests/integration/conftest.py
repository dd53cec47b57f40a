"""Fixtures of the integration tier: loopback file server, S3 endpoint, callback receiver."""

from tests.workflow_fixtures import callback_receiver, file_server, s3_endpoint

__all__ = ["callback_receiver", "file_server", "s3_endpoint"]
