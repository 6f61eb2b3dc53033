#!/usr/bin/python
# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: egress_audit
short_description: Find the holes in a live mesh's outbound controls, read-only
version_added: 0.2.0
description:
  - Reads the mesh configuration (ConfigMaps C(istio) / C(istio-<rev>) in istiod's namespace),
    Sidecars, ServiceEntries, VirtualServices, DestinationRules, Gateways,
    AuthorizationPolicies, Telemetries, Gloo Mesh ExternalServices, VirtualGateways and
    AccessPolicies, Namespaces, Pods and NetworkPolicies, and reports egress findings, each
    with a stable id, a severity (C(info), C(warning), C(error), C(critical)), the objects
    involved and the fix.
  - "Checks: outbound mode (mesh-wide mode, namespace and workload Sidecars that re-open
    C(ALLOW_ANY), C(default) Sidecars outside the root namespace); routing (ServiceEntries and
    ExternalServices that bypass the egress gateway, hosts the gateway does not expose,
    wildcard hosts that cannot be routed); access (exposed hosts without an access policy,
    policies that allow every client); lockdown (mesh namespaces without a default-deny
    egress NetworkPolicy, rules that admit any address, policies that block DNS or istiod,
    a gateway namespace whose other pods reach the internet); observability (gateway access
    logging off); drift against a plan (O(expected_objects))."
  - Kinds whose CRD is not installed are skipped (RV(not_installed)); kinds that cannot be
    read (for example a 403) give the finding C(audit.incomplete).
  - It does not need the collection to have been used on the cluster; it audits any Istio
    or Gloo Mesh egress setup. It only reads and never reports C(changed).
author:
  - meshguard maintainers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.k8s_auth
  - meshguard.egress.attributes
  - meshguard.egress.attributes.read_only
options:
  istiod_namespace:
    description: Namespace of istiod and of its mesh configuration ConfigMaps.
    type: str
    default: istio-system
  istiod_pod_labels:
    description:
      - Labels of istiod's pods, for checking that egress NetworkPolicies allow them
        (used when no istiod pod is found).
    type: dict
    default: {app: istiod, istio: pilot}
  dns_namespace:
    description: Namespace of the cluster DNS pods.
    type: str
    default: kube-system
  dns_pod_labels:
    description: Labels of the cluster DNS pods (used when no such pod is found).
    type: dict
    default: {k8s-app: kube-dns}
  cluster:
    description:
      - Gloo Mesh cluster name of this cluster; Gloo selectors and references naming another
        cluster do not count. Default any cluster.
    type: str
  cluster_domain:
    description: The cluster's DNS domain (tells in-mesh hosts from external ones).
    type: str
    default: cluster.local
  include_pods:
    description:
      - Read Pods too (finds injected pods in namespaces without an injection label, and the
        real labels of gateway, istiod and DNS pods). Turn off on very large clusters.
    type: bool
    default: true
  expected_objects:
    description:
      - Objects a description plans (for example the objects of C(meshguard.egress.egress_plan)).
        When given, planned objects that are absent (C(drift.missing)) or differ in a planned
        field (C(drift.changed)), and objects labelled C(app.kubernetes.io/managed-by) (and
        with the plan's owner C(meshguard.io/description), when the plan names one) that
        the plan does not list (C(drift.unplanned)), are findings. Without it the drift
        checks are skipped.
    type: list
    elements: dict
  fail_on:
    description:
      - Fail the task when a finding has this severity or a higher one. Default never.
    type: str
    choices: [info, warning, error, critical]
  fail_severity:
    description: Severity from which a check's JUnit testcase fails.
    type: str
    default: error
    choices: [info, warning, error, critical]
  junit_path:
    description:
      - Write a JUnit XML report (one testcase per check) to this path on the controller.
      - The report is an output artifact, not managed state; it is written in check mode too
        and does not make the module report C(changed).
    type: path
  junit_suite:
    description: Test-suite name in the JUnit report.
    type: str
    default: meshguard.egress.audit
notes:
  - Needs get/list on the kinds above and get/list on ConfigMaps in O(istiod_namespace);
    C(playbooks/rbac/audit-clusterrole.yml) grants exactly that.
  - The checks read configuration only; whether traffic really leaves is what
    M(meshguard.egress.egress_probe) proves.
seealso:
  - module: meshguard.egress.egress_probe
  - module: meshguard.egress.gateway_access_log
requirements:
  - kubernetes (Python)
"""

EXAMPLES = r"""
- name: Audit the mesh's egress controls, fail on errors
  meshguard.egress.egress_audit:
    context: my-cluster
    fail_on: error
    junit_path: "{{ playbook_dir }}/../out/egress-audit.xml"
  register: audit

- name: Show the findings
  ansible.builtin.debug:
    var: audit.table

- name: Plan the inventory's egress description
  meshguard.egress.egress_plan:
    verify: false
  register: egress

- name: Gloo Mesh workload cluster, drift against the plan
  meshguard.egress.egress_audit:
    cluster: cluster-1
    expected_objects: "{{ egress.plan.objects }}"
"""

RETURN = r"""
findings:
  description: The findings, most severe first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Stable check id.
      type: str
      sample: outbound.namespace_allow_any
    severity:
      description: C(info), C(warning), C(error) or C(critical).
      type: str
      sample: error
    message:
      description: What is wrong.
      type: str
    objects:
      description: The objects involved (C(kind), C(namespace), C(name)).
      type: list
      elements: dict
    fix:
      description: How to fix it.
      type: str
summary:
  description: Number of findings per severity, and C(total).
  returned: always
  type: dict
  sample: {critical: 0, error: 1, warning: 0, info: 1, total: 2}
table:
  description: The findings as readable lines (also in RV(msg)).
  returned: always
  type: list
  elements: str
msg:
  description: A one-line summary followed by RV(table).
  returned: always
  type: str
checks:
  description:
    - One entry per check, in report order (the JUnit testcases), with C(id), C(title),
      C(failed) (a finding at or above O(fail_severity)), C(skipped) (why, or empty) and
      C(findings) (how many).
  returned: always
  type: list
  elements: dict
inventory:
  description: How many objects of each kind were read.
  returned: always
  type: dict
  sample: {Sidecar: 1, ServiceEntry: 0}
not_installed:
  description: Kinds whose CRD the cluster does not serve.
  returned: always
  type: list
  elements: str
  sample: [ExternalService, VirtualGateway, AccessPolicy]
junit_path:
  description: Where the JUnit report was written.
  returned: when O(junit_path) is set
  type: str
"""

import copy  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.meshguard.egress.plugins.module_utils._audit import (  # noqa: E402
    KINDS,
    SEVERITIES,
    at_or_above,
    audit,
    check_results,
    drift_findings,
    incomplete_finding,
    owned_objects,
    sort_findings,
    summarize,
    table,
)
from ansible_collections.meshguard.egress.plugins.module_utils._junit import (  # noqa: E402
    write_junit_cases,
)
from ansible_collections.meshguard.egress.plugins.module_utils._k8s_auth import (  # noqa: E402
    AUTH_ARG_SPEC,
    api_client,
    auth_options,
)

CHECK_KEYS = ("id", "title", "failed", "skipped", "findings")
DRIFT_CHECKS = ("drift.missing", "drift.changed", "drift.unplanned")


def argument_spec() -> dict[str, Any]:
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        istiod_namespace={"type": "str", "default": "istio-system"},
        istiod_pod_labels={"type": "dict", "default": {"app": "istiod", "istio": "pilot"}},
        dns_namespace={"type": "str", "default": "kube-system"},
        dns_pod_labels={"type": "dict", "default": {"k8s-app": "kube-dns"}},
        cluster={"type": "str"},
        cluster_domain={"type": "str", "default": "cluster.local"},
        include_pods={"type": "bool", "default": True},
        expected_objects={"type": "list", "elements": "dict"},
        fail_on={"type": "str", "choices": list(SEVERITIES)},
        fail_severity={"type": "str", "default": "error", "choices": list(SEVERITIES)},
        junit_path={"type": "path"},
        junit_suite={"type": "str", "default": "meshguard.egress.audit"},
    )
    return spec


def dynamic_client(module: Any) -> Any:
    """The cluster's dynamic client from the module's connection options (blank = unset)."""
    from ansible_collections.meshguard.egress.plugins.module_utils._requirements import (
        MissingLibrary,
        require,
    )

    try:
        dynamic = require("kubernetes.dynamic", "to read the cluster's egress configuration")
    except MissingLibrary as exc:
        module.fail_json(msg=str(exc))
    return dynamic.DynamicClient(api_client(auth_options(module.params)))


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def find_resource(client: Any, kind: str) -> Any:
    """The served resource for ``kind`` (first version of KINDS the server has), or None."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    group, versions = KINDS[kind]
    for version in versions:
        try:
            return client.resources.get(api_version=_api_version(group, version), kind=kind)
        except ResourceNotFoundError:
            continue
    return None


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    summary = getattr(exc, "summary", None)
    text = summary() if callable(summary) else str(exc)
    return f"{status} {text}".strip() if status else text


def read_inventory(module: Any, client: Any) -> tuple[dict[str, list], list[str], dict[str, str]]:
    """(objects per kind, kinds not installed, kind -> why it could not be read)."""
    params = module.params
    inventory: dict[str, list] = {}
    missing: list[str] = []
    errors: dict[str, str] = {}
    for kind in KINDS:
        if kind == "Pod" and not params["include_pods"]:
            inventory[kind] = []
            continue
        try:
            resource = find_resource(client, kind)
            if resource is None:
                missing.append(kind)
                inventory[kind] = []
                continue
            namespace = params["istiod_namespace"] if kind == "ConfigMap" else None
            listing = client.get(resource, namespace=namespace)
            inventory[kind] = [item.to_dict() for item in listing.items]
        except Exception as exc:  # 403, 5xx, ...: the audit goes on and says what it missed
            errors[kind] = _reason(exc)
            inventory[kind] = []
    return inventory, missing, errors


def read_planned(
    client: Any, expected: list[dict[str, Any]], errors: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    """The planned objects that could be read and the cluster's copy of each (None: absent).
    An object that cannot be read (403, 5xx) is left out of the drift checks and its kind
    added to ``errors`` (reported as audit.incomplete), instead of being called missing."""
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    readable: list[dict[str, Any]] = []
    current: list[dict[str, Any] | None] = []
    for obj in expected:
        meta = obj.get("metadata") or {}
        try:
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            found = client.get(resource, name=meta.get("name"), namespace=meta.get("namespace"))
            live = found.to_dict()
        except (NotFoundError, ResourceNotFoundError):
            live = None
        except Exception as exc:  # 403, 5xx, ...: unknown, not absent
            errors.setdefault(obj["kind"], _reason(exc))
            continue
        readable.append(obj)
        current.append(live)
    return readable, current


def junit_cases(results: list[dict[str, Any]], suite: str) -> list[dict[str, Any]]:
    cases = []
    for result in results:
        lines = [f"{f['severity']}: {f['message']} [fix: {f['fix']}]" for f in result["findings"]]
        failure = None
        if result["failed"]:
            failure = {
                "message": "; ".join(f["message"] for f in result["failing"]),
                "type": max((f["severity"] for f in result["failing"]), key=SEVERITIES.index),
                "text": "\n".join(lines),
            }
        group = result["id"].split(".", 1)[0]
        cases.append(
            {
                "name": f"{result['id']}: {result['title']}",
                "classname": f"{suite}.{group}",
                "failure": failure,
                "skipped": result["skipped"] or None,
                "system_out": "\n".join(lines) or "no findings",
            }
        )
    return cases


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        client = dynamic_client(module)
        inventory, missing, errors = read_inventory(module, client)
    except Exception as exc:  # no cluster, bad credentials: nothing could be read
        module.fail_json(msg=f"cannot read the cluster: {_reason(exc)}", changed=False)
    options = {
        key: params[key]
        for key in (
            "istiod_namespace",
            "istiod_pod_labels",
            "dns_namespace",
            "dns_pod_labels",
            "cluster",
            "cluster_domain",
        )
    }
    findings = audit(inventory, options, missing)
    skipped = {}
    expected = params["expected_objects"]
    if expected is None:
        skipped = {c: "no expected_objects (plan) given" for c in DRIFT_CHECKS}
    else:
        owned = owned_objects(inventory, expected)
        readable, current = read_planned(client, expected, errors)
        live = dict(zip((id(obj) for obj in readable), current))
        findings += drift_findings(readable, lambda obj: live[id(obj)], owned)
    if errors:
        findings.append(incomplete_finding(errors))
    findings = sort_findings(findings)
    summary = summarize(findings)
    lines = table(findings)
    counts = ", ".join(f"{summary[s]} {s}" for s in reversed(SEVERITIES))
    results = check_results(findings, params["fail_severity"], skipped)
    output: dict[str, Any] = {
        "changed": False,
        "findings": [f.as_dict() for f in findings],
        "summary": summary,
        "table": lines,
        "msg": f"egress audit: {summary['total']} findings ({counts})\n" + "\n".join(lines),
        "checks": [
            {key: (len(r[key]) if key == "findings" else r[key]) for key in CHECK_KEYS}
            for r in results
        ],
        "inventory": {kind: len(objects) for kind, objects in inventory.items()},
        "not_installed": sorted(missing),
    }
    if params["junit_path"]:
        cases = junit_cases(results, params["junit_suite"])
        write_junit_cases(params["junit_path"], cases, params["junit_suite"])
        output["junit_path"] = params["junit_path"]
    if params["fail_on"] and at_or_above(findings, params["fail_on"]):
        module.fail_json(**output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
