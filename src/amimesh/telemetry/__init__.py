"""Telemetry: Istio's standard metrics from the proxies' access log streams, and traces."""
