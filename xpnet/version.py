"""xpnet's version, in a module of its own so that any layer can read it without importing the whole
public API (``xpnet/__init__.py`` imports everything)."""

__version__ = "0.1.0"
