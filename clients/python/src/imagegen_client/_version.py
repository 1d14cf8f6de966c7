"""The distribution's version (read by setuptools, sent in the User-Agent)."""

__version__ = "0.1.0"
