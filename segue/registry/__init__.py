"""The model registry: versions, aliases, promotion gates, lineage and the audit log."""
