"""Aggregated Discovery Service (SotW and delta) and per-proxy state."""
