"""What the autoscaler makes of one revision, as the control plane shows it (pure).

`ServingController.scaling()` builds one `RevisionScaling` per revision it runs;
`/metrics` turns them into Knative's autoscaler gauges, `GET /api/v1/serving/revisions`
into JSON (`to_json`), and `ami status`, `ami top` and the dashboard into a table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RevisionScaling:
    """One revision's scale and load as of its autoscaler's last decision.

    `desired` is the decider's wish (Knative's `desired_pods`, not yet held within
    min-scale and max-scale); `requested` the scale asked of the node agents (Knative's
    `requested_pods`: within the bounds, held through the scale-to-zero grace period);
    `ready` the instances ready now (`actual_pods`). `observed_stable` and
    `observed_panic` are the revision's total of `metric` (requests in flight, or
    requests per second) averaged over the stable and the panic window; `target` what
    one instance should take. None: the autoscaler has not decided yet (no data), or
    cannot (settings in error). `activator`: the revision's traffic goes through the
    activator. `active` is Knative's PodAutoscaler state: activating, active, inactive.
    `service` is "" for a revision of a Configuration no Knative Service owns.
    """

    namespace: str
    revision: str
    configuration: str
    service: str
    ready: int
    activator: bool
    metric: str = "concurrency"
    target: float | None = None
    desired: int | None = None
    requested: int | None = None
    observed_stable: float | None = None
    observed_panic: float | None = None
    panic: bool = False
    excess_burst_capacity: int | None = None
    active: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
