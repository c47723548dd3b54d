"""Knative Serving resources (serving.knative.dev/v1): Knative's own samples and what
kn writes validate; each of Knative's rules breaks with the field at fault."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from amimesh.resources import knative_serving as kn
from amimesh.resources import load_path, parse_documents
from amimesh.resources.images import image_problem
from amimesh.resources.knative_autoscaling import HPA, Autoscaling, read_autoscaling

TESTDATA = Path(__file__).parent / "testdata" / "knative"
IMAGE = "ghcr.io/knative/helloworld-go:latest"


def ksvc(body: str, *, name: str = "hello", meta: str = "") -> str:
    """A Knative Service named `name`; `body` is indented under `spec:`."""
    head = (
        f"apiVersion: serving.knative.dev/v1\nkind: Service\n"
        f"metadata: {{name: {name}{meta}}}\nspec:\n"
    )
    return head + textwrap.indent(textwrap.dedent(body), "  ")


def template(spec: str = "", *, container: str = "", annotations: str = "") -> str:
    """`template:` with one container (plus `container` fields) and `spec` fields."""
    meta = f"  metadata:\n    annotations: {{{annotations}}}\n" if annotations else ""
    inner = f"containers:\n- image: {IMAGE}\n" + textwrap.indent(textwrap.dedent(container), "  ")
    inner += textwrap.dedent(spec)
    return "template:\n" + meta + "  spec:\n" + textwrap.indent(inner, "    ")


def route(traffic: str) -> str:
    head = "apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata: {name: hello}\nspec:\n"
    return head + "  traffic:\n" + textwrap.indent(textwrap.dedent(traffic), "  ")


def errors(text: str) -> list[str]:
    result = parse_documents(text, "k.yaml")
    if result.errors:
        assert not result.resources
    return [f"{e.field}: {e.message}" for e in result.errors]


def test_knative_samples_and_kn_output_validate() -> None:
    result = load_path(TESTDATA)
    assert [str(e) for e in result.errors] == []
    refs = sorted(r.ref for r in result.resources)
    assert refs == [
        "Configuration/default/blue-green",
        "Revision/default/blue-green-v1",
        "Route/default/blue-green",
        "Service.serving.knative.dev/default/example-service",
        "Service.serving.knative.dev/default/grpc-ping",
        "Service.serving.knative.dev/default/hello",
        "Service.serving.knative.dev/default/helloworld-go",
        "Service.serving.knative.dev/default/multi-container",
        "Service.serving.knative.dev/default/scaled",
        "Service.serving.knative.dev/default/scaled-legacy",
        "Service.serving.knative.dev/default/tag-header",
        "Service.serving.knative.dev/shop/greeter",
    ]


def test_kn_output_keeps_image_command_and_args() -> None:
    (svc,) = load_path(TESTDATA / "kn-service-create.yaml").resources
    assert isinstance(svc, kn.Service)
    (container,) = svc.spec.template.spec.containers
    assert container.image == IMAGE
    assert container.command == ["/ko-app/helloworld"]
    assert container.args == ["--port=$(PORT)"]  # expanded when it runs, not when read
    assert [(e.name, e.value) for e in container.env] == [("TARGET", "Ami")]
    assert container.resources is not None and container.name == ""
    assert svc.spec.template.metadata.annotations["client.knative.dev/user-image"] == IMAGE
    assert svc.spec.traffic == []


def test_a_service_with_only_an_image_validates() -> None:
    text = ksvc(f"template:\n  spec:\n    containers: [{{image: {IMAGE}}}]\n")
    result = parse_documents(text, "k.yaml")
    assert result.ok and isinstance(result.resources[0], kn.Service)
    # `metadata:` with nothing under it, as kn writes a template's.
    text = ksvc(f"template:\n  metadata:\n  spec:\n    containers: [{{image: {IMAGE}}}]\n")
    assert parse_documents(text, "k.yaml").ok


def test_knative_and_core_services_of_one_name_live_side_by_side() -> None:
    core = "apiVersion: v1\nkind: Service\nmetadata: {name: hello}\nspec: {ports: [{port: 80}]}\n"
    text = ksvc(template()) + "---\n" + core
    result = parse_documents(text, "k.yaml")
    assert [str(e) for e in result.errors] == []
    assert [r.ref for r in result.resources] == [
        "Service.serving.knative.dev/default/hello",
        "Service/default/hello",
    ]
    again = parse_documents(text + "---\n" + ksvc(template()), "k.yaml")
    assert [str(e) for e in again.errors] == [
        "k.yaml: document 2 (line 15): Service.serving.knative.dev/default/hello: "
        "metadata.name: Service.serving.knative.dev/default/hello is already defined in "
        "k.yaml: document 0 (line 1)"
    ]


def test_errors_name_file_resource_and_field() -> None:
    text = ksvc(template("containerConcurrency: 1001\n"))
    assert [str(e) for e in parse_documents(text, "shop/hello.yaml").errors] == [
        "shop/hello.yaml: document 0 (line 1): Service.serving.knative.dev/default/hello: "
        "spec.template.spec.containerConcurrency: must be at most 1000, got 1001"
    ]


T = "spec.traffic"
TT = "spec.template"
C0 = "spec.template.spec.containers[0]"
ANN = 'spec.template.metadata.annotations["autoscaling.knative.dev/'
NO_PERCENT = "(a target without percent gets 0)"

CASES: list[tuple[str, str, list[str]]] = [
    # --- traffic (route_validation.go) ---
    (
        "percents that do not add up to 100",
        ksvc(template() + "traffic:\n- {latestRevision: true, percent: 50}\n"),
        [f"{T}: the percents add up to 50, they must add up to 100 {NO_PERCENT}"],
    ),
    (
        "a percent out of 0..100",
        ksvc(
            template()
            + "traffic:\n- {latestRevision: true, percent: 150}\n"
            + "- {revisionName: hello-1, percent: -50}\n"
        ),
        [
            f"{T}[0].percent: must be at most 100, got 150",
            f"{T}[1].percent: must be at least 0, got -50",
        ],
    ),
    (
        "a tag used twice, tags that are not DNS-1035 labels",
        ksvc(
            template()
            + "traffic:\n- {latestRevision: true, percent: 100, tag: v1}\n"
            + "- {revisionName: hello-1, tag: v1}\n- {revisionName: hello-2, tag: 2nd}\n"
            + "- {revisionName: hello-3, tag: V3}\n"
        ),
        [
            f"{T}[2].tag: must be a DNS-1035 label: at most 63 lowercase letters, digits and "
            "'-', starting with a letter and ending with a letter or digit, got \"2nd\"",
            f"{T}[3].tag: must be a DNS-1035 label: at most 63 lowercase letters, digits and "
            "'-', starting with a letter and ending with a letter or digit, got \"V3\"",
            f'{T}[1].tag: tag "v1" is already used by traffic[0]',
        ],
    ),
    (
        "latestRevision: true with a revisionName, false without one",
        ksvc(
            template()
            + "traffic:\n- {latestRevision: true, revisionName: hello-1, percent: 60}\n"
            + "- {latestRevision: false, percent: 40}\n"
        ),
        [
            f'{T}[0].latestRevision: cannot be true with revisionName "hello-1": a target '
            "follows the latest revision or pins one",
            f"{T}[1].latestRevision: false pins a revision: set revisionName, or make it true",
        ],
    ),
    (
        "a Service's traffic names no configuration",
        ksvc(template() + "traffic:\n- {configurationName: other, percent: 100}\n"),
        [
            f"{T}[0].configurationName: cannot be set in a Service: its traffic goes to its own "
            "configuration (latestRevision: true) or to one of its revisions (revisionName)"
        ],
    ),
    (
        "a Route target names a revision or a configuration, not both, not neither",
        route(
            "- {revisionName: a-1, configurationName: a, percent: 50}\n"
            "- {percent: 50, tag: x}\n- {revisionName: 'not/ok', percent: 0}\n"
        ),
        [
            f"{T}[0]: set only one of revisionName, configurationName",
            f"{T}[1]: must set one of revisionName, configurationName",
            f'{T}[2].revisionName: must be a resource name, got "not/ok"',
        ],
    ),
    (
        "a Route needs traffic",
        "apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata: {name: r}\nspec: {}\n",
        [f"{T}: the percents add up to 0, they must add up to 100 {NO_PERCENT}"],
    ),
    (
        "url is status only",
        route("- {revisionName: a-1, percent: 100, tag: a, url: 'http://a.example.com'}\n"),
        [f"{T}[0].url: is written by Knative in status; it cannot be set in spec"],
    ),
    # --- names (metadata_validation.go, revision_validation.go) ---
    (
        "a name that is not a DNS-1035 label",
        ksvc(template(), name="1hello"),
        [
            "metadata.name: must be a DNS-1035 label: at most 63 lowercase letters, digits and "
            "'-', starting with a letter and ending with a letter or digit, got \"1hello\""
        ],
    ),
    (
        "a revision name you bring starts with the Service's name",
        ksvc(
            "template:\n  metadata: {name: other-v1}\n  spec:\n"
            f"    containers: [{{image: {IMAGE}}}]\n"
        ),
        [
            f'{TT}.metadata.name: a revision name you bring must start with "hello-" (the name '
            'of its Service and a dash), got "other-v1"'
        ],
    ),
    (
        "the same rule in a Configuration",
        "apiVersion: serving.knative.dev/v1\nkind: Configuration\nmetadata: {name: cfg}\n"
        f"spec:\n  template:\n    metadata: {{name: cfg}}\n    spec:\n"
        f"      containers: [{{image: {IMAGE}}}]\n",
        [
            f'{TT}.metadata.name: a revision name you bring must start with "cfg-" (the name '
            'of its Configuration and a dash), got "cfg"'
        ],
    ),
    # --- the revision spec (revision_validation.go, k8s_validation.go) ---
    (
        "containerConcurrency and timeoutSeconds out of range",
        ksvc(template("containerConcurrency: -1\ntimeoutSeconds: 601\n")),
        [
            f"{TT}.spec.containerConcurrency: must be at least 0, got -1",
            f"{TT}.spec.timeoutSeconds: must be at most 600, got 601",
        ],
    ),
    (
        "one port across all containers",
        ksvc(
            "template:\n  spec:\n    containers:\n"
            f"    - {{image: {IMAGE}, ports: [{{containerPort: 8080}}]}}\n"
            f"    - {{image: {IMAGE}, name: side, ports: [{{containerPort: 9000}}]}}\n"
        ),
        [
            f"{TT}.spec.containers[1].ports[0]: a revision serves one port, across all its "
            "containers, and containers[0].ports[0] is it"
        ],
    ),
    (
        "several containers and no port",
        ksvc(
            "template:\n  spec:\n    containers:\n"
            f"    - {{image: {IMAGE}, name: a}}\n    - {{image: {IMAGE}, name: a}}\n"
        ),
        [
            f"{TT}.spec.containers: with several containers, the one that serves must declare "
            "its port (ports: [{containerPort: ...}])",
            f'{TT}.spec.containers[1].name: container name "a" is already used by containers[0]',
        ],
    ),
    (
        "port names, protocols and Knative's own ports",
        ksvc(template(container="ports: [{containerPort: 8012, name: http, protocol: UDP}]\n")),
        [
            f'{C0}.ports[0].name: must be one of "", "http1", "h2c", got "http"',
            f'{C0}.ports[0].protocol: must be one of "TCP", "", got "UDP"',
        ],
    ),
    (
        "a reserved port",
        ksvc(template(container="ports: [{containerPort: 8012}]\n")),
        [
            f"{C0}.ports[0].containerPort: 8012 is a reserved port (Knative's queue-proxy "
            "uses it); use another"
        ],
    ),
    (
        "reserved env names, bad env names, valueFrom",
        ksvc(
            template(
                container="env:\n- {name: PORT, value: '80'}\n- {name: 1X, value: a}\n"
                "- name: POD\n  valueFrom: {fieldRef: {fieldPath: metadata.name}}\n"
            )
        ),
        [
            f"{C0}.env[2].valueFrom.fieldRef: is not supported by Ami yet",
        ],
    ),
    (
        "reserved and bad env names once the schema is fine",
        ksvc(template(container="env:\n- {name: K_REVISION, value: a}\n- {name: 1X, value: a}\n")),
        [
            f'{C0}.env[0].name: "K_REVISION" is a reserved environment variable: Knative sets it',
            f"{C0}.env[1].name: must be letters, digits, '_', '-' and '.', not starting with a "
            'digit, got "1X"',
        ],
    ),
    (
        "an image that is no image reference",
        ksvc(
            "template:\n  spec:\n    containers:\n"
            "    - {image: 'docker.io/{username}/helloworld-go'}\n    - {image: ''}\n"
            "    - {image: 'Ghcr.io/Knative/Hello', ports: [{containerPort: 8080}]}\n"
        ),
        [
            f"{TT}.spec.containers[0].image: must be an image reference such as "
            'ghcr.io/knative/helloworld-go:latest, got "docker.io/{username}/helloworld-go"',
            f"{TT}.spec.containers[1].image: is required",
            f"{TT}.spec.containers[2].image: must be an image reference such as "
            "ghcr.io/knative/helloworld-go:latest (repository names are lowercase), got "
            '"Ghcr.io/Knative/Hello"',
        ],
    ),
    (
        "container names",
        ksvc(template(container="name: queue-proxy\n")),
        [f'{C0}.name: "queue-proxy" is a reserved container name'],
    ),
    (
        "a container without an image",
        ksvc("template:\n  spec:\n    containers: [{command: [serve]}]\n"),
        [f"{TT}.spec.containers[0].image: is required"],
    ),
    (
        "no containers",
        ksvc("template:\n  spec:\n    containers: []\n"),
        [f"{TT}.spec.containers: must not be empty"],
    ),
    (
        "what Knative allows and Ami does not run yet",
        ksvc(
            template(
                "volumes: [{name: v, secret: {secretName: s}}]\n",
                container="volumeMounts: [{name: v, mountPath: /v}]\nstartupProbe: {}\n",
            )
        ),
        [
            f"{C0}.volumeMounts: is not supported by Ami yet",
            f"{C0}.startupProbe: is not supported by Ami yet",
            f"{TT}.spec.volumes: is not supported by Ami yet",
        ],
    ),
    (
        "what Knative refuses is unknown",
        ksvc(template("restartPolicy: Never\n", container="lifecycle: {}\n")),
        [
            f'{C0}.lifecycle: unknown field (Ami does not know "lifecycle" on Container)',
            f'{TT}.spec.restartPolicy: unknown field (Ami does not know "restartPolicy" on '
            "Revision spec)",
        ],
    ),
    (
        "Kubernetes-only fields are accepted",
        ksvc(
            template(
                "imagePullSecrets: [{name: pull}]\nnodeSelector: {disk: ssd}\n"
                "securityContext: {runAsNonRoot: true}\nenableServiceLinks: false\n",
                container="imagePullPolicy: Always\nsecurityContext: {runAsUser: 1000}\n"
                "resources: {limits: {cpu: 500m, memory: 1Gi}, requests: {cpu: 1}}\n",
            )
        ),
        [],
    ),
    # --- the readiness probe (k8s_validation.go, revision_defaults.go) ---
    (
        "a probe port names the serving port",
        ksvc(
            template(
                container="ports: [{containerPort: 8080, name: h2c}]\n"
                "readinessProbe: {httpGet: {port: http}}\n"
            )
        ),
        [
            f'{C0}.readinessProbe.httpGet.port: must be the serving container\'s port ("h2c" or '
            'its number), got "http"'
        ],
    ),
    (
        "an unnamed serving port is http to a probe",
        ksvc(
            template(
                container="ports: [{containerPort: 8080}]\n"
                "readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2, timeoutSeconds: 1}\n"
            )
        ),
        [],
    ),
    (
        "a probe with two handlers, thresholds without a period",
        ksvc(
            template(
                container="readinessProbe: {httpGet: {path: /}, tcpSocket: {}, "
                "failureThreshold: 3, timeoutSeconds: 2}\n"
            )
        ),
        [
            f"{C0}.readinessProbe.tcpSocket: cannot be used together with httpGet",
            f"{C0}.readinessProbe.failureThreshold: cannot be set without periodSeconds: with "
            "periodSeconds 0 (the default) Knative probes aggressively until the container is "
            "ready",
            f"{C0}.readinessProbe.timeoutSeconds: cannot be set without periodSeconds: with "
            "periodSeconds 0 (the default) Knative probes aggressively until the container is "
            "ready",
        ],
    ),
    (
        "only the serving container takes a probe; exec probes are not yet",
        ksvc(
            "template:\n  spec:\n    containers:\n"
            f"    - {{image: {IMAGE}, readinessProbe: {{exec: {{command: [ok]}}}}}}\n"
            f"    - {{image: {IMAGE}, ports: [{{containerPort: 8080}}]}}\n"
        ),
        [f"{TT}.spec.containers[0].readinessProbe.exec: is not supported by Ami yet"],
    ),
    (
        "a sidecar's probe",
        ksvc(
            "template:\n  spec:\n    containers:\n"
            f"    - {{image: {IMAGE}, readinessProbe: {{tcpSocket: {{}}}}}}\n"
            f"    - {{image: {IMAGE}, ports: [{{containerPort: 8080}}]}}\n"
        ),
        [
            f"{TT}.spec.containers[0].readinessProbe: a container that does not serve takes "
            "no probe (Knative's multi-container-probing is off by default)"
        ],
    ),
    # --- autoscaling annotations (annotation_validation.go, metadata_validation.go) ---
    (
        "min-scale above max-scale",
        ksvc(
            template(
                annotations='autoscaling.knative.dev/min-scale: "5", '
                'autoscaling.knative.dev/max-scale: "2"'
            )
        ),
        [f'{ANN}max-scale"]: max-scale=2 is less than min-scale=5'],
    ),
    (
        "the older spellings are read, the new ones win",
        ksvc(
            template(
                annotations='autoscaling.knative.dev/minScale: "5", '
                'autoscaling.knative.dev/maxScale: "2", autoscaling.knative.dev/max-scale: "9"'
            )
        ),
        [],
    ),
    (
        "scale bounds and whole numbers",
        ksvc(
            template(
                annotations='autoscaling.knative.dev/min-scale: "-1", '
                'autoscaling.knative.dev/max-scale: "two", '
                'autoscaling.knative.dev/initial-scale: "0", '
                'autoscaling.knative.dev/activation-scale: "1"'
            )
        ),
        [
            f'{ANN}min-scale"]: must be from 0 to 2147483647, got "-1"',
            f'{ANN}max-scale"]: must be a whole number, got "two"',
            f'{ANN}activation-scale"]: activation-scale=1 must be greater than 1',
        ],
    ),
    (
        "windows and delays",
        ksvc(
            template(
                annotations="autoscaling.knative.dev/window: 5s, "
                "autoscaling.knative.dev/scale-down-delay: 1.5s, "
                "autoscaling.knative.dev/scale-to-zero-pod-retention-period: 2h, "
                "autoscaling.knative.dev/panic-window-percentage: '0.5', "
                "autoscaling.knative.dev/panic-threshold-percentage: '100'"
            )
        ),
        [
            f'{ANN}window"]: must be from 6s to 1h0m0s, got "5s"',
            f'{ANN}panic-window-percentage"]: must be from 1 to 100, got "0.5"',
            f'{ANN}panic-threshold-percentage"]: must be from 110 to 1000, got "100"',
            f'{ANN}scale-down-delay"]: must be a whole number of seconds, got "1.5s"',
            f'{ANN}scale-to-zero-pod-retention-period"]: must be from 0s to 1h0m0s, got "2h"',
        ],
    ),
    (
        "class, metric, target",
        ksvc(
            template(
                annotations="autoscaling.knative.dev/class: foo.autoscaling.knative.dev, "
                "autoscaling.knative.dev/metric: cpu, autoscaling.knative.dev/target: '0', "
                "autoscaling.knative.dev/target-utilization-percentage: '101'"
            )
        ),
        [
            f'{ANN}class"]: must be "kpa.autoscaling.knative.dev", '
            '"hpa.autoscaling.knative.dev" or another domain\'s, got '
            '"foo.autoscaling.knative.dev"',
            f'{ANN}target"]: must be at least 0.01, got "0"',
            f'{ANN}target-utilization-percentage"]: must be from 1 to 100, got "101"',
        ],
    ),
    (
        "a template's progress deadline (revision_validation.go)",
        ksvc(
            template(
                annotations="serving.knative.dev/progress-deadline: 1.5s, "
                "autoscaling.knative.dev/target-burst-capacity: NaN"
            )
        ),
        [
            f'{ANN}target-burst-capacity"]: must be a number, got "NaN"',
            'spec.template.metadata.annotations["serving.knative.dev/progress-deadline"]: '
            'must be a whole number of seconds, got "1.5s"',
        ],
    ),
    (
        "a KPA metric",
        ksvc(template(annotations="autoscaling.knative.dev/metric: cpu")),
        [f'{ANN}metric"]: must be "concurrency" or "rps" with the KPA, got "cpu"'],
    ),
    (
        "the HPA takes cpu",
        ksvc(
            template(
                annotations="autoscaling.knative.dev/class: hpa.autoscaling.knative.dev, "
                "autoscaling.knative.dev/metric: cpu"
            )
        ),
        [],
    ),
    (
        "an unknown autoscaling annotation",
        ksvc(template(annotations="autoscaling.knative.dev/minscale: '1'")),
        [
            f'{ANN}minscale"]: unknown autoscaling annotation (Knative ignores it: it would '
            'have no effect); did you mean "autoscaling.knative.dev/min-scale"?'
        ],
    ),
    (
        "autoscaling annotations belong on the template",
        ksvc(template(), meta=", annotations: {autoscaling.knative.dev/min-scale: '1'}"),
        [
            'metadata.annotations["autoscaling.knative.dev/min-scale"]: autoscaling annotations '
            "must be put under spec.template.metadata.annotations to work"
        ],
    ),
    (
        "a Revision's own annotations are its autoscaling settings",
        "apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata:\n  name: hello-1\n"
        "  annotations: {autoscaling.knative.dev/window: 2h}\n"
        f"spec:\n  containers: [{{image: {IMAGE}}}]\n",
        [
            'metadata.annotations["autoscaling.knative.dev/window"]: must be from 6s to 1h0m0s, '
            'got "2h"'
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_autoscaling_settings_are_typed() -> None:
    (svc, legacy) = load_path(TESTDATA / "autoscaling.yaml").resources
    assert isinstance(svc, kn.Service) and isinstance(legacy, kn.Service)
    settings, problems = read_autoscaling(svc.spec.template.metadata.annotations)
    assert problems == []
    assert settings == Autoscaling(
        autoscaler_class="kpa.autoscaling.knative.dev",
        metric="concurrency",
        target=10.0,
        target_utilization_percentage=70.0,
        target_burst_capacity=-1.0,
        min_scale=1,
        max_scale=10,
        initial_scale=2,
        activation_scale=3,
        window_s=40.0,
        panic_window_percentage=20.0,
        panic_threshold_percentage=150.0,
        scale_down_delay_s=90.0,
        scale_to_zero_pod_retention_s=65.0,
        metric_aggregation_algorithm="weighted-exponential",
    )
    settings, problems = read_autoscaling(legacy.spec.template.metadata.annotations)
    assert (settings.min_scale, settings.max_scale, problems) == (2, 4, [])
    assert read_autoscaling({}) == (Autoscaling(), [])


def test_autoscaling_rules_that_read_the_cluster_config() -> None:
    G = "autoscaling.knative.dev/"
    settings, problems = read_autoscaling({G + "initialScale": "0"}, allow_zero_initial_scale=True)
    assert (settings.initial_scale, problems) == (0, [])
    _, problems = read_autoscaling({G + "maxScale": "20"}, max_scale_limit=10)
    assert problems == [
        (G + "maxScale", 'must be from 1 to 10 (the cluster\'s max-scale-limit), got "20"')
    ]
    _, problems = read_autoscaling({G + "max-scale": "0"}, max_scale_limit=10)
    assert problems == [
        (G + "max-scale", "0 (no limit) is not allowed: the cluster's max-scale-limit is 10")
    ]
    # The metric is checked against the cluster's class when the revision names none.
    assert read_autoscaling({G + "metric": "cpu"}, pod_autoscaler_class=HPA)[1] == []
    assert read_autoscaling({G + "metric": ""}, pod_autoscaler_class=HPA)[1] == [
        (G + "metric", "must name a metric (cpu, memory, ...) with the HPA class")
    ]


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/knative/helloworld-go:latest",
        "gcr.io/knative-samples/helloworld-go",
        "docker.io/savita3020/servingcontainer",
        "busybox",
        "library/busybox:1.36",
        "localhost:5000/team/app:v1.2.3",
        "dev.local/ns/image:latest",
        "quay.io/rhdevelopers/knative-tutorial-greeter:quarkus",
        "github.com/knative/docs/code-samples/serving/secrets-go",
        "ghcr.io/a/b@sha256:" + "a" * 64,
        "ghcr.io/a/b:v1@sha256:" + "0" * 64,
        "[::1]:5000/app",
    ],
)
def test_image_references(image: str) -> None:
    assert image_problem(image) is None


@pytest.mark.parametrize(
    "image",
    ["", "ko://github.com/x/y", "a b", "app:", "app@sha256:abc", "-app", "app/", "app:t@g"],
)
def test_bad_image_references(image: str) -> None:
    assert image_problem(image) is not None
