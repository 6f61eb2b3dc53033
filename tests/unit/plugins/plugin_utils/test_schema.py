"""The schema's helpers: defaults are fresh copies, an unknown path names itself; and the
Namespace object the converge writes for the plan's namespaces."""

from __future__ import annotations

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.render import namespace_object
from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import default, lookup


def test_a_mapping_default_is_a_fresh_copy_two_levels_deep() -> None:
    dns = default("lockdown.dns")
    assert dns == {"namespace": "kube-system", "pod_selector": {"k8s-app": "kube-dns"}}
    dns["pod_selector"]["k8s-app"] = "coredns"
    dns["namespace"] = "dns"
    assert default("lockdown.dns") == {
        "namespace": "kube-system",
        "pod_selector": {"k8s-app": "kube-dns"},
    }


def test_a_list_default_is_a_fresh_copy() -> None:
    namespaces = default("lockdown.namespaces")
    assert namespaces == []
    namespaces.append("bookinfo")
    assert default("lockdown.namespaces") == []


def test_an_unknown_path_names_the_missing_key() -> None:
    with pytest.raises(KeyError) as caught:
        lookup("gateway.replicsa")
    assert caught.value.args == ("gateway.replicsa",)


def test_namespace_object() -> None:
    assert namespace_object("istio-egress", "gateway") == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "istio-egress",
            "labels": {
                "app.kubernetes.io/managed-by": "meshguard.egress",
                "meshguard.io/component": "gateway",
                "kubernetes.io/metadata.name": "istio-egress",
            },
        },
    }
