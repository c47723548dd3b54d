#!/bin/sh
# Regenerate the Python code for catalog.proto into examples/shop/apps/shopproto/.
# Needs grpcio-tools (only to generate: the apps import the committed files):
#   python -m pip install grpcio-tools==1.85.1
# Run from anywhere; PYTHON picks the interpreter that has grpc_tools.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="$here/../apps"
"${PYTHON:-python}" -m grpc_tools.protoc -Ishopproto="$here" \
    --python_out="$apps" --grpc_python_out="$apps" --pyi_out="$apps" \
    "$here/catalog.proto"
# Generated code is not ours to lint or format.
for f in "$apps"/shopproto/catalog_pb2.py "$apps"/shopproto/catalog_pb2_grpc.py \
         "$apps"/shopproto/catalog_pb2.pyi; do
    { printf '# ruff: noqa\n# fmt: off\n'; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
done
