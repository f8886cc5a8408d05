"""CLI commands: events (filled in by its capability)."""
