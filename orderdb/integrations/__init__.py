"""Integrations: carrier plugins and polling, signed HTTP ingestion of carrier and WMS events."""
