"""Knative Serving. So far only the KPA autoscaler's decision (`kpa`, pure); the
Service → Revision expansion, the activator and metric collection are to come."""
