"""`ami identity NAME`: the certificates an instance's agent holds now, read from the
public files it rewrites on every renewal (`instances/<id>/cert.pem` and
`trust-bundle.pem`; the key is never written)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.identity import pem
from amimesh.runtime import logs, plan
from amimesh.runtime.state import StateDir


@dataclass(frozen=True)
class InstanceIdentity:
    id: str
    name: str
    chain: tuple[pem.CertSummary, ...]  # the leaf first; empty: no certificate yet
    bundle: tuple[pem.CertSummary, ...]
    problem: str = ""

    @property
    def leaf(self) -> pem.CertSummary | None:
        return self.chain[0] if self.chain else None

    def to_json(self) -> dict[str, Any]:
        leaf = self.leaf
        return {
            "id": self.id,
            "instance": self.name,
            "spiffe_id": leaf.uris[0] if leaf and leaf.uris else None,
            "serial": leaf.serial if leaf else None,
            "not_before": leaf.not_before.isoformat() if leaf else None,
            "not_after": leaf.not_after.isoformat() if leaf else None,
            "chain": [c.to_json() for c in self.chain],
            "trust_bundle": [c.to_json() for c in self.bundle],
            "problem": self.problem or None,
        }


def _read(path: Path) -> tuple[pem.CertSummary, ...]:
    return tuple(pem.summary(c) for c in pem.load_certificates(path.read_bytes()))


def find(st: StateDir, name: str) -> list[InstanceIdentity]:
    """The identities of `name`: an instance id, an instance name or a workload (all
    its replicas). Empty if no instance has that name."""
    found = [i for i in logs.instances(st) if name in (i.id, i.name)]
    if not found:
        found = [i for i in logs.instances(st) if i.workload == name]
    out = []
    for inst in found:
        home = st.instances / inst.id
        try:
            chain, bundle = _read(home / plan.CERT_FILE), _read(home / plan.BUNDLE_FILE)
        except FileNotFoundError:
            out.append(InstanceIdentity(inst.id, inst.name, (), (), "no certificate yet"))
            continue
        except (OSError, pem.BadPem) as e:
            out.append(InstanceIdentity(inst.id, inst.name, (), (), f"unreadable: {e}"))
            continue
        out.append(InstanceIdentity(inst.id, inst.name, chain, bundle))
    return out


def remaining(until: datetime.datetime, now: datetime.datetime) -> str:
    """`in 23h59m`, `in 41s`, or `expired 5s ago`."""
    seconds = int((until - now).total_seconds())
    text = _span(abs(seconds))
    return f"in {text}" if seconds >= 0 else f"expired {text} ago"


def _span(s: int) -> str:
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 172800:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def text_lines(inst: InstanceIdentity, now: datetime.datetime) -> list[str]:
    """What `ami identity` prints for one instance."""
    leaf = inst.leaf
    if leaf is None:
        return [inst.id, f"  {inst.problem}"]
    lines = [
        inst.id,
        f"  identity    {', '.join(leaf.uris) or '(no URI SAN)'}",
        f"  serial      {leaf.serial}",
        f"  not before  {leaf.not_before.isoformat()}",
        f"  not after   {leaf.not_after.isoformat()}  ({remaining(leaf.not_after, now)})",
        f"  issuer      {leaf.issuer}",
    ]
    for c in inst.chain[1:]:
        lines.append(f"  via         {c.subject}  SHA256 {c.fingerprint}")
    roots = len(inst.bundle)
    lines.append(f"  trust bundle ({roots} root{'s' if roots != 1 else ''})")
    for c in inst.bundle:
        lines.append(f"    {c.subject}  SHA256 {c.fingerprint}  until {c.not_after.date()}")
    return lines
