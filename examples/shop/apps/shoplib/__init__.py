"""What every shop service shares: the HTTP server shell, header propagation, calls."""
