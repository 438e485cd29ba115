"""blink-archiver: keep every Blink clip, exactly once."""

__version__ = "0.1.0"
