"""A local mirror of a git repository, read with the `git` command.

    repo = Mirror(url, state_dir / "gitops" / "repos")
    repo.fetch()                        # clone once, then fetch every ref (pruned)
    commit = repo.resolve("main")       # a branch, a tag, a commit, HEAD
    entries = repo.tree(commit, "web", recurse=True)   # bounded listing with sizes
    blobs = repo.read([e.oid for e in entries])        # contents, sizes checked first

Nothing from the repository reaches a shell: every command is an argument list, a
revision is resolved with `--end-of-options` after it was refused if it starts with
`-`, and a tree is only read through the commit id git resolved. A listing is cut at
`MAX_ENTRIES`, and contents are read only after their sizes were added up.

A repository is local (a path, `file://`) or public over `https://` or `http://`: git
may use those transports and no other (no `ext::` command, no ssh). A clone or fetch
is bounded in time (`FETCH_TIMEOUT_S`) and in the size of the mirror on disk
(`MAX_REPO_BYTES`, watched while git writes it): past either, git is stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from amimesh.gitops.manifests import Entry
from amimesh.gitops.repocreds import Credentials

TIMEOUT_S = 60.0
FETCH_TIMEOUT_S = 300.0  # a clone or fetch, which may come over the network
MAX_REPO_BYTES = 512 * 1024 * 1024  # a mirror on disk
REMOTE_SCHEMES = ("https://", "http://")
# The transports git may take: a local path and HTTP(S) only.
_PROTOCOLS = (
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.file.allow=always",
    "-c",
    "protocol.http.allow=always",
    "-c",
    "protocol.https.allow=always",
)
_WATCH_S = 0.25  # how often a running clone or fetch is measured
MAX_ENTRIES = 100_000  # entries of one listed tree
_MAX_LISTING = MAX_ENTRIES * 512  # bytes of `ls-tree` output read at most
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


class GitError(RuntimeError):
    """A git command failed; the message is git's own, cut short."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    return env


def git(args: Sequence[str], *, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """Run `git ARGS` (no shell); its stdout, or `GitError` with its stderr."""
    try:
        done = subprocess.run(
            ["git", "-c", "core.hooksPath=/dev/null", *_PROTOCOLS, *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT_S,
            env=_env(),
            check=False,
        )
    except FileNotFoundError:
        raise GitError("the git command is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {TIMEOUT_S:.0f}s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError("; ".join(message[-3:])[:500] or f"git {args[0]} failed")
    return done.stdout


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_SCHEMES)


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


# A credential helper that answers git's `get` with the username and password of its
# environment: the password is in no argument list and in no file.
_HELPER = (
    '!f() { test "$1" = get && '
    'printf \'username=%s\\npassword=%s\\n\' "$AMI_GIT_USERNAME" "$AMI_GIT_PASSWORD"; }; f'
)


def bounded_git(
    args: Sequence[str],
    *,
    watch: Path,
    cwd: Path | None = None,
    timeout_s: float = FETCH_TIMEOUT_S,
    max_bytes: int | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Run `git ARGS` that writes into `watch` (a clone, a fetch): stopped, with
    `GitError`, once it runs longer than `timeout_s` or `watch` holds more than
    `max_bytes` (default `MAX_REPO_BYTES`). With `credentials`, git gets them from a
    credential helper (and from no other)."""
    if max_bytes is None:
        max_bytes = MAX_REPO_BYTES
    cmd = ["git", "-c", "core.hooksPath=/dev/null", *_PROTOCOLS]
    env = _env()
    if credentials is not None:
        cmd += ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"]
        env.update(AMI_GIT_USERNAME=credentials.username, AMI_GIT_PASSWORD=credentials.password)
    cmd += list(args)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                # Its own process group: git's helpers (`git-remote-http`,
                # `index-pack`) are stopped with it, not left writing.
                start_new_session=True,
            )
        except FileNotFoundError:
            raise GitError("the git command is not installed") from None
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    code = proc.wait(timeout=_WATCH_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if _size(watch) > max_bytes:
                    raise GitError(f"git {args[0]}: the repository is over {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise GitError(f"git {args[0]} took longer than {timeout_s:.0f}s")
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if code != 0:
            err.seek(0)
            lines = err.read(64 * 1024).decode(errors="replace").strip().splitlines()
            raise GitError("; ".join(lines[-3:])[:500] or f"git {args[0]} failed")
    if _size(watch) > max_bytes:
        raise GitError(f"git {args[0]}: the repository is over {max_bytes} bytes")


class Mirror:
    """A bare mirror of `url` under `root` (one directory per URL, shared by the
    Applications that name it; one fetch at a time)."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.path = root / f"{digest}.git"
        with _locks_lock:
            self._lock = _locks.setdefault(self.path, threading.Lock())

    def fetch(self, credentials: Credentials | None = None) -> None:
        with self._lock:
            if (self.path / "HEAD").exists():
                bounded_git(
                    ["fetch", "--prune", "--quiet", "origin"],
                    cwd=self.path,
                    watch=self.path,
                    credentials=credentials,
                )
                return
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.path.parent))
            try:
                bounded_git(
                    ["clone", "--mirror", "--no-hardlinks", "--quiet", "--", self.url, str(tmp)],
                    watch=tmp,
                    credentials=credentials,
                )
                tmp.replace(self.path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def resolve(self, revision: str) -> str:
        """The commit id `revision` names now (a branch, a tag, a commit or HEAD)."""
        if not revision or revision.startswith("-"):
            raise GitError(f"revision {revision!r}: not a branch, a tag or a commit")
        with self._lock:
            out = git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
                cwd=self.path,
            )
        commit = out.decode().strip()
        if len(commit) not in (40, 64) or not all(c in "0123456789abcdef" for c in commit):
            raise GitError(f"revision {revision!r} resolved to {commit!r}")
        return commit

    def has(self, revision: str) -> bool:
        try:
            self.resolve(revision)
        except GitError:
            return False
        return True

    def tree(self, commit: str, path: str, *, recurse: bool) -> list[Entry]:
        """The blobs under `path` at `commit` (relative to it), at most `MAX_ENTRIES`."""
        if not all(c in "0123456789abcdef" for c in commit):
            raise GitError(f"not a commit id: {commit!r}")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        treeish = f"{commit}:{'/'.join(parts)}" if parts else commit
        args = ["git", "-c", "core.hooksPath=/dev/null", "ls-tree", "-l", "-z"]
        if recurse:
            args.append("-r")
        with self._lock:
            with subprocess.Popen(
                [*args, treeish],
                cwd=self.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_env(),
            ) as proc:
                assert proc.stdout is not None and proc.stderr is not None
                try:
                    out = proc.stdout.read(_MAX_LISTING + 1)  # stops there, whatever the tree
                finally:
                    proc.kill()
                err = proc.stderr.read(4096)
        if len(out) > _MAX_LISTING:
            raise GitError(f"the tree under {path!r} is too large to list")
        if not out and err:
            if b"not a valid object name" in err.lower() or b"not a tree" in err.lower():
                raise GitError(f"path {path!r} does not exist at {commit[:7]}")
            raise GitError(err.decode(errors="replace").strip()[:500])
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            fields = meta.split()
            if len(fields) != 4:
                continue
            mode, kind, oid, size = (f.decode() for f in fields)
            if kind != "blob":
                continue
            entries.append(Entry(name.decode(errors="replace"), oid, int(size), mode))
            if len(entries) > MAX_ENTRIES:
                raise GitError(f"more than {MAX_ENTRIES} files under {path!r}")
        return entries

    def read(self, oids: Sequence[str]) -> list[bytes]:
        """The contents of these blobs (their sizes bounded by the caller)."""
        if not oids:
            return []
        with self._lock:
            out = git(
                ["cat-file", "--batch"], cwd=self.path, stdin="\n".join(oids).encode() + b"\n"
            )
        blobs, i = [], 0
        for _ in oids:
            end = out.index(b"\n", i)
            header = out[i:end].split()
            if len(header) != 3:
                raise GitError(f"cat-file: {out[i:end][:100]!r}")
            size = int(header[2])
            blobs.append(out[end + 1 : end + 1 + size])
            i = end + 1 + size + 1
        return blobs

    def message(self, commit: str) -> tuple[str, str]:
        """(author, subject) of a commit, for the history."""
        with self._lock:
            out = git(["show", "-s", "--format=%an <%ae>%x00%s", commit], cwd=self.path)
        author, _, subject = out.decode(errors="replace").strip().partition("\0")
        return author, subject
