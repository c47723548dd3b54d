"""Snapshot x proxy -> Envoy resources, one module per xDS type. Pure."""
