"""The immutable, indexed snapshot of the mesh. Pure."""
