"""The control plane process: store -> snapshot -> translate -> xDS."""
