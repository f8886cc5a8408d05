"""CLI commands: tracking (filled in by its capability)."""
