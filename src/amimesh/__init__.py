"""Ami: a service mesh and serverless platform with Envoy as its data plane."""

__version__ = "0.1.0"
