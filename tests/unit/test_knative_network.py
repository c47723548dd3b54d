"""`config-network`'s templates and keys, as knative/networking reads them."""

import pytest

from amimesh.resources import knative_network as kn
from amimesh.resources import parse_documents


def test_knatives_defaults() -> None:
    net = kn.parse({})
    assert net.host("hello", "shop", "example.com") == "hello.shop.example.com"
    assert net.tag_name("v2", "hello") == "v2-hello"
    assert (net.external_scheme, net.http_protocol) == ("http", "enabled")


def test_fields_maps_index_and_trims() -> None:
    net = kn.parse(
        {
            "domain-template": '{{ .Name -}} . {{- index .Labels "app" }}.'
            '{{index .Annotations "z"}}.{{.Domain}}',
            "tagTemplate": "{{.Tag}}--{{.Name}}",
        }
    )
    assert net.host("a", "ns", "ex.com", {"z": "eu"}, {"app": "web"}) == "a.web.eu.ex.com"
    assert net.tag_name("t", "a") == "t--a"


def test_a_missing_map_field_prints_as_go_does_and_fails_knatives_check() -> None:
    # `.Labels.app` of no labels is Go's "<no value>": not a host, as Knative finds.
    with pytest.raises(kn.NetworkConfigError, match="host name"):
        kn.parse({"domain-template": "{{.Name}}.{{.Labels.app}}.{{.Domain}}"})


def test_the_new_key_overrides_the_old_one() -> None:
    net = kn.parse(
        {"domainTemplate": "{{.Name}}.old.{{.Domain}}", "domain-template": "{{.Name}}.{{.Domain}}"}
    )
    assert net.host("a", "ns", "ex.com") == "a.ex.com"


@pytest.mark.parametrize(
    ("data", "key", "says"),
    [
        ({"domain-template": "{{.Name}}.{{.Domain}}/path"}, "domain-template", "host name"),
        ({"domain-template": "{{if .Name}}x{{end}}"}, "domain-template", "not one Ami runs"),
        ({"domain-template": "{{.Nope}}.{{.Domain}}"}, "domain-template", "'Nope'"),
        ({"domain-template": "{{.Name}.{{.Domain}}"}, "domain-template", "not one Ami runs"),
        ({"tag-template": "{{.Namespace}}-{{.Tag}}"}, "tag-template", "'Namespace'"),
        ({"http-protocol": "sometimes"}, "http-protocol", "not supported"),
        ({"default-external-scheme": "ftp"}, "default-external-scheme", "http or https"),
    ],
)
def test_bad_values_are_refused_with_their_key(data: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(kn.NetworkConfigError) as err:
        kn.parse(data)
    assert err.value.key == key
    assert says in str(err.value)


def test_a_bad_config_network_is_an_error_naming_the_key() -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-network, namespace: knative-serving}
data:
  domain-template: "{{.Name}}.{{.Domain}}/x"
"""
    result = parse_documents(text, "net.yaml")
    assert result.errors
    assert "data.domain-template" in str(result.errors[0])
