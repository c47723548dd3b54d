"""Copy the mesh documents of an istio/istio checkout into tests/data/istio-samples/.

    python tools/istio_samples.py GIT_DIR COMMIT

Reads every `*.yaml`/`*.yml` under `samples/` and `tests/testdata/config/` at COMMIT
(`git show`, so GIT_DIR may be a bare mirror) and writes each mesh document, its text
unchanged, as a file of its own: `tests/data/istio-samples/PATH/STEM.N.yaml` (N its
index in the source file). A mesh document is one whose apiVersion's group is
networking.istio.io, security.istio.io, telemetry.istio.io or
gateway.networking.k8s.io, or a core `v1` Service. Files that are templates (`{{`) or
not YAML are skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

GROUPS = (
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "gateway.networking.k8s.io",
)
ROOTS = ("samples", "tests/testdata/config")
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "istio-samples"
_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


def is_mesh(doc: object) -> bool:
    if not isinstance(doc, dict):
        return False
    api = str(doc.get("apiVersion", ""))
    group = api.rpartition("/")[0]
    return group in GROUPS or (api == "v1" and doc.get("kind") == "Service")


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True
    ).stdout


def main(git_dir: str, commit: str) -> int:
    paths = git(git_dir, "ls-tree", "-r", "--name-only", commit, "--", *ROOTS).splitlines()
    written = 0
    for path in sorted(p for p in paths if p.endswith((".yaml", ".yml"))):
        text = git(git_dir, "show", f"{commit}:{path}")
        if "{{" in text:
            continue
        for n, chunk in enumerate(_SEPARATOR.split(text)):
            try:
                doc = yaml.safe_load(chunk)
            except yaml.YAMLError:
                continue
            if not is_mesh(doc):
                continue
            stem = path.rsplit(".", 1)[0]
            target = OUT / f"{stem}.{n}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(chunk.strip("\n") + "\n")
            written += 1
    print(f"{written} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
