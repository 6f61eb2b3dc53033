#!/usr/bin/python
# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: gateway_access_log
short_description: Parse an egress gateway's access log; tell whether requests went through it
version_added: 0.1.0
description:
  - Reads the logs of the egress gateway pods (label selector, namespace, container
    C(istio-proxy)) since a time, or a local file or text, and parses Envoy access-log lines
    into records with C(authority), C(method), C(path), C(response_code), C(response_flags),
    C(upstream_cluster), C(duration) and C(start_time).
  - "Formats: Istio's JSON access log (C(accessLogEncoding: JSON)), Istio's default text
    format and Envoy's default text format (C([%START_TIME%] \"%REQ(:METHOD)% ...\"
    %RESPONSE_CODE% %RESPONSE_FLAGS% ...)). Other lines are skipped and counted."
  - Filters by authority and path (shell-style globs), method and response codes; checks a
    list of expected requests and fails if one of them is missing.
  - Read-only; never reports C(changed).
author:
  - meshguard maintainers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.k8s_auth
  - meshguard.egress.attributes
  - meshguard.egress.attributes.read_only
options:
  namespace:
    description: Namespace of the gateway pods.
    type: str
    default: istio-egress
  label_selector:
    description: Label selector of the gateway pods.
    type: str
    default: istio=egressgateway
  container:
    description: Container whose log is read.
    type: str
    default: istio-proxy
  since_seconds:
    description: Only log lines newer than this many seconds.
    type: int
  since_time:
    description:
      - Only records that started at or after this time (ISO 8601, for example
        C(2025-06-05T21:02:20Z)). Also limits the pod-log read.
    type: str
  tail_lines:
    description: Only the last lines of each pod's log.
    type: int
  path:
    description: Read this local file (on the managed host) instead of pod logs.
    type: path
  text:
    description: Parse this text instead of pod logs.
    type: str
  filter:
    description: Which records RV(matched) holds. All keys optional.
    type: dict
    default: {}
    suboptions: &filter
      authority:
        description: Authority (Host) glob, case-insensitive, for example C(httpbin.org) or
          C(*.example.com).
        type: str
      path:
        description: Path glob; matches with or without the query string.
        type: str
      method:
        description: HTTP method.
        type: str
      response_code:
        description: Response codes.
        type: list
        elements: int
  expect_requests:
    description:
      - Requests that must appear in the log (each a filter like O(filter)); the module
        fails when one of them has no matching record. Results in RV(expectations).
    type: list
    elements: dict
    default: []
    suboptions: *filter
notes:
  - Pod logs come from the Kubernetes API (C(read_namespaced_pod_log)); the connection
    options are only used when neither O(path) nor O(text) is given.
seealso:
  - module: meshguard.egress.egress_probe
"""

EXAMPLES = r"""
- name: The productpage request went through the egress gateway
  meshguard.egress.gateway_access_log:
    namespace: istio-egress
    label_selector: app=istio-egressgateway
    since_seconds: 300
    expect_requests:
      - authority: httpbin.org
        path: /get
        response_code: [200]

- name: Parse a shipped log file
  meshguard.egress.gateway_access_log:
    path: /var/log/egress/access.log
    filter:
      authority: "*.example.com"
  register: egress_log
"""

RETURN = r"""
records:
  description: Every parsed record (after O(since_time)).
  returned: always
  type: list
  elements: dict
  contains:
    start_time:
      description: Request start time.
      type: str
      sample: "2025-06-05T21:02:20.806Z"
    authority:
      description: Authority (Host).
      type: str
      sample: httpbin.org
    method:
      description: HTTP method.
      type: str
      sample: GET
    path:
      description: Path.
      type: str
      sample: /get
    protocol:
      description: Protocol.
      type: str
      sample: HTTP/2
    response_code:
      description: Status sent downstream.
      type: int
      sample: 200
    response_flags:
      description: Envoy response flags (C(-) when none).
      type: str
      sample: "-"
    response_code_details:
      description: Envoy response code details (Istio formats).
      type: str
    upstream_cluster:
      description: Upstream cluster.
      type: str
      sample: "outbound|80||httpbin.org"
    upstream_host:
      description: Upstream host address.
      type: str
    duration:
      description: Request duration in milliseconds.
      type: int
      sample: 3226
    user_agent:
      description: User agent.
      type: str
    request_id:
      description: x-request-id.
      type: str
    format:
      description: Format of the line (C(json), C(istio_text), C(envoy_text)).
      type: str
    pod:
      description: Gateway pod the line came from (pod logs only).
      type: str
matched:
  description: Records that pass O(filter).
  returned: always
  type: list
  elements: dict
count:
  description: Number of records in RV(matched).
  returned: always
  type: int
found:
  description: Whether at least one record passes O(filter) (a request went through the gateway).
  returned: always
  type: bool
skipped_lines:
  description: Lines that were not access-log records.
  returned: always
  type: int
expectations:
  description: One entry per O(expect_requests) item.
  returned: always
  type: list
  elements: dict
  contains:
    filter:
      description: The expected request.
      type: dict
    count:
      description: Matching records.
      type: int
    found:
      description: Whether a record matched.
      type: bool
"""

import copy  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.meshguard.egress.plugins.module_utils._access_log import (  # noqa: E402
    parse_log,
    parse_time,
    select,
)
from ansible_collections.meshguard.egress.plugins.module_utils._k8s_auth import (  # noqa: E402
    AUTH_ARG_SPEC,
    AuthError,
    api_client,
    auth_options,
)

FILTER_SPEC = {
    "authority": {"type": "str"},
    "path": {"type": "str"},
    "method": {"type": "str"},
    "response_code": {"type": "list", "elements": "int"},
}


def argument_spec() -> dict[str, Any]:
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        namespace={"type": "str", "default": "istio-egress"},
        label_selector={"type": "str", "default": "istio=egressgateway"},
        container={"type": "str", "default": "istio-proxy"},
        since_seconds={"type": "int"},
        since_time={"type": "str"},
        tail_lines={"type": "int"},
        path={"type": "path"},
        text={"type": "str"},
        filter={"type": "dict", "default": {}, "options": FILTER_SPEC},
        expect_requests={"type": "list", "elements": "dict", "default": [], "options": FILTER_SPEC},
    )
    return spec


def _since_seconds(params: dict[str, Any], since: Any) -> int | None:
    import datetime

    if since is None:
        return params["since_seconds"]
    age = datetime.datetime.now(datetime.timezone.utc) - since
    seconds = max(1, int(age.total_seconds()) + 1)
    return min(seconds, params["since_seconds"]) if params["since_seconds"] else seconds


def read_pod_logs(module: Any, since: Any) -> list[tuple[str, str]]:
    """(pod name, log text) for every gateway pod."""
    from ansible_collections.meshguard.egress.plugins.module_utils._requirements import (
        MissingLibrary,
        require,
    )

    try:
        require("kubernetes", "to read the gateway pods' logs (without path or text)")
    except MissingLibrary as exc:
        module.fail_json(msg=str(exc))
    from kubernetes.client import CoreV1Api

    params = module.params
    try:
        core = CoreV1Api(api_client(auth_options(params)))
    except AuthError as exc:
        module.fail_json(msg=f"Kubernetes connection options: {exc}")
    pods = core.list_namespaced_pod(params["namespace"], label_selector=params["label_selector"])
    kwargs = {"container": params["container"]}
    since_seconds = _since_seconds(params, since)
    if since_seconds:
        kwargs["since_seconds"] = since_seconds
    if params["tail_lines"]:
        kwargs["tail_lines"] = params["tail_lines"]
    logs = []
    for pod in sorted(pods.items, key=lambda p: p.metadata.name):
        text = core.read_namespaced_pod_log(pod.metadata.name, params["namespace"], **kwargs)
        logs.append((pod.metadata.name, text or ""))
    return logs


def read_logs(module: Any, since: Any) -> list[tuple[str | None, str]]:
    params = module.params
    if params["text"] is not None:
        return [(None, params["text"])]
    if params["path"]:
        with open(params["path"], encoding="utf-8", errors="replace") as handle:
            return [(None, handle.read())]
    return list(read_pod_logs(module, since))


def parse_all(logs: list[tuple[str | None, str]]) -> tuple[list[dict[str, Any]], int]:
    records, skipped = [], 0
    for pod, text in logs:
        parsed, pod_skipped = parse_log(text)
        skipped += pod_skipped
        for record in parsed:
            if pod:
                record["pod"] = pod
        records.extend(parsed)
    return records, skipped


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["path", "text"]],
        supports_check_mode=True,
    )
    params = module.params
    since = parse_time(params["since_time"]) if params["since_time"] else None
    if params["since_time"] and since is None:
        module.fail_json(msg=f"since_time: not an ISO 8601 time (got {params['since_time']!r})")
    try:
        logs = read_logs(module, since)
    except Exception as exc:  # file and API errors alike end the module with their text
        module.fail_json(msg=f"cannot read the access log: {exc}")
    records, skipped = parse_all(logs)
    records = select(records, {"since": since})
    matched = select(records, params["filter"])
    expectations = []
    for flt in params["expect_requests"]:
        count = len(select(records, flt))
        wanted = {k: v for k, v in flt.items() if v is not None}
        expectations.append({"filter": wanted, "count": count, "found": count > 0})
    output = {
        "changed": False,
        "records": records,
        "matched": matched,
        "count": len(matched),
        "found": bool(matched),
        "skipped_lines": skipped,
        "expectations": expectations,
    }
    missing = [e["filter"] for e in expectations if not e["found"]]
    if missing:
        module.fail_json(msg=f"requests not found in the access log: {missing}", **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
