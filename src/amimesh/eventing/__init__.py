"""Knative Eventing on the mesh: filters, delivery rules and the expansion (pure); the
broker process (ingress and dispatcher on NATS JetStream) and its store (I/O)."""
