#!/usr/bin/python
# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: egress_probe
short_description: Prove what a mesh's egress rules allow, deny and block, with curl probes
version_added: 0.1.0
description:
  - Runs a list of HTTP(S) probes and checks each against an expected outcome; the checks
    of steps 4 and 5 of the egress-gateway procedure (C(curl) from a client pod).
  - All probes of one source run in parallel in B(one) POSIX C(sh) script, on the controller
    (a subprocess) or inside a pod (one Kubernetes exec per source pod).
  - "Outcomes: C(allowed) (an expected status, default 2xx, with evidence of Envoy:
    C(server: envoy) or C(x-envoy-upstream-service-time)); C(denied) (C(403) with body
    C(RBAC: access denied), told apart from an upstream's own 403); C(blocked) (C(502) from
    Envoy, what C(REGISTRY_ONLY) gives an unregistered HTTP host, or a TLS reset, curl exit
    35/56, for HTTPS); C(unreachable) (connection refused or connect timeout, curl exit 7 or
    28 before connecting, what a NetworkPolicy gives a pod that bypasses its sidecar);
    anything else is C(error) with its cause (status, curl exit code, body excerpt)."
  - Probes whose expectation does not hold yet are re-run with exponential backoff until all
    hold or O(deadline) passes (policies take seconds to propagate).
  - A probe with O(probes[].not_proven) runs once and is never retried; its outcome is
    reported but proves nothing, so it neither holds nor fails (RV(summary)).
  - The module fails with a table of the mismatches. It never reports C(changed); the
    only objects it creates, the temporary pods of O(probes[].source.bypass_image), are
    deleted again before it returns, so the cluster's state is unchanged.
author:
  - meshguard maintainers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.k8s_auth
  - meshguard.egress.attributes
  - meshguard.egress.attributes.read_only
options:
  probes:
    description: The probes to run.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name in results and in the JUnit report. Default C(<source> <METHOD> <url>).
        type: str
      url:
        description: URL to request, as the client sends it (for example C(http://httpbin.org/get)).
        type: str
        required: true
      method:
        description: HTTP method.
        type: str
        default: GET
      headers:
        description: Request headers.
        type: dict
        default: {}
      body:
        description: Request body (sent with C(--data-binary)).
        type: str
      expect:
        description: Expected outcome.
        type: str
        required: true
        choices: [allowed, denied, blocked, unreachable]
      expected_status:
        description: Status codes that count as C(allowed). Default any 2xx.
        type: list
        elements: int
        default: []
      require_envoy:
        description:
          - Whether C(allowed) needs evidence that the answer came through Envoy
            (C(server) header C(envoy), or C(x-envoy-upstream-service-time)), and C(blocked)
            a 502 from Envoy.
          - Set to C(false) for plain upstreams.
        type: bool
        default: true
      timeout:
        description: Whole-request timeout in seconds (curl C(-m)).
        type: float
        default: 5
      connect_timeout:
        description: Connect timeout in seconds (curl C(--connect-timeout)).
        type: float
        default: 3
      insecure:
        description: Do not verify the server certificate (curl C(-k)).
        type: bool
        default: false
      not_proven:
        description:
          - Why this probe's outcome proves nothing (for example a bypass probe on a cluster
            whose CNI does not enforce NetworkPolicies). The probe runs once, is never
            retried, is reported with RV(probes[].not_proven) and C(held=false), does not
            count as failed, is absent from RV(mismatches) and is a skipped testcase in the
            JUnit report.
        type: str
      connect_to:
        description:
          - curl C(--connect-to) entries C(HOST:PORT:CONNECT_HOST:CONNECT_PORT), to send the
            request for a host to another address (for example a port-forwarded gateway)
            while keeping the Host header and SNI.
        type: list
        elements: str
        default: []
      source:
        description:
          - Where the request is sent from. Omitted or without O(probes[].source.pod),
            O(probes[].source.label_selector) and O(probes[].source.bypass_image), the
            controller host itself.
        type: dict
        suboptions:
          namespace:
            description: Namespace of the source pod.
            type: str
            default: default
          pod:
            description: Name of the source pod.
            type: str
          label_selector:
            description: Label selector; the first running pod (by name) is used.
            type: str
          container:
            description: Container to exec into (for example the app container with curl).
            type: str
          debug_image:
            description:
              - Image with curl (for example C(curlimages/curl)) for an ephemeral debug
                container added to the pod, what C(kubectl debug) does; O(probes[].source.container)
                is then the target container whose namespaces it shares.
              - Adding an ephemeral container is the only write this module can make; the
                container is reused by later runs while it is running.
            type: str
          service_account:
            description:
              - The service account the source claims to run as (the identity its
                expectation is for). The pod's C(spec.serviceAccountName) must be this one,
                otherwise every probe of the source comes out C(error), naming the pod, its
                service account and the claimed one.
            type: str
          bypass_image:
            description:
              - Probe from a temporary pod of this image (with C(sh) and C(curl)) without a
                sidecar, as a pod that bypasses the mesh would; the module creates
                C(meshguard-bypass-<hex>) in O(probes[].source.namespace) (label and
                annotation C(sidecar.istio.io/inject=false), label
                C(meshguard.io/created-by=meshguard.egress.egress_probe), no service account
                token, C(sleep) for as long as the run can take and an
                C(activeDeadlineSeconds) as long, so that a killed run's pod ends by itself),
                waits up to O(debug_container_timeout) for it to run, runs the source's
                probes in it through exec, and always deletes it at the end, also on errors.
              - Needs C(create) and C(delete) on C(pods). In check mode no pod is created;
                the source's probes are reported not proven.
              - Mutually exclusive with O(probes[].source.pod),
                O(probes[].source.label_selector), O(probes[].source.debug_image) and
                O(probes[].source.service_account).
            type: str
  deadline:
    description: Seconds to keep retrying probes whose expectation does not hold yet.
    type: float
    default: 60
  retry_delay:
    description: First pause between rounds, in seconds; doubled each round.
    type: float
    default: 1
  max_retry_delay:
    description: Longest pause between rounds, in seconds.
    type: float
    default: 8
  curl_path:
    description: curl executable in the probe sources.
    type: str
    default: curl
  debug_container_timeout:
    description: Seconds to wait for an ephemeral debug container or a bypass pod to run.
    type: float
    default: 60
  fail_on_mismatch:
    description: Fail when an expectation does not hold. With C(false), report it in RV(mismatches).
    type: bool
    default: true
  junit_path:
    description:
      - Write a JUnit XML report (one testcase per probe) to this path on the controller.
      - The report is an output artifact, not managed state; it is written in check mode too
        and does not make the module report C(changed).
    type: path
  junit_suite:
    description: Test-suite name in the JUnit report.
    type: str
    default: meshguard.egress.verify
notes:
  - Probes from the controller need no cluster; the connection options are only used for
    pod sources.
  - Pod probes use the Kubernetes exec API (the Python client's C(stream)) with C(/bin/sh -c);
    the container needs C(sh), C(mktemp) or C(/tmp), C(cat), C(dd) and C(curl). A container
    without curl gives a clear error; use O(probes[].source.debug_image).
  - Ephemeral containers are alpha in Kubernetes 1.16-1.22 (feature gate
    C(EphemeralContainers)); before 1.22 the module uses the C(EphemeralContainers) JSON patch,
    later a strategic merge patch of the Pod.
  - The project's integration tests run pod probes (one exec per source pod, and from an
    ephemeral debug container) against a real Envoy pod on the test bed's local node, and
    controller-host probes against a real Envoy.
seealso:
  - module: meshguard.egress.gateway_access_log
  - module: kubernetes.core.k8s_exec
requirements:
  - curl in the probe sources
  - kubernetes (Python) for pod sources
"""

EXAMPLES = r"""
- name: Productpage may reach httpbin.org through the gateway, reviews may not
  meshguard.egress.egress_probe:
    deadline: 90
    junit_path: "{{ playbook_dir }}/reports/egress.xml"
    probes:
      - name: productpage -> httpbin.org
        url: http://httpbin.org/get
        expect: allowed
        source: {namespace: bookinfo, label_selector: app=productpage, container: curl}
      - name: reviews -> httpbin.org
        url: http://httpbin.org/get
        expect: denied
        source:
          namespace: bookinfo
          label_selector: app=reviews
          debug_image: curlimages/curl
      - name: unregistered host
        url: http://example.com/
        expect: blocked
        source:
          namespace: bookinfo
          label_selector: app=productpage
          container: curl
          service_account: bookinfo-productpage
      - name: a pod without a sidecar cannot leave bookinfo
        url: https://httpbin.org/
        expect: unreachable
        source: {namespace: bookinfo, bypass_image: docker.io/curlimages/curl:8.11.1}

- name: On a cluster whose CNI does not enforce NetworkPolicies, report the bypass plainly
  meshguard.egress.egress_probe:
    probes:
      - url: https://httpbin.org/
        expect: unreachable
        source: {namespace: bookinfo, bypass_image: docker.io/curlimages/curl:8.11.1}
        not_proven: NetworkPolicies are not enforced on this cluster

- name: Check from the controller (no cluster needed)
  meshguard.egress.egress_probe:
    probes:
      - url: https://example.com/
        expect: unreachable
        connect_timeout: 2
"""

RETURN = r"""
probes:
  description: One result per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Probe name.
      type: str
      sample: reviews -> httpbin.org
    source:
      description:
        - Source key, C(controller), C(<namespace>/<pod>[/<container>][ as <service account>])
          or C(<namespace>/(bypass <image>)).
      type: str
    url:
      description: Requested URL.
      type: str
    method:
      description: HTTP method.
      type: str
    expect:
      description: Expected outcome.
      type: str
      sample: denied
    outcome:
      description:
        - Outcome of the last attempt; C(not_run) for a probe that was not sent (a bypass
          source in check mode).
      type: str
      sample: denied
    held:
      description: Whether the expectation held (always C(false) for a not-proven probe).
      type: bool
    not_proven:
      description: Why the outcome proves nothing (O(probes[].not_proven)); null otherwise.
      type: str
    detail:
      description: Why the outcome was chosen, or the cause of an error.
      type: str
      sample: "403 RBAC: access denied"
    status:
      description: HTTP status of the last attempt (null without an answer).
      type: int
      sample: 403
    curl_exit:
      description: curl exit code of the last attempt.
      type: int
      sample: 0
    headers:
      description: Selected response headers (C(server), C(x-envoy-upstream-service-time), ...).
      type: dict
    body_excerpt:
      description: First bytes of the response body.
      type: str
      sample: "RBAC: access denied"
    time:
      description: Seconds the last request took (curl C(time_total)).
      type: float
    attempts:
      description: How many times the probe ran.
      type: int
      sample: 2
    seconds_to_hold:
      description: Seconds from the start until the expectation held (null if it never did).
      type: float
summary:
  description:
    - Counts of probes by result; C(failed) counts the probes that neither held nor are
      not proven.
  returned: always
  type: dict
  sample:
    {total: 4, held: 3, not_proven: 1, failed: 0, allowed: 1, denied: 1, blocked: 1,
     unreachable: 0, error: 1}
bypass_pods:
  description: The temporary bypass pods the run created, and whether each was deleted.
  returned: always
  type: list
  elements: dict
  sample: [{namespace: bookinfo, name: meshguard-bypass-0a1b2c3d, deleted: true}]
mismatches:
  description: Table of the probes whose expectation did not hold (empty when all held).
  returned: always
  type: str
junit_path:
  description: Where the JUnit report was written.
  returned: when O(junit_path) is set
  type: str
"""

import copy  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.meshguard.egress.plugins.module_utils._junit import (  # noqa: E402
    write_junit,
)
from ansible_collections.meshguard.egress.plugins.module_utils._k8s_auth import (  # noqa: E402
    AUTH_ARG_SPEC,
    AuthError,
    api_client,
    auth_options,
)
from ansible_collections.meshguard.egress.plugins.module_utils._probe import (  # noqa: E402
    CONTROLLER,
    NOT_RUN,
    OUTCOMES,
    Probe,
    Runner,
    Verdict,
    error_verdicts,
    mismatch_table,
    run_batch,
    run_script_locally,
    run_until_held,
    script_timeout,
    summarize,
)

SOURCE_SPEC = {
    "namespace": {"type": "str", "default": "default"},
    "pod": {"type": "str"},
    "label_selector": {"type": "str"},
    "container": {"type": "str"},
    "debug_image": {"type": "str"},
    "service_account": {"type": "str"},
    # "pass" in the name is not a password (validate-modules' no-log heuristic)
    "bypass_image": {"type": "str", "no_log": False},
}
PROBE_SPEC = {
    "name": {"type": "str"},
    "url": {"type": "str", "required": True},
    "method": {"type": "str", "default": "GET"},
    "headers": {"type": "dict", "default": {}},
    "body": {"type": "str"},
    "expect": {"type": "str", "required": True, "choices": list(OUTCOMES)},
    "expected_status": {"type": "list", "elements": "int", "default": []},
    "require_envoy": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 5},
    "connect_timeout": {"type": "float", "default": 3},
    "insecure": {"type": "bool", "default": False},
    "connect_to": {"type": "list", "elements": "str", "default": []},
    "not_proven": {"type": "str"},
    "source": {
        "type": "dict",
        "options": SOURCE_SPEC,
        "mutually_exclusive": [
            ["pod", "label_selector"],
            ["bypass_image", "pod"],
            ["bypass_image", "label_selector"],
            ["bypass_image", "debug_image"],
            ["bypass_image", "service_account"],
        ],
    },
}


def argument_spec() -> dict[str, Any]:
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        probes={"type": "list", "elements": "dict", "required": True, "options": PROBE_SPEC},
        deadline={"type": "float", "default": 60},
        retry_delay={"type": "float", "default": 1},
        max_retry_delay={"type": "float", "default": 8},
        curl_path={"type": "str", "default": "curl"},
        debug_container_timeout={"type": "float", "default": 60},
        fail_on_mismatch={"type": "bool", "default": True},
        junit_path={"type": "path"},
        junit_suite={"type": "str", "default": "meshguard.egress.verify"},
    )
    return spec


def _pod_source(raw: dict[str, Any] | None) -> Any:
    from ansible_collections.meshguard.egress.plugins.module_utils._pod_exec import PodSource

    if not raw or not (raw.get("pod") or raw.get("label_selector") or raw.get("bypass_image")):
        return None
    if raw.get("bypass_image"):
        return PodSource(namespace=raw["namespace"], bypass_image=raw["bypass_image"])
    return PodSource(
        namespace=raw["namespace"],
        name=raw.get("pod"),
        label_selector=raw.get("label_selector"),
        container=raw.get("container"),
        debug_image=raw.get("debug_image"),
        service_account=raw.get("service_account"),
    )


def build_probes(params: list[dict[str, Any]]) -> tuple[list[Probe], dict[str, Any]]:
    """Probe objects and the pod source behind each non-controller source key."""
    probes, sources = [], {}
    for raw in params:
        pod_source = _pod_source(raw.get("source"))
        key = pod_source.key if pod_source else CONTROLLER
        sources[key] = pod_source
        method = raw["method"].upper()
        probes.append(
            Probe(
                name=raw.get("name") or f"{key} {method} {raw['url']}",
                url=raw["url"],
                expect=raw["expect"],
                source_key=key,
                method=method,
                headers={str(k): str(v) for k, v in raw["headers"].items()},
                body=raw.get("body"),
                expected_status=tuple(raw["expected_status"]),
                require_envoy=raw["require_envoy"],
                timeout=raw["timeout"],
                connect_timeout=raw["connect_timeout"],
                insecure=raw["insecure"],
                connect_to=tuple(raw["connect_to"]),
                not_proven=raw.get("not_proven") or None,
            )
        )
    return probes, sources


@dataclasses.dataclass(frozen=True)
class NotRun:
    """A source whose probes are not sent (check mode would have to create a pod)."""

    reason: str


def check_mode_probes(
    probes: list[Probe], sources: dict[str, Any]
) -> tuple[list[Probe], dict[str, NotRun]]:
    """In check mode: the probes of bypass sources become not proven, their sources not run."""
    not_run = {
        key: NotRun(
            f"check mode: the probes from {key} need a temporary pod "
            f"(bypass_image {source.bypass_image}), which check mode does not create"
        )
        for key, source in sources.items()
        if source is not None and source.bypass_image
    }
    changed = [
        dataclasses.replace(probe, not_proven=not_run[probe.source_key].reason)
        if probe.source_key in not_run
        else probe
        for probe in probes
    ]
    return changed, not_run


def bypass_lifetime(params: dict[str, Any], probes: list[Probe], pod_sources: int) -> int:
    """Seconds a bypass pod must live for the whole run: waiting for every pod source
    (one after another, at worst), every retry round until the deadline, the last round's
    script, and a margin for the exec calls."""
    waits = params["debug_container_timeout"] * pod_sources
    rounds = params["deadline"] + params["max_retry_delay"] + script_timeout(probes)
    return math.ceil(waits + rounds + 60)


def _core_api(module: Any) -> tuple[Any, Any, Any]:
    """CoreV1Api, VersionApi and the exec ``stream`` function of the module's cluster."""
    from ansible_collections.meshguard.egress.plugins.module_utils._requirements import (
        MissingLibrary,
        require,
    )

    try:
        require("kubernetes", "to probe from pods (the Kubernetes exec API)")
    except MissingLibrary as exc:
        module.fail_json(msg=str(exc))
    from kubernetes.client import CoreV1Api, VersionApi
    from kubernetes.stream import stream

    try:
        client = api_client(auth_options(module.params))
    except AuthError as exc:
        module.fail_json(msg=f"Kubernetes connection options: {exc}")
    return CoreV1Api(client), VersionApi(client), stream


def _pod_runners(
    module: Any,
    apis: tuple[Any, Any, Any],
    sources: dict[str, Any],
    lifetime: int,
    created: list[tuple[str, str]],
) -> dict[str, Runner | str]:
    """An exec runner per pod source, or the error that prevents one. Every bypass pod is
    created first (they start together) and appended to ``created`` as soon as it exists."""
    from ansible_collections.meshguard.egress.plugins.module_utils._pod_exec import (
        BYPASS_CONTAINER,
        PodSourceError,
        _api_error,
        create_bypass_pod,
        make_exec_runner,
        prepare_source,
        wait_for_bypass_pod,
    )

    core, version, stream = apis
    timeout = module.params["debug_container_timeout"]
    runners: dict[str, Runner | str] = {}
    bypass_pods: dict[str, str] = {}

    def attempt(key: str, step: Any) -> None:
        try:
            step()
        except PodSourceError as exc:
            runners[key] = str(exc)
        except Exception as exc:  # API errors (403, TLS, connection) become this source's error
            runners[key] = f"Kubernetes API: {_api_error(exc)}"

    def create(key: str, source: Any) -> None:
        name = create_bypass_pod(core, source.namespace, source.bypass_image, lifetime)
        created.append((source.namespace, name))
        bypass_pods[key] = name

    def prepare(key: str, source: Any) -> None:
        if not source.bypass_image:
            runners[key] = prepare_source(core, version, stream, source, timeout)
            return
        name = bypass_pods[key]
        wait_for_bypass_pod(core, source.namespace, name, timeout)
        runners[key] = make_exec_runner(core, stream, source.namespace, name, BYPASS_CONTAINER)

    for key, source in sources.items():
        if source.bypass_image:
            attempt(key, lambda key=key, source=source: create(key, source))
    for key, source in sources.items():
        if key not in runners:  # not already failed at creation
            attempt(key, lambda key=key, source=source: prepare(key, source))
    return runners


def delete_bypass_pods(
    module: Any, core: Any, created: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Delete every bypass pod the run created; a pod that cannot be deleted is a warning
    (its activeDeadlineSeconds ends it)."""
    from ansible_collections.meshguard.egress.plugins.module_utils._pod_exec import (
        delete_bypass_pod,
    )

    report = []
    for namespace, name in created:
        problem = delete_bypass_pod(core, namespace, name)
        if problem:
            module.warn(problem)
        report.append({"namespace": namespace, "name": name, "deleted": problem is None})
    return report


def run_probes(
    module: Any, probes: list[Probe], sources: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Results of every probe, and the bypass pods created (and deleted) for them."""
    not_run: dict[str, NotRun] = {}
    if module.check_mode:
        probes, not_run = check_mode_probes(probes, sources)
    pod_sources = {
        key: src for key, src in sources.items() if src is not None and key not in not_run
    }
    runners: dict[str, Runner | str | NotRun] = {CONTROLLER: run_script_locally, **not_run}
    created: list[tuple[str, str]] = []
    apis = _core_api(module) if pod_sources else None
    curl = module.params["curl_path"]

    def run_source(key: str, batch: list[Probe]) -> list[Verdict]:
        runner = runners[key]
        if isinstance(runner, NotRun):
            return [Verdict(NOT_RUN, runner.reason) for _probe in batch]
        if isinstance(runner, str):
            return error_verdicts(batch, runner)
        return run_batch(batch, runner, curl)

    params = module.params
    try:
        if apis:
            lifetime = bypass_lifetime(params, probes, len(pod_sources))
            runners.update(_pod_runners(module, apis, pod_sources, lifetime, created))
        states = run_until_held(
            probes, run_source, params["deadline"], params["retry_delay"], params["max_retry_delay"]
        )
    finally:  # also when the module fails or an API call raises
        bypass_pods = delete_bypass_pods(module, apis[0], created) if apis else []
    return [state.as_result() for state in states], bypass_pods


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    probes, sources = build_probes(module.params["probes"])
    results, bypass_pods = run_probes(module, probes, sources)
    summary = summarize(results)
    failed = summary["failed"] > 0
    output: dict[str, Any] = {
        "changed": False,
        "probes": results,
        "summary": summary,
        "mismatches": mismatch_table(results) if failed else "",
        "bypass_pods": bypass_pods,
    }
    if module.params["junit_path"]:
        write_junit(module.params["junit_path"], results, module.params["junit_suite"])
        output["junit_path"] = module.params["junit_path"]
    if failed and module.params["fail_on_mismatch"]:
        msg = f"{summary['failed']} of {summary['total']} probes did not hold:\n"
        module.fail_json(msg=msg + output["mismatches"], **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
