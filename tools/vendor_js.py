"""Vendor the dashboard's JavaScript dependency (cytoscape.js) from the npm registry.

    python tools/vendor_js.py            # download if needed, verify, extract
    python tools/vendor_js.py --check    # exit 1 unless the vendored files are in place

Downloads one pinned version's tarball, checks it against the pinned Subresource
Integrity value (`dist.integrity` in the registry's metadata for that version) and
writes `dist/cytoscape.min.js` and `LICENSE` into the dashboard's `static/vendor/`
(git-ignored), plus `vendored.json`, which records what was extracted and the
SHA-256 of each file. When that record matches the pin and the files their digests,
nothing is downloaded: `make venv` runs this on every fresh install.

Standard library only, so it runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "src" / "amimesh" / "dashboard" / "static" / "vendor"
RECORD = "vendored.json"

PACKAGE = "cytoscape"
VERSION = "3.34.4"
# `dist.integrity` of https://registry.npmjs.org/cytoscape/3.34.4 (SRI, sha512).
INTEGRITY = (
    "sha512-"
    "msY99tMY8iWTg+sIPGfSqDcPNOt4xcj+v/K/7qUFaCUxxlqnMkUYLBjRUzn9W5CU/R2hrmtJa5+UtovrEM2ctg=="
)
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
# Path in the tarball → file name in DEST.
FILES = {
    "package/dist/cytoscape.min.js": "cytoscape.min.js",
    "package/LICENSE": "LICENSE",
}
MAX_TARBALL = 64 * 1024 * 1024
TIMEOUT_S = 60.0
ATTEMPTS = 3


class VendorError(Exception):
    pass


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_record() -> dict[str, object]:
    return {"package": PACKAGE, "version": VERSION, "integrity": INTEGRITY}


def up_to_date(dest: Path = DEST) -> bool:
    """The pinned version is extracted in `dest` and its files are unchanged."""
    try:
        record = json.loads((dest / RECORD).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    if any(record.get(k) != v for k, v in expected_record().items()):
        return False
    digests = record.get("files")
    if not isinstance(digests, dict) or set(digests) != set(FILES.values()):
        return False
    try:
        return all(sha256_file(dest / name) == digests[name] for name in FILES.values())
    except OSError:
        return False


def check_integrity(data: bytes, integrity: str = INTEGRITY) -> None:
    algorithm, _, want = integrity.partition("-")
    if algorithm != "sha512":
        raise VendorError(f"unsupported integrity algorithm {algorithm!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != want:
        raise VendorError(
            f"{TARBALL}: integrity mismatch: got sha512-{got}, pinned {integrity}; "
            "refusing to use it"
        )


def download(url: str = TARBALL) -> bytes:
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(2.0 * attempt)
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "amimesh-vendor-js"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                data: bytes = response.read(MAX_TARBALL + 1)
        except (urllib.error.URLError, OSError) as err:
            last = err
            continue
        if len(data) > MAX_TARBALL:
            raise VendorError(f"{url}: larger than {MAX_TARBALL} bytes")
        return data
    raise VendorError(f"cannot download {url}: {last}")


def extract(data: bytes) -> dict[str, bytes]:
    """The wanted files of the tarball, by their name in DEST (regular files only;
    nothing else of the archive is read or written)."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member_name, name in FILES.items():
            try:
                member = tar.getmember(member_name)
            except KeyError:
                raise VendorError(f"{TARBALL}: {member_name} is missing") from None
            if not member.isfile():
                raise VendorError(f"{TARBALL}: {member_name} is not a regular file")
            f = tar.extractfile(member)
            if f is None:
                raise VendorError(f"{TARBALL}: cannot read {member_name}")
            with f:
                out[name] = f.read()
    return out


def write(files: dict[str, bytes], dest: Path = DEST) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        tmp = dest / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, dest / name)
    record = {
        **expected_record(),
        "tarball": TARBALL,
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
    }
    tmp = dest / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, dest / RECORD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only check the vendored files; exit 1 if not"
    )
    args = parser.parse_args(argv)
    rel = DEST.relative_to(ROOT)
    if up_to_date():
        print(f"{PACKAGE} {VERSION}: up to date in {rel}")
        return 0
    if args.check:
        print(f"{PACKAGE} {VERSION}: missing or changed in {rel}", file=sys.stderr)
        return 1
    try:
        data = download()
        check_integrity(data)
        write(extract(data))
    except (VendorError, tarfile.TarError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{PACKAGE} {VERSION}: verified and extracted into {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
