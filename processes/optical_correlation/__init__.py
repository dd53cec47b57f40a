"""The optical-correlation process (sub-pixel displacement of an optical pair)."""
