"""`ami service update`'s `--traffic`, `--tag` and `--untag`, as `kn` computes them:
a Knative Service's `spec.traffic` in, the new one out. Pure.

    flags = TrafficFlags(traffic=("hello-00001=50", "@latest=50"), tags=("hello-00001=v1",))
    compute(service["spec"].get("traffic", []), flags)

In that order: `--untag TAG` takes a tag off its target; `--tag REF=TAG` tags a revision
(`@latest`: the target that follows the latest ready revision), adding a 0% target
when none sends it traffic; `--traffic REF=PERCENT` sets every share anew (REF a tag,
a revision or `@latest`), and the shares must add up to 100. Targets left with neither
a share nor a tag are dropped. A Service without `traffic` sends all of it to its latest
revision, and is read so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amimesh.cli.ksvc_flags import FlagError

LATEST = "@latest"
TRAFFIC_FORM = "REVISION=PERCENT, TAG=PERCENT or @latest=PERCENT"
# A tag is a DNS-1035 label: it becomes the host name TAG-SERVICE.
_TAG = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class TrafficFlags:
    traffic: tuple[str, ...] = ()  # REF=PERCENT
    tags: tuple[str, ...] = ()  # REF=TAG
    untags: tuple[str, ...] = ()  # TAG

    def given(self) -> bool:
        return bool(self.traffic or self.tags or self.untags)


def split_commas(values: Sequence[str]) -> tuple[str, ...]:
    """kn's list flags take `a=1,b=2` as well as the flag given twice."""
    return tuple(v for value in values for v in value.split(",") if v)


def _ref_value(value: str, flag: str, want: str) -> tuple[str, str]:
    ref, eq, rest = value.partition("=")
    if not eq or not ref or not rest:
        raise FlagError(f"{flag} {value!r}", f"want {want}")
    return ref, rest


def _percents(values: Sequence[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for value in values:
        ref, text = _ref_value(value, "--traffic", TRAFFIC_FORM)
        try:
            percent = int(text.removesuffix("%"))
        except ValueError:
            raise FlagError(f"--traffic {value!r}", f"{text!r} is not a whole percent") from None
        if not 0 <= percent <= 100:
            raise FlagError(f"--traffic {value!r}", f"a percent is 0 to 100, got {percent}")
        if any(ref == seen for seen, _ in out):
            raise FlagError(f"--traffic {value!r}", f"{ref} is given a share twice")
        out.append((ref, percent))
    total = sum(p for _, p in out)
    if out and total != 100:
        raise FlagError("--traffic", f"the shares add up to {total}%, they must add up to 100%")
    return out


def _tags(values: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for value in values:
        ref, tag = _ref_value(value, "--tag", "REVISION=TAG or @latest=TAG")
        if not _TAG.match(tag) or len(tag) > 63:
            raise FlagError(
                f"--tag {value!r}",
                f"a tag is a DNS label (lower-case letters, digits, '-'; a letter first), "
                f"got {tag!r}",
            )
        if ref == LATEST and any(r == LATEST for r, _ in out):
            raise FlagError(f"--tag {value!r}", "@latest is tagged twice")
        if any(t == tag for _, t in out):
            raise FlagError(f"--tag {value!r}", f"tag {tag!r} is given twice")
        out.append((ref, tag))
    return out


def _target(*, revision: str = "", percent: int = 0, tag: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tag:
        out["tag"] = tag
    if revision:
        out["revisionName"] = revision
        out["latestRevision"] = False
    else:
        out["latestRevision"] = True
    out["percent"] = percent
    return out


def _follows_latest(t: Mapping[str, Any]) -> bool:
    return bool(t.get("latestRevision", not t.get("revisionName")))


def compute(current: Sequence[Mapping[str, Any]], flags: TrafficFlags) -> list[dict[str, Any]]:
    """The Service's new `spec.traffic` (see the module's docstring); `FlagError` for a
    flag that cannot apply (a tag no target has, a tag taken by another target, shares
    that do not add up to 100)."""
    percents = _percents(flags.traffic)
    tags = _tags(flags.tags)
    traffic = [dict(t) for t in current] or [_target(percent=100)]
    for tag in flags.untags:
        found = next((t for t in traffic if t.get("tag") == tag), None)
        if found is None:
            raise FlagError(f"--untag {tag!r}", f"no traffic target has the tag {tag!r}")
        del found["tag"]
    for ref, tag in tags:
        traffic = _tag(traffic, ref, tag)
    if percents:
        for t in traffic:
            t["percent"] = 0
        for ref, percent in percents:
            if ref == LATEST:
                found = next((t for t in traffic if _follows_latest(t)), None)
            else:
                found = next((t for t in traffic if t.get("tag") == ref), None) or next(
                    (t for t in traffic if t.get("revisionName") == ref), None
                )
            if found is None:
                found = _target(revision="" if ref == LATEST else ref)
                traffic.append(found)
            found["percent"] = percent
    return [t for t in traffic if t.get("tag") or t.get("percent")]


def _tag(traffic: list[dict[str, Any]], ref: str, tag: str) -> list[dict[str, Any]]:
    if ref == LATEST:
        mine = next((t for t in traffic if _follows_latest(t)), None)
    else:
        mine = next((t for t in traffic if t.get("revisionName") == ref and not t.get("tag")), None)
        mine = mine or next(
            (t for t in traffic if t.get("revisionName") == ref and t.get("tag") == tag), None
        )
    if mine is not None and mine.get("tag") == tag:
        return traffic  # already so
    taken = next((t for t in traffic if t.get("tag") == tag), None)
    if taken is not None:
        raise FlagError(
            f"--tag {ref}={tag}",
            f"the tag {tag!r} is on another target; add --untag {tag} to move it",
        )
    if mine is not None and mine.get("tag"):
        raise FlagError(
            f"--tag {ref}={tag}",
            f"the latest revision's target has the tag {mine['tag']!r}; add --untag "
            f"{mine['tag']} to replace it",
        )
    if mine is None:
        traffic.append(_target(revision="" if ref == LATEST else ref, tag=tag))
    else:
        mine["tag"] = tag
    return traffic
