"""Importers: copy another tool's store into Segue (``segue import …``)."""
