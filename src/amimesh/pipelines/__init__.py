"""Tekton Pipelines on Ami: the graph, substitution, `when`, run state (pure:
`values`, `taskplan`, `when`, `records`, `scheduler`) and the runner that runs each
step as a process (`runner`, `pipelinerunner`). See docs/pipelines.md."""
