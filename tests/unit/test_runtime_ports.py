"""Port allocation and the gateway's host ports."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from amimesh.model.proxy import GatewayPort
from amimesh.runtime import gateway, ports
from amimesh.runtime.ports import PortAllocator, is_free


def test_allocated_ports_are_distinct_free_and_unprivileged() -> None:
    alloc = PortAllocator()
    ports = [alloc.allocate() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(p >= 1024 for p in ports)
    assert all(is_free(p) for p in ports[:5])
    assert alloc.taken == frozenset(ports)
    alloc.release(ports[0])
    assert ports[0] not in alloc.taken


def test_a_listening_port_is_not_free_and_cannot_be_claimed() -> None:
    alloc = PortAllocator()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not is_free(busy)
        assert not alloc.claim(busy)
        other = alloc.prefer(busy)
        assert other != busy


def test_claim_once() -> None:
    alloc = PortAllocator()
    port = alloc.allocate()
    alloc.release(port)
    assert alloc.claim(port)
    assert not alloc.claim(port)  # handed out already


def test_gateway_ports_keep_their_number_when_they_can() -> None:
    alloc = PortAllocator()
    free = alloc.allocate()
    alloc.release(free)
    mapped = gateway.host_ports([80, free], alloc)
    assert mapped[0].port == 80 and mapped[0].listen_port >= 1024  # privileged: moved
    assert mapped[1] == GatewayPort(free, free)
    assert gateway.urls(mapped, {free: "https"}) == (
        f"http://127.0.0.1:{mapped[0].listen_port}/",
        f"https://127.0.0.1:{free}/",
    )


def test_forced_gateway_port() -> None:
    alloc = PortAllocator()
    forced = alloc.allocate()
    alloc.release(forced)
    assert gateway.host_ports([8080], alloc, first=forced) == (GatewayPort(8080, forced),)
    with pytest.raises(gateway.GatewayPortError, match="in use"):
        gateway.host_ports([8080], alloc, first=forced)


def test_ports_come_from_below_the_ephemeral_range() -> None:
    from amimesh.runtime.ports import LOWEST, PortAllocator, ephemeral_range

    low = ephemeral_range()[0]
    allocator = PortAllocator()
    ports = [allocator.allocate() for _ in range(50)]
    assert len(set(ports)) == 50
    if low - LOWEST >= 1000:  # outgoing connections never hold one of them
        assert all(LOWEST <= p < low for p in ports)


def test_two_allocators_on_one_machine_never_hand_out_the_same_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two meshes starting at once: neither binds what it picked at once, so each sees
    # the other's ports free; the note on the machine keeps them apart.
    monkeypatch.setattr(ports, "claims_dir", lambda: tmp_path / "claims")
    first, second = PortAllocator(owner="mesh-a"), PortAllocator(owner="mesh-b")
    picked = [first.allocate() for _ in range(30)]
    assert all(is_free(p) for p in picked)  # nothing bound them
    for p in picked:
        assert not second.claim(p)
    assert not set(picked) & {second.allocate() for _ in range(30)}
    # The owner takes its own ports again (a mesh started again), also from a new
    # process (another allocator of the same owner).
    again = PortAllocator(owner="mesh-a")
    assert all(again.claim(p) for p in picked[:5])
    # An old note is no one's any more.
    old = tmp_path / "claims" / str(picked[5])
    stale = time.time() - ports.CLAIM_TTL_S - 1
    os.utime(old, (stale, stale))
    assert second.claim(picked[5])


def test_without_a_place_for_notes_allocation_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(ports, "claims_dir", lambda: blocker / "claims")  # cannot be made
    alloc = PortAllocator(owner="x")
    assert len({alloc.allocate() for _ in range(10)}) == 10
