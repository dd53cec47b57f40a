"""The ``echo`` process: returns its inputs as outputs (OGC API - Processes test suite)."""
