"""The garbage collector around a long-lived process's start.

`ami controlplane` and `ami node` start with Python's cyclic garbage collector off
(`cli.main`): their imports and first models make a large heap of objects that live as
long as the process, which the collector would otherwise walk again and again while
they load. Once the process has started (what it first serves is up), `started()`
collects once, moves every surviving object out of the collector's sight for good
(`gc.freeze`: later collections walk only what came after) and turns it back on.
Where the collector was never turned off (an embedding test, a library use), nothing
is done.
"""

from __future__ import annotations

import gc


def started() -> None:
    if gc.isenabled():
        return
    gc.collect()
    gc.freeze()
    gc.enable()
