"""Ami command line: each command parses options and calls a Python API."""
