"""The sar-change process (log-ratio amplitude change of a SAR pair)."""
