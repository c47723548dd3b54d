"""The web dashboard: live service graph, golden metrics, traces, config and sync state."""
