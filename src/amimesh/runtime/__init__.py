"""The local runtime: `ami up` runs a mesh's workloads, sidecars and gateway as processes."""
