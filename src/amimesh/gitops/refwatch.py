"""What a local repository's refs are now, cheaply: a value that changes whenever a
branch, a tag or HEAD moves (a commit, a push into it, a fetch, a `git tag`).

    gitdir = git_dir("/home/me/manifests")     # its .git, or itself when bare; None if neither
    before = fingerprint(gitdir)
    ...                                        # git commit
    fingerprint(gitdir) != before

git writes a ref by renaming a new file over it (loose refs under `refs/`, the whole
`packed-refs` file, the reftable stack), so each file's inode, size and
modification time say whether it moved. Only stats are read, never contents, and at
most `MAX_FILES` of them: a repository with more refs than that is not watched (the
poll still reads it).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_FILES = 10_000

Fingerprint = tuple[tuple[str, int, int, int], ...]


def git_dir(url: str) -> Path | None:
    """The git directory of a local repository (`/path`, `file:///path`): its `.git`
    directory, or the path itself when it is bare. None for anything else (a remote
    URL, a missing path, a `.git` file of a linked worktree)."""
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if not url.startswith("/"):
        return None
    path = Path(url)
    dot_git = path / ".git"
    if dot_git.is_dir():
        return dot_git
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    return None


def fingerprint(gitdir: Path) -> Fingerprint | None:
    """Each ref file's (path, inode, size, mtime); None when there are too many to
    watch or the directory is gone."""
    rows: list[tuple[str, int, int, int]] = []
    for name in ("HEAD", "packed-refs"):
        _add(rows, gitdir / name, name)
    for top in ("refs", "reftable"):
        root = gitdir / top
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".lock"):
                    continue  # a ref being written: the rename that follows counts
                _add(rows, Path(dirpath) / f, os.path.relpath(os.path.join(dirpath, f), gitdir))
                if len(rows) > MAX_FILES:
                    return None
    if not rows:
        return None
    return tuple(rows)


def _add(rows: list[tuple[str, int, int, int]], path: Path, name: str) -> None:
    try:
        st = path.stat()
    except OSError:
        return
    rows.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
