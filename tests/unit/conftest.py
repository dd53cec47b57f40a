"""Fixtures of the unit tier shared with the integration tier: the loopback file server."""

from tests.workflow_fixtures import file_server

__all__ = ["file_server"]
