"""The extra study's own modules (importable as ``extras.*`` from the repository root)."""
