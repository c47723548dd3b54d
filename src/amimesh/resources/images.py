"""Container image references (`ghcr.io/knative/helloworld-go:latest`), checked with the
grammar of the OCI distribution `reference` package that Knative's webhook and
container runtimes parse them with. Pure.
"""

from __future__ import annotations

import re

from amimesh.resources.fields import show

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::{_TAG})?(?:@{_DIGEST})?"
)
_MAX_NAME = 255


def image_problem(image: str) -> str | None:
    """Why `image` is not an image reference, or None."""
    m = _REFERENCE.fullmatch(image)
    if m is None:
        hint = ""
        if image != image.lower() and _REFERENCE.fullmatch(image.lower()):
            hint = " (repository names are lowercase)"
        return (
            "must be an image reference such as ghcr.io/knative/helloworld-go:latest"
            f"{hint}, got {show(image)}"
        )
    if len(m.group("name")) > _MAX_NAME:
        return f"the repository name must be at most {_MAX_NAME} characters, got {show(image)}"
    return None
