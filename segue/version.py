"""The installed version of Segue, importable without the facade."""

__version__ = "0.1.0"
