"""Code generated from examples/shop/proto/catalog.proto (see proto/generate.sh)."""
