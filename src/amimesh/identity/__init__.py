"""Workload identity: the CA, SPIFFE IDs, CSRs and when to renew.

Pure: `spiffe`, `pem`, `csr`, `ca`, `issued`, `rotation` (values in, values out; the
time is a parameter). I/O at the edge: `store` (the CA's files). `service` is the
control plane's in-process API: token grants and CSR signing.
"""
