"""Per-workload agent: Envoy bootstrap and the Envoy process."""
