"""The coherence process (windowed coherence and intensity change of a complex pair)."""
