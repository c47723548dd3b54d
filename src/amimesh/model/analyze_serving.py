"""Findings about Knative Serving resources: they validate, and Ami does not run them yet."""

from __future__ import annotations

from amimesh.model.analyze_findings import NOT_RUN_YET, Finding
from amimesh.model.snapshot import Snapshot
from amimesh.resources.knative_serving import SERVING_GROUP


def serving_findings(snap: Snapshot) -> list[Finding]:
    """One Info finding per Knative Serving resource, so that `ami analyze` says what a
    directory of Knative YAML will (not yet) do instead of staying silent."""
    return [
        Finding(
            code=NOT_RUN_YET.code,
            severity=NOT_RUN_YET.severity,
            kind=r.qualified_kind(),
            namespace=r.namespace,
            name=r.name,
            field="spec",
            message=f"Ami validates Knative {r.KIND}s but does not run them yet: no revision "
            "starts and no route is made",
            hint="to run the app on the mesh today, write it as a Workload (ami.dev/v1alpha1) "
            "with a Service",
        )
        for _key, r in sorted(snap.resources.items())
        if r.API_GROUP == SERVING_GROUP
    ]
