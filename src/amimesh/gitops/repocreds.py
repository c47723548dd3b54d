"""Which credentials a repository is fetched with: Argo CD's repository Secrets. Pure.

Argo CD keeps them as Secrets in its namespace, `argocd`, labelled
`argocd.argoproj.io/secret-type`:

- `repository`: the credentials of one repository, its `url`;
- `repo-creds`: a credential template, for every repository whose URL starts with
  its `url` (the longest such `url` wins).

A repository Secret of the URL wins over any template. URLs are compared as Argo CD
normalizes them: lowercase, without a trailing `/` or `.git`. Only `username` and
`password` (HTTPS basic authentication, or a token as the password) are read; a Secret
with an `sshPrivateKey`, a GitHub App or a TLS client certificate is `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amimesh.resources.kube import Secret
from amimesh.resources.meta import Resource

NAMESPACE = "argocd"
TYPE_LABEL = "argocd.argoproj.io/secret-type"
REPOSITORY = "repository"
TEMPLATE = "repo-creds"
_UNSUPPORTED_KEYS = ("sshPrivateKey", "githubAppPrivateKey", "tlsClientCertKey")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return f"Credentials(username={self.username!r}, password=...)"


@dataclass(frozen=True)
class Unsupported:
    """The repository's Secret holds credentials Ami cannot use yet: why."""

    message: str


def normalized(url: str) -> str:
    url = url.strip().lower().rstrip("/")
    return url.removesuffix(".git")


def _text(secret: Secret, key: str) -> str:
    raw = secret.value(key)
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def find(url: str, resources: Iterable[Resource]) -> Credentials | Unsupported | None:
    """The credentials to fetch `url` with; None for none (a public repository)."""
    want = normalized(url)
    exact: Secret | None = None
    template: tuple[int, Secret] | None = None
    for r in sorted((r for r in resources if isinstance(r, Secret)), key=lambda r: r.key):
        if r.namespace != NAMESPACE:
            continue
        kind = r.metadata.labels.get(TYPE_LABEL)
        base = normalized(_text(r, "url"))
        if not base:
            continue
        if kind == REPOSITORY and base == want and exact is None:
            exact = r
        elif kind == TEMPLATE and (want == base or want.startswith(base + "/")):
            if template is None or len(base) > template[0]:
                template = (len(base), r)
    chosen = exact if exact is not None else (template[1] if template else None)
    if chosen is None:
        return None
    held = [k for k in _UNSUPPORTED_KEYS if chosen.value(k)]
    if held:
        return Unsupported(
            f"Secret {chosen.namespace}/{chosen.name} holds {held[0]}: Ami fetches with "
            "username and password (or a token as the password) only"
        )
    username, password = _text(chosen, "username"), _text(chosen, "password")
    if not password:
        return None
    return Credentials(username or "git", password)
