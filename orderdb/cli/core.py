"""CLI commands: core (filled in by its capability)."""
