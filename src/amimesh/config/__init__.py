"""Config store (last good config, errors) and config sources (directory watch)."""
