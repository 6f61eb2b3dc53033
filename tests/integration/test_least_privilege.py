"""The shipped RBAC (playbooks/rbac) is enough for converge and teardown, and needed, under
both flavors; and it grants nothing the runs do not use (the API server's audit log of the
runs is compared with the ClusterRole, rule by rule). The same comparison for the verify
ClusterRole, with the verification modules run on the test bed's node (pod, debug-container
and bypass-pod sources, and the gateway access log).

The local control plane enforces RBAC; its static-token user ``meshguard-automation`` has
no rights until playbooks/rbac/apply.yml binds the collection's ClusterRoles to it.

The RBAC files are also applied exactly as playbooks/rbac/README.md tells users, for their
default subject, the ServiceAccount ``meshguard-system/meshguard-automation``:
``kubectl apply -f clusterroles.yml -f bindings.yml`` (and ``audit-clusterrole.yml`` /
``audit-bindings.yml``), or ``ansible-playbook playbooks/rbac/apply.yml`` with no extra
variables; the runs then use that ServiceAccount's token (``kubectl create token``).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.kube import plural
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import MANAGED_KINDS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AUTOMATION = "meshguard-automation"
# the default subject of bindings.yml, audit-bindings.yml and apply.yml
SA_NAMESPACE = "meshguard-system"
SA_NAME = "meshguard-automation"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
RBAC_WAIT = 60.0  # failure bound of the wait for new bindings to take effect
MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
# what the run reads first: any kind of the plan (reads run in parallel)
PLAN_RESOURCES = {
    "namespaces",
    "nodes",
    "secrets",
    "sidecars",
    "telemetries",
    "virtualgateways",
    "externalservices",
    "externalendpoints",
    "accesspolicies",
    "networkpolicies",
    "serviceentries",
    "virtualservices",
    "destinationrules",
    "gateways",
    "authorizationpolicies",
}
GRANT = {"rbac_subject_kind": "User", "rbac_subject_name": AUTOMATION}


def forbidden(user: str) -> re.Pattern[str]:
    """The API server's 403 for ``user``, with the verb and resource as groups."""
    name = re.escape(user)
    return re.compile(rf'is forbidden: User \\*"{name}\\*" cannot (\w+) resource \\*"([\w/]+)\\*"')


FORBIDDEN = forbidden(AUTOMATION)


@pytest.fixture
def automation_kubeconfig(testbed_dir: Path | None) -> str:
    if testbed_dir is None:
        pytest.skip("needs the local control plane's static-token user meshguard-automation")
    import testbed

    return testbed.LocalControlPlane(testbed_dir).kubeconfig_for(AUTOMATION)


@pytest.fixture
def prepared(run_playbook: Any, k8s: Any) -> Iterator[None]:
    """prepare.yml as admin; afterwards (as admin) the RBAC and anything left are removed."""
    assert run_playbook("molecule/shared/prepare.yml").returncode == 0
    yield
    run_playbook("playbooks/rbac/apply.yml", {**GRANT, "rbac_state": "absent"})
    if managed_namespaces(k8s):
        run_playbook("playbooks/teardown.yml")


def managed_namespaces(k8s: Any) -> list[str]:
    namespaces = k8s.resources.get(api_version="v1", kind="Namespace")
    return [ns.metadata.name for ns in namespaces.get(label_selector=MANAGED).items]


def assert_ok(proc: Any) -> int:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stats["localhost"]["changed"]


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
def test_converge_and_teardown_need_the_shipped_rbac(
    run_playbook: Any, automation_kubeconfig: str, prepared: None, k8s: Any, flavor: str
) -> None:
    as_automation = {"kubeconfig_path": automation_kubeconfig}
    description = {"egress_flavor": flavor}

    denied = run_playbook("playbooks/site.yml", description, **as_automation)
    assert denied.returncode != 0
    match = FORBIDDEN.search(denied.stdout)
    assert match, f"no 403 naming the resource:\n{denied.stdout[-3000:]}"
    assert match.group(2) in PLAN_RESOURCES, match.group(0)

    assert assert_ok(run_playbook("playbooks/rbac/apply.yml", GRANT)) > 0
    converge_and_teardown(run_playbook, automation_kubeconfig, flavor, k8s)


def converge_and_teardown(run_playbook: Any, kubeconfig: str, flavor: str, k8s: Any) -> None:
    """site.yml, site.yml again (nothing changed), teardown.yml, all as ``kubeconfig``'s
    identity; the managed namespaces (read as admin) exist after the first and are gone
    after teardown."""
    as_subject = {"kubeconfig_path": kubeconfig}
    description = {"egress_flavor": flavor}
    assert assert_ok(run_playbook("playbooks/site.yml", description, **as_subject)) > 0, flavor
    assert sorted(managed_namespaces(k8s)) == ["global", "istio-egress"], flavor
    assert assert_ok(run_playbook("playbooks/site.yml", description, **as_subject)) == 0, flavor
    # teardown ends by proving that no object carrying the managed-by label is left
    assert assert_ok(run_playbook("playbooks/teardown.yml", description, **as_subject)) > 0
    assert managed_namespaces(k8s) == [], flavor


# --------------------------------------------------------------------------- as documented


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS`` in the repository with ``KUBECONFIG=kubeconfig``, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
    env.update(KUBECONFIG=kubeconfig, PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run(
        [str(VENV_BIN / "kubectl"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc


def service_account_kubeconfig(admin_kubeconfig: str, path: Path) -> str:
    """A kubeconfig with the token of the ServiceAccount meshguard-system/meshguard-automation
    (``kubectl -n meshguard-system create token meshguard-automation``, as the README says)
    and nothing else of the admin's."""
    token = kubectl(admin_kubeconfig, "-n", SA_NAMESPACE, "create", "token", SA_NAME).stdout.strip()
    assert token.count(".") == 2, token  # a JWT
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    config["users"] = [{"name": SA_NAME, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = SA_NAME
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


def wait_until_allowed(kubeconfig: str, *can_i: str) -> None:
    """New bindings take effect once the API server's RBAC informer has them: ask the API
    server (SelfSubjectAccessReview) until it answers yes; fail after RBAC_WAIT."""
    deadline = time.monotonic() + RBAC_WAIT
    while True:
        proc = kubectl(kubeconfig, "auth", "can-i", *can_i, check=False)
        if proc.stdout.strip() == "yes":
            return
        assert time.monotonic() < deadline, f"still not allowed: can-i {can_i}: {proc}"
        time.sleep(0.5)


@pytest.fixture
def admin_kubeconfig(testbed_dir: Path | None, kubeconfig: str) -> str:
    if testbed_dir is None:
        pytest.skip("writes and removes the shipped ClusterRoles: only on the local control plane")
    return kubeconfig


def test_bindings_manifests_as_documented(
    run_playbook: Any, admin_kubeconfig: str, prepared: None, k8s: Any, tmp_path: Path
) -> None:
    """kubectl apply -f clusterroles.yml -f bindings.yml; both flavors with the
    ServiceAccount's token."""
    manifests = ("-f", "playbooks/rbac/clusterroles.yml", "-f", "playbooks/rbac/bindings.yml")
    applied = kubectl(admin_kubeconfig, "apply", *manifests).stdout
    assert f"serviceaccount/{SA_NAME} created" in applied, applied
    try:
        as_sa = service_account_kubeconfig(admin_kubeconfig, tmp_path / "kubeconfig-sa")
        wait_until_allowed(as_sa, "patch", "nodes")
        wait_until_allowed(as_sa, "create", "pods", "--subresource=exec")  # the verify role
        for flavor in ("gloo", "istio"):
            converge_and_teardown(run_playbook, as_sa, flavor, k8s)
    finally:
        kubectl(admin_kubeconfig, "delete", "--ignore-not-found", *manifests)


def test_apply_playbook_with_its_default_subject(
    run_playbook: Any, admin_kubeconfig: str, prepared: None, k8s: Any, tmp_path: Path
) -> None:
    """ansible-playbook playbooks/rbac/apply.yml with no variables binds the ServiceAccount
    meshguard-system/meshguard-automation: refused before, both flavors after."""
    kubectl(admin_kubeconfig, "create", "namespace", SA_NAMESPACE)
    try:
        kubectl(admin_kubeconfig, "-n", SA_NAMESPACE, "create", "serviceaccount", SA_NAME)
        as_sa = service_account_kubeconfig(admin_kubeconfig, tmp_path / "kubeconfig-sa")
        denied = run_playbook("playbooks/site.yml", kubeconfig_path=as_sa)
        assert denied.returncode != 0
        match = forbidden(SA_USER).search(denied.stdout)
        assert match, f"no 403 naming the resource:\n{denied.stdout[-3000:]}"
        assert match.group(2) in PLAN_RESOURCES, match.group(0)

        assert assert_ok(run_playbook("playbooks/rbac/apply.yml")) > 0
        wait_until_allowed(as_sa, "patch", "nodes")
        wait_until_allowed(as_sa, "create", "pods", "--subresource=exec")
        for flavor in ("gloo", "istio"):
            converge_and_teardown(run_playbook, as_sa, flavor, k8s)
    finally:
        assert_ok(run_playbook("playbooks/rbac/apply.yml", {"rbac_state": "absent"}))
        kubectl(admin_kubeconfig, "delete", "namespace", SA_NAMESPACE, "--ignore-not-found")


def test_audit_bindings_as_documented(
    run_playbook: Any, admin_kubeconfig: str, prepared: None, tmp_path: Path
) -> None:
    """kubectl apply -f audit-clusterrole.yml -f audit-bindings.yml; playbooks/audit.yml with
    the ServiceAccount's token reads every kind (no audit.incomplete). Applied in two steps
    to prove both halves: the bindings alone leave the audit incomplete (403)."""
    junit = tmp_path / "audit.xml"
    audit_args = ("-e", "audit_fail_on=none", "-e", f"audit_junit_path={junit}")
    bindings = ("-f", "playbooks/rbac/audit-bindings.yml")
    role = ("-f", "playbooks/rbac/audit-clusterrole.yml")
    kubectl(admin_kubeconfig, "apply", *bindings)
    try:
        as_sa = service_account_kubeconfig(admin_kubeconfig, tmp_path / "kubeconfig-sa")
        assert_ok(run_playbook("playbooks/audit.yml", None, *audit_args, kubeconfig_path=as_sa))
        incomplete = audit_findings(junit).get("audit.incomplete", "")
        assert f'User "{SA_USER}" cannot list resource' in incomplete, audit_findings(junit)

        kubectl(admin_kubeconfig, "apply", *role)
        wait_until_allowed(as_sa, "list", "accesspolicies.security.policy.gloo.solo.io")
        wait_until_allowed(as_sa, "get", "configmaps", "-n", "istio-system")
        proc = run_playbook("playbooks/audit.yml", None, *audit_args, kubeconfig_path=as_sa)
        assert_ok(proc)
        assert "audit.incomplete" not in audit_findings(junit), audit_findings(junit)
        assert "egress audit: " in proc.stdout, proc.stdout[-3000:]
    finally:
        kubectl(admin_kubeconfig, "delete", "--ignore-not-found", *role, *bindings)


def audit_findings(junit: Path) -> dict[str, str]:
    """check id -> the findings of that check (its testcase's output), from the audit's JUnit
    report; only checks with findings."""
    findings = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        out = case.findtext("system-out") or ""
        if out and out != "no findings":
            findings[case.get("name", "").split(":")[0]] = out
    return findings


# --------------------------------------------------------------------------- nothing more

AUTOMATION_ROLE = "meshguard-egress-automation"
# Helm's release records and the objects of the gateway chart (molecule/shared/gateway-vars.yml
# renders a DaemonSet; Istio's chart renders a Deployment by default, a
# HorizontalPodAutoscaler with autoscaling on, a PodDisruptionBudget).
HELM_OBJECTS = {
    ("", "secrets"),
    ("", "serviceaccounts"),
    ("", "services"),
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("policy", "poddisruptionbudgets"),
}
NOT_RENDERED_HERE = {
    ("apps", "deployments"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("policy", "poddisruptionbudgets"),
}


PLAN_KINDS = {
    (api_version.rpartition("/")[0], plural(kind, api_version)[0])
    for api_version, kind in MANAGED_KINDS
}


def not_exercised(grant: tuple[str, str, str]) -> str | None:
    """Why a grant that the runs below do not use is still granted (None: no reason)."""
    group, resource, verb = grant
    if (group, resource) in NOT_RENDERED_HERE:
        return "an object of Istio's gateway chart that the test's chart values do not render"
    if (group, resource) == ("networking.gloo.solo.io", "externalendpoints") and verb != "list":
        return (
            "written only for a service with endpoints (a gloo wildcard host); the example "
            "description has none (every run lists them, to prune)"
        )
    if (group, resource) in HELM_OBJECTS and verb in ("patch", "update", "list"):
        return "Helm upgrades an object whose chart or values changed (patch, or update)"
    if (group, resource) in (("", "pods"), ("apps", "replicasets")):
        return "Helm's --wait on a gateway Deployment reads its ReplicaSets and pods"
    if verb == "watch":
        return (
            "watch-based waits (Helm 4, kubectl wait); the chart's Role grants secrets watch, "
            "and creating a Role needs what it grants"
        )
    if verb == "patch":
        return "patched only when the cluster differs from the description (drift repair)"
    if verb == "create" and (group, resource) in PLAN_KINDS:
        return (
            "server-side apply creates an absent object with a PATCH (the audit log records "
            "patch); the API server authorizes that creation as create"
        )
    return None


def role_grants(name: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every rule of a shipped ClusterRole."""
    doc = yaml.safe_load((ROOT / "playbooks" / "rbac" / "clusterroles.yml").read_text())
    [role] = [r for r in doc["items"] if r["metadata"]["name"] == name]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def audited_use(
    audit_log: Path, user: str, since: datetime.datetime | None = None
) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of every request the API server authorized
    for ``user`` (received at ``since`` or later, when given)."""
    used = set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete" or event["user"]["username"] != user:
            continue
        received = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"])
        if since is not None and received < since:
            continue
        ref = event.get("objectRef")
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        if not ref or decision != "allow":
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return used


@pytest.fixture
def audited_control_plane(
    testbed_dir: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Path]]:
    """A control plane of this test only whose API server writes an audit log."""
    if testbed_dir is None:
        pytest.skip("reads the API server's audit log: needs a local control plane")
    import testbed

    audit_log = tmp_path / "audit.log"
    monkeypatch.setitem(os.environ, "MESHGUARD_AUDIT_LOG", str(audit_log))
    with testbed.LocalControlPlane(tmp_path / "control-plane") as control_plane:
        yield control_plane, audit_log


def test_the_automation_role_grants_nothing_the_runs_do_not_use(
    run_playbook: Any, audited_control_plane: tuple[Any, Path]
) -> None:
    control_plane, audit_log = audited_control_plane
    admin = {"kubeconfig_path": control_plane.kubeconfig}
    as_automation = {"kubeconfig_path": control_plane.kubeconfig_for(AUTOMATION)}
    assert_ok(run_playbook("molecule/shared/prepare.yml", **admin))
    assert_ok(run_playbook("playbooks/rbac/apply.yml", GRANT, **admin))
    for flavor in ("gloo", "istio"):
        description = {"egress_flavor": flavor}
        assert_ok(run_playbook("playbooks/site.yml", description, **as_automation))
        assert_ok(run_playbook("playbooks/site.yml", description, **as_automation))  # upgrade
        assert_ok(run_playbook("playbooks/teardown.yml", description, **as_automation))

    used = audited_use(audit_log, AUTOMATION)
    granted = role_grants(AUTOMATION_ROLE)
    assert used, "the audit log shows no request of the automation user"
    unused = sorted(g for g in granted - used if not_exercised(g) is None)
    assert unused == [], f"granted but never used by converge/upgrade/teardown: {unused}"
    # the reasons are not a blanket: the runs do use most of what the role grants
    assert len(used & granted) >= len(granted) // 2, sorted(granted - used)
    assert used <= granted | {("authorization.k8s.io", "selfsubjectaccessreviews", "create")}


# --------------------------------------------------------------------------- the verify role

VERIFY_ROLE = "meshguard-egress-verify"


def verify_not_exercised(grant: tuple[str, str, str]) -> str | None:
    """Why a verify grant that the run below does not use is still granted (None: none)."""
    if grant == ("", "pods/exec", "create"):
        return (
            "an exec sent as a POST (SPDY, what kubectl sends) is authorized as create, and "
            "newer API servers require create for a WebSocket exec too; this API server "
            "(1.20) authorizes the Python client's WebSocket GET as get"
        )
    return None


@pytest.fixture
def verify_role_only(node_testbed: Any) -> Iterator[str]:
    """The shipped verify ClusterRole's rules, alone, bound to the node test bed's
    automation user; yields that user's kubeconfig."""
    from kubernetes import client, config

    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(node_testbed.kubeconfig))
    doc = yaml.safe_load((ROOT / "playbooks" / "rbac" / "clusterroles.yml").read_text())
    [role] = [r for r in doc["items"] if r["metadata"]["name"] == VERIFY_ROLE]
    name = f"mg-test-verify-{secrets.token_hex(3)}"
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": role["rules"]})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "User", "name": AUTOMATION,
                          "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )  # fmt: skip
    try:
        yield node_testbed.kubeconfig_for(AUTOMATION)
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def _allowed(kubeconfig: str, verb: str, namespace: str) -> bool:
    from kubernetes import client, config

    api = client.AuthorizationV1Api(config.new_client_from_config(kubeconfig))
    attributes = {"verb": verb, "resource": "pods", "namespace": namespace}
    review = api.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}})
    return bool(review.status.allowed)


def test_the_verify_role_grants_nothing_verification_does_not_use(
    node_testbed: Any, node_namespace: str, verify_role_only: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import node_pods
    from envoy_gateway import istio_json_log_line, run_module

    images, ns = node_pods.IMAGES, node_namespace
    core = node_pods.core_api(node_testbed.kubeconfig)
    now = datetime.datetime.now(datetime.timezone.utc)
    record = istio_json_log_line("httpbin.org", "/get", now)
    node_pods.run_pod(core, ns, node_pods.pod_body(
        "gateway",
        [node_pods.container("istio-proxy", images["curl"],
                             ["/bin/sh", "-c", f"echo '{record}'; exec sleep 3600"])],
        labels={"istio": "egressgateway"},
    ))  # fmt: skip
    client_pod = node_pods.container("curl", images["curl"], ["sleep", "3600"])
    node_pods.run_pod(core, ns, node_pods.pod_body("client", [client_pod]))
    node_pods.run_pod(core, ns, node_pods.pod_body("nocurl", [
        node_pods.container("app", images["pause"])
    ]))  # fmt: skip
    # the new binding is in the authorizer's cache (asked before the audited window)
    node_pods.wait_for(lambda: _allowed(verify_role_only, "create", ns), 30, "verify role bound")

    since = datetime.datetime.now(datetime.timezone.utc)
    refused = "http://127.0.0.1:1/"  # inside each pod: nothing listens there
    sources = [
        {"namespace": ns, "label_selector": "app=client", "container": "curl",
         "service_account": "default"},
        {"namespace": ns, "pod": "nocurl", "container": "app", "debug_image": images["curl"]},
        {"namespace": ns, "bypass_image": images["curl"]},
    ]  # fmt: skip
    probes = [{"url": refused, "expect": "unreachable", "source": s} for s in sources]
    as_automation = {"kubeconfig": verify_role_only}
    result = run_module("egress_probe", {"probes": probes, "deadline": 20, **as_automation},
                        tmp_path)  # fmt: skip
    assert not result["failed"], result
    assert [p["outcome"] for p in result["probes"]] == ["unreachable"] * 3, result["probes"]
    [bypass] = result["bypass_pods"]
    assert bypass["deleted"] is True
    log = run_module(
        "gateway_access_log",
        {"namespace": ns, "label_selector": "istio=egressgateway", "container": "istio-proxy",
         "expect_requests": [{"authority": "httpbin.org", "path": "/get"}], **as_automation},
        tmp_path,
    )  # fmt: skip
    # what the log holds is tests/integration/test_verify_node.py's subject; here only that
    # the role lets the module read it (the audit log below: pods/log get, allowed)
    assert "403" not in log.get("msg", ""), log

    audit = node_testbed.dir / "audit.log"
    used = node_pods.wait_for(
        lambda: (u := audited_use(audit, AUTOMATION, since)) >= {("", "pods/log", "get")} and u,
        30,
        "the runs' requests in the audit log",
    )
    granted = role_grants(VERIFY_ROLE)
    assert ("", "pods/log", "get") in used and ("", "pods/ephemeralcontainers", "patch") in used
    # the bypass pods are why the role may create and delete pods: the run does both
    assert {("", "pods", "create"), ("", "pods", "delete")} <= used, sorted(used)
    assert used <= granted, sorted(used - granted)
    unused = sorted(g for g in granted - used if verify_not_exercised(g) is None)
    assert unused == [], f"granted but never used by verification: {unused}"
