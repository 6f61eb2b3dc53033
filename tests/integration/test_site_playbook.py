"""playbooks/site.yml and teardown.yml on the real API server, both flavors:
check -> run -> check -> run (community.crypto's four-step idempotence), diff mode, and
teardown twice (the second changes nothing)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
KINDS = [
    ("networking.gloo.solo.io/v2", "ExternalService"),
    ("networking.gloo.solo.io/v2", "VirtualGateway"),
    ("security.policy.gloo.solo.io/v2", "AccessPolicy"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "Sidecar"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "Namespace"),
]


# the namespaces of the example description (other tests work in namespaces of their own)
SCOPE = {"global", "istio-egress", "istio-system", "bookinfo"}


def managed_objects(k8s) -> set[tuple[str, str, str]]:
    found = set()
    for api_version, kind in KINDS:
        api = k8s.resources.get(api_version=api_version, kind=kind)
        for item in api.get(label_selector=MANAGED).items:
            namespace = item.metadata.namespace or ""
            if (namespace or item.metadata.name) in SCOPE:
                found.add((kind, namespace, item.metadata.name))
    return found


def changed(proc) -> int:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stats["localhost"]["changed"]


def changes(proc) -> set[tuple[str, str]]:
    """The (object, action) pairs egress_apply reported (the run needs -v)."""
    found = set()
    for line in proc.stdout.splitlines():
        if line.startswith(("changed: [", "ok: [")) and "=> {" in line:
            result = json.loads(line.split("=> ", 1)[1])
            found |= {(c["object"], c["action"]) for c in result.get("changes", [])}
    return found


@pytest.fixture
def prepared(run_playbook):
    proc = run_playbook("molecule/shared/prepare.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    yield
    run_playbook("playbooks/teardown.yml")


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
def test_check_run_check_run_then_teardown_twice(flavor, run_playbook, k8s, prepared) -> None:
    flavor_vars = {"egress_flavor": flavor}
    before = managed_objects(k8s)
    assert before == set()

    assert changed(run_playbook("playbooks/site.yml", flavor_vars, "--check")) > 0
    assert managed_objects(k8s) == set(), "check mode wrote to the cluster"

    assert changed(run_playbook("playbooks/site.yml", flavor_vars)) > 0
    written = managed_objects(k8s)
    expected_kind = "ExternalService" if flavor == "gloo" else "ServiceEntry"
    assert ("Namespace", "", "global") in written
    assert any(kind == expected_kind for kind, _ns, _name in written)

    assert changed(run_playbook("playbooks/site.yml", flavor_vars, "--check")) == 0
    assert changed(run_playbook("playbooks/site.yml", flavor_vars)) == 0
    assert managed_objects(k8s) == written

    assert changed(run_playbook("playbooks/teardown.yml", flavor_vars)) > 0
    assert managed_objects(k8s) == set()
    assert changed(run_playbook("playbooks/teardown.yml", flavor_vars)) == 0


def test_diff_mode_shows_what_would_change(run_playbook, k8s, prepared) -> None:
    proc = run_playbook("playbooks/site.yml", {"egress_flavor": "gloo"}, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # the Sidecar that would be created is shown as a diff
    assert "+++ after" in proc.stdout
    assert '+        "outboundTrafficPolicy": {' in proc.stdout
    assert '+            "mode": "REGISTRY_ONLY"' in proc.stdout
    assert managed_objects(k8s) == set()


def test_drift_is_repaired_by_the_next_run(run_playbook, k8s, prepared) -> None:
    assert changed(run_playbook("playbooks/site.yml")) > 0
    services = k8s.resources.get(api_version="networking.gloo.solo.io/v2", kind="ExternalService")
    policies = k8s.resources.get(api_version="networking.k8s.io/v1", kind="NetworkPolicy")
    services.delete(name="httpbin.org", namespace="global")
    policy = policies.get(name="meshguard-egress-lockdown", namespace="bookinfo")
    policies.patch(
        name=policy.metadata.name,
        namespace="bookinfo",
        body={"spec": {"egress": []}},
        content_type="application/merge-patch+json",
    )

    repaired = run_playbook("playbooks/site.yml", None, "-v")
    assert changed(repaired) == 1
    assert changes(repaired) == {
        ("ExternalService/global/httpbin.org", "create"),
        ("NetworkPolicy/bookinfo/meshguard-egress-lockdown", "update"),
    }
    assert services.get(name="httpbin.org", namespace="global").spec.ports[0].number == 443
    assert policies.get(name="meshguard-egress-lockdown", namespace="bookinfo").spec.egress


def test_a_gloo_wildcard_host_goes_to_its_endpoints_and_is_pruned_with_them(
    run_playbook, k8s, prepared
) -> None:
    """A wildcard host (flavor gloo) with the settings Gloo needs: its ExternalService selects
    the ExternalEndpoints written beside it; a re-run changes nothing; dropping the host
    prunes the endpoints with it; teardown leaves none."""
    wildcard = {
        "host": "*.example.com",
        "endpoints": ["edge.example.net", "203.0.113.10"],
        "ports": [{"number": 443, "protocol": "HTTPS", "sni": "edge.example.net"}],
    }
    example = {"egress_override_zz_wildcard": {"services": [wildcard]}}
    services = k8s.resources.get(api_version="networking.gloo.solo.io/v2", kind="ExternalService")
    endpoints = k8s.resources.get(api_version="networking.gloo.solo.io/v2", kind="ExternalEndpoint")

    assert changed(run_playbook("playbooks/site.yml", example)) > 0
    service = services.get(name="wildcard.example.com", namespace="global").to_dict()["spec"]
    assert service["hosts"] == ["*.example.com"]
    assert service["ports"][0]["clientsideTls"] == {"sni": "edge.example.net"}
    selected = endpoints.get(
        namespace="global",
        label_selector=",".join(f"{k}={v}" for k, v in service["selector"].items()),
    ).items
    assert sorted((e.metadata.name, e.spec.address) for e in selected) == [
        ("wildcard.example.com-1", "edge.example.net"),
        ("wildcard.example.com-2", "203.0.113.10"),
    ]
    assert {e.metadata.labels["meshguard.io/description"] for e in selected} == {"egress"}
    assert changed(run_playbook("playbooks/site.yml", example)) == 0

    assert changed(run_playbook("playbooks/site.yml")) > 0  # the example alone: pruned
    assert endpoints.get(namespace="global", label_selector=MANAGED).items == []
    assert changed(run_playbook("playbooks/site.yml", example)) > 0
    assert changed(run_playbook("playbooks/teardown.yml", example)) > 0
    assert endpoints.get(namespace="global", label_selector=MANAGED).items == []
