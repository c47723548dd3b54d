"""Typed resources (Istio, Kubernetes, Ami kinds), YAML loading and validation. Pure."""
