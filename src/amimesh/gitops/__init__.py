"""Argo CD Applications as a config source: fetch a revision with `git` (`repo`), pick
and parse its manifests within bounds (`manifests`), compare them with what the mesh
runs (`compare`), and judge the resources' health (`health`). The control plane's
GitOps controller (`amimesh.controlplane.gitops`) puts them together."""
