"""A git push webhook, as Argo CD's `/api/webhook` reads GitHub's: which repository
and ref were pushed, which Applications that concerns, and whether the delivery is
signed by the configured secret. Pure.

    push = parse_push(body)                    # Push, or ValueError saying why not
    if signed(secret, body, header):           # X-Hub-Signature-256, constant time
        [a for a in apps if concerns(push, a.repoURL, a.targetRevision)]

An Application is concerned when its `repoURL` is one of the push's repository URLs
(`html_url`, `clone_url`, `ssh_url`, `git_url`, `url`; `file://`, a trailing `/` and
`.git` set aside) and its `targetRevision` is the pushed branch or tag, or `HEAD`
while the push is to the default branch (or the payload names none). An Application
pinned to a commit is never concerned, as in Argo CD.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

URL_FIELDS = ("html_url", "clone_url", "ssh_url", "git_url", "url")
MAX_DEPTH = 64


@dataclass(frozen=True)
class Push:
    urls: frozenset[str]  # normalized (`same_repo`'s form)
    revision: str  # the branch or tag pushed, `refs/heads/` or `refs/tags/` taken off
    default_branch: str  # "" when the payload does not say


def signature(secret: bytes, body: bytes) -> str:
    """`X-Hub-Signature-256` as GitHub computes it."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signed(secret: bytes, body: bytes, header: str) -> bool:
    """Whether `header` is the body's signature under `secret` (constant time)."""
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


def normalize(url: str) -> str:
    url = url.strip().removeprefix("file://").rstrip("/")
    return url.removesuffix(".git").rstrip("/")


def parse_push(body: bytes) -> Push:
    """The push a GitHub `push` payload describes."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"the body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    repo = data.get("repository")
    if not isinstance(repo, dict):
        raise ValueError("the payload has no repository")
    urls = frozenset(
        normalize(v) for k in URL_FIELDS if isinstance(v := repo.get(k), str) and v.strip()
    )
    if not urls:
        raise ValueError("the payload's repository has no URL")
    ref = data.get("ref")
    if not isinstance(ref, str) or not ref:
        raise ValueError("the payload has no ref")
    revision = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    default = repo.get("default_branch")
    return Push(urls, revision, default if isinstance(default, str) else "")


def concerns(push: Push, repo_url: str, target_revision: str) -> bool:
    """Whether a push should refresh an Application of `repo_url` at `target_revision`."""
    if normalize(repo_url) not in push.urls:
        return False
    target = target_revision or "HEAD"
    if target == "HEAD":
        return not push.default_branch or push.revision == push.default_branch
    return target.removeprefix("refs/heads/").removeprefix("refs/tags/") == push.revision
