"""`ami service create/update`'s flags as Knative YAML (`cli.ksvc_flags`) and kn's
traffic computation (`cli.ksvc_traffic`): pure, no mesh. What they build must load
through Ami's own Knative loader."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from amimesh.cli import main
from amimesh.cli.ksvc_flags import (
    FlagError,
    TemplateFlags,
    new_service,
    pairs,
    port_of,
    revision_name,
    updated_service,
)
from amimesh.cli.ksvc_traffic import TrafficFlags, compute, split_commas
from amimesh.resources import knative_serving as ks
from amimesh.resources import parse_documents

HELLO = TemplateFlags(
    image="example.com/hello",
    cmd=("python3", "-m", "http.server"),
    args=("$(PORT)",),
    env=("TARGET=one", "MODE=fast"),
    port="8080",
    scale_min=1,
    scale_max=3,
    concurrency_limit=10,
    annotations=("team=a", "autoscaling.knative.dev/window=6s"),
)


def loads(service: dict[str, Any]) -> ks.Service:
    """Through the loader `ami apply` uses: the YAML is valid Knative."""
    result = parse_documents(yaml.safe_dump(service), "t.yaml")
    assert result.ok, [str(e) for e in result.errors]
    (loaded,) = result.resources
    assert isinstance(loaded, ks.Service)
    return loaded


def test_create_writes_kn_s_service() -> None:
    service = new_service("hello", "shop", HELLO)
    assert service == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "shop", "annotations": {"team": "a"}},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "team": "a",
                        "autoscaling.knative.dev/window": "6s",
                        "autoscaling.knative.dev/min-scale": "1",
                        "autoscaling.knative.dev/max-scale": "3",
                    }
                },
                "spec": {
                    "containers": [
                        {
                            "image": "example.com/hello",
                            "command": ["python3", "-m", "http.server"],
                            "args": ["$(PORT)"],
                            "env": [
                                {"name": "TARGET", "value": "one"},
                                {"name": "MODE", "value": "fast"},
                            ],
                            "ports": [{"containerPort": 8080}],
                        }
                    ],
                    "containerConcurrency": 10,
                },
            }
        },
    }
    loaded = loads(service)
    assert loaded.namespace == "shop" and loaded.spec.template.spec.containerConcurrency == 10


def test_create_with_the_image_only_and_a_revision_name() -> None:
    flags = TemplateFlags(image="example.com/hello", revision_name="v1", port="h2c:9000")
    service = new_service("hello", "default", flags)
    template = service["spec"]["template"]
    assert template["metadata"] == {"name": "hello-v1"}
    assert template["spec"]["containers"] == [
        {"image": "example.com/hello", "ports": [{"containerPort": 9000, "name": "h2c"}]}
    ]
    assert loads(service).spec.template.metadata.name == "hello-v1"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (TemplateFlags(), "--image: required"),
        (TemplateFlags(image="x", env=("TARGET",)), "--env 'TARGET': want NAME=value"),
        (TemplateFlags(image="x", env=("TARGET-",)), "--env 'TARGET-': want NAME=value"),
        (TemplateFlags(image="x", annotations=("=v",)), "--annotation '=v': want"),
        (TemplateFlags(image="x", port="http"), "--port 'http': want [NAME:]PORT"),
        (TemplateFlags(image="x", revision_name="{{.Random 5}}"), "--revision-name"),
    ],
)
def test_create_refuses_a_bad_flag_naming_it(flags: TemplateFlags, message: str) -> None:
    with pytest.raises(FlagError, match=message.replace("[", r"\[").replace("]", r"\]")):
        new_service("hello", "default", flags)


def test_pairs_and_ports_and_revision_names() -> None:
    assert pairs(["a=1", "b=x=y", "a=2"], "--env", unset=False) == ({"a": "2", "b": "x=y"}, [])
    assert pairs(["a=1", "a-", "b-"], "--env", unset=True) == ({}, ["a", "b"])
    assert pairs(["a-", "a=3"], "--env", unset=True) == ({"a": "3"}, [])
    assert port_of("8080") == {"containerPort": 8080}
    assert port_of("h2c:8080") == {"containerPort": 8080, "name": "h2c"}
    assert revision_name("hello", "{{.Service}}-v2") == "hello-v2"
    assert revision_name("hello", "hello-v2") == "hello-v2"
    assert revision_name("hello", "v2") == "hello-v2"


def listed(service: dict[str, Any]) -> dict[str, Any]:
    """As the API lists it: with a status, its source and a creation time."""
    out = dict(service)
    out["metadata"] = {**service["metadata"], "creationTimestamp": "2024-01-01T00:00:00Z"}
    out["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    out["source"] = "api"
    return out


def test_update_changes_what_the_flags_say_and_drops_what_the_api_added() -> None:
    current = listed(new_service("hello", "default", HELLO))
    flags = TemplateFlags(
        env=("TARGET=two", "MODE-", "NEW=1"),
        args=("$(PORT)", "--bind", "127.0.0.1"),
        scale_max=5,
        annotations=("team-",),
    )
    service = updated_service(current, flags)
    assert "status" not in service and "source" not in service
    assert "creationTimestamp" not in service["metadata"]
    assert "annotations" not in service["metadata"]  # team- unset it on the Service
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "TARGET", "value": "two"}, {"name": "NEW", "value": "1"}]
    assert container["args"] == ["$(PORT)", "--bind", "127.0.0.1"]
    assert container["command"] == ["python3", "-m", "http.server"]  # kept
    assert service["spec"]["template"]["metadata"]["annotations"] == {
        "autoscaling.knative.dev/window": "6s",
        "autoscaling.knative.dev/min-scale": "1",
        "autoscaling.knative.dev/max-scale": "5",
    }
    loads(service)
    assert current["status"]  # the argument is left alone


def test_update_of_a_template_drops_the_name_it_brought_unless_one_is_given() -> None:
    named = new_service("hello", "default", TemplateFlags(image="x", revision_name="v1"))
    again = updated_service(named, TemplateFlags(env=("A=b",)))
    assert "metadata" not in again["spec"]["template"]  # the next generated name
    renamed = updated_service(named, TemplateFlags(env=("A=b",), revision_name="v2"))
    assert renamed["spec"]["template"]["metadata"] == {"name": "hello-v2"}
    # No template flag: the template (and its name) stays as it was.
    assert updated_service(named, TemplateFlags())["spec"]["template"]["metadata"] == {
        "name": "hello-v1"
    }


def test_update_changes_the_serving_container() -> None:
    service = new_service("hello", "default", TemplateFlags(image="x"))
    containers = [
        {"image": "sidecar"},
        {"image": "app", "ports": [{"containerPort": 8080}]},
    ]
    service["spec"]["template"]["spec"]["containers"] = containers
    out = updated_service(service, TemplateFlags(image="app:2"))
    assert [c["image"] for c in out["spec"]["template"]["spec"]["containers"]] == [
        "sidecar",
        "app:2",
    ]


# --- traffic ---------------------------------------------------------------------------


def latest(percent: int, tag: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"tag": tag} if tag else {}
    return {**out, "latestRevision": True, "percent": percent}


def rev(name: str, percent: int, tag: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"tag": tag} if tag else {}
    return {**out, "revisionName": name, "latestRevision": False, "percent": percent}


def test_a_split_between_a_revision_and_the_latest() -> None:
    flags = TrafficFlags(traffic=("hello-00001=30", "@latest=70%"))
    assert compute([], flags) == [latest(70), rev("hello-00001", 30)]


def test_tags_then_shares_by_tag_and_untag() -> None:
    tagged = compute([], TrafficFlags(tags=("hello-00001=old", "@latest=new")))
    assert tagged == [latest(100, "new"), rev("hello-00001", 0, "old")]
    split = compute(tagged, TrafficFlags(traffic=("old=10", "new=90")))
    assert split == [latest(90, "new"), rev("hello-00001", 10, "old")]
    # A 0% target that loses its tag is gone; the latest keeps its share.
    untagged = compute(split, TrafficFlags(untags=("old",), traffic=("@latest=100",)))
    assert untagged == [latest(100, "new")]


def test_written_traffic_is_kept_in_its_own_form() -> None:
    written = [{"latestRevision": True, "percent": 100}, {"revisionName": "a", "tag": "x"}]
    assert compute(written, TrafficFlags(tags=("b=y",))) == [*written, rev("b", 0, "y")]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (TrafficFlags(traffic=("a=30",)), "add up to 30%"),
        (TrafficFlags(traffic=("a=60", "@latest=60")), "add up to 120%"),
        (TrafficFlags(traffic=("a=x",)), "'x' is not a whole percent"),
        (TrafficFlags(traffic=("a=101",)), "0 to 100"),
        (TrafficFlags(traffic=("a",)), "want REVISION=PERCENT"),
        (TrafficFlags(traffic=("a=50", "a=50")), "given a share twice"),
        (TrafficFlags(tags=("a=Bad",)), "a tag is a DNS label"),
        (TrafficFlags(tags=("@latest=x", "@latest=y")), "@latest is tagged twice"),
        (TrafficFlags(untags=("nope",)), "no traffic target has the tag 'nope'"),
    ],
)
def test_bad_traffic_flags_say_which_and_why(flags: TrafficFlags, message: str) -> None:
    with pytest.raises(FlagError, match=message):
        compute([], flags)


def test_a_tag_on_another_target_must_be_untagged_first() -> None:
    current = [latest(100, "new"), rev("a", 0, "old")]
    with pytest.raises(FlagError, match="add --untag old"):
        compute(current, TrafficFlags(tags=("b=old",)))
    with pytest.raises(FlagError, match="has the tag 'new'; add --untag new"):
        compute(current, TrafficFlags(tags=("@latest=newer",)))
    moved = compute(current, TrafficFlags(untags=("old",), tags=("b=old",)))
    assert moved == [latest(100, "new"), rev("b", 0, "old")]


def test_kn_list_flags_split_on_commas() -> None:
    assert split_commas(["a=1,b=2", "c=3", ""]) == ("a=1", "b=2", "c=3")


def test_the_traffic_loads_as_knative_traffic() -> None:
    service = new_service("hello", "default", TemplateFlags(image="x"))
    service["spec"]["traffic"] = compute(
        [], TrafficFlags(traffic=("hello-00001=50", "@latest=50"), tags=("hello-00001=v1",))
    )
    assert [t.tag for t in loads(service).spec.traffic] == [None, "v1"]


def test_cmd_and_arg_take_values_that_start_with_a_dash() -> None:
    argv = ["service", "create", "s", "--cmd", "python3", "--arg", "-m", "--arg", "--bind"]
    glued = main.dash_values([*argv, "-n", "x"])
    assert glued == [*argv[:3], "--cmd=python3", "--arg=-m", "--arg=--bind", "-n", "x"]
    args = main.parser().parse_args(glued)
    assert args.arg == ["-m", "--bind"] and args.namespace == "x"
    assert main.dash_values(["get", "vs", "--arg", "-m"]) == ["get", "vs", "--arg", "-m"]
    assert main.dash_values(["--version"]) == ["--version"]
