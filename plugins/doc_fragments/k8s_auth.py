# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes connection options of the collection's modules (meshguard.egress.k8s_auth).

The collection's own copy of the options kubernetes.core documents in
kubernetes.core.k8s_auth_options, so that the module docs render where kubernetes.core is
not installed (galaxy-importer, Automation Hub); the code is plugins/module_utils/_k8s_auth.py.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file (several separated by C(:)), or the kubeconfig as a
        dictionary. Default C(K8S_AUTH_KUBECONFIG), then C(KUBECONFIG), then C(~/.kube/config)
        (inside a pod without any of these, the pod's service account).
      - A blank value, here or in the environment, counts as unset (AWX renders every field
        of a credential type, empty optional ones included).
    type: raw
  context:
    description:
      - Name of a context of the kubeconfig. Default C(K8S_AUTH_CONTEXT), then the
        kubeconfig's C(current-context). Blank counts as unset.
    type: str
  host:
    description:
      - URL of the API server. Default C(K8S_AUTH_HOST). With O(api_key) (or O(username) and
        O(password), or O(client_cert) and O(client_key)) no kubeconfig is read.
    type: str
  api_key:
    description:
      - Bearer token for the API server. Default C(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for HTTP basic authentication. Default C(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for HTTP basic authentication. Default C(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Default C(K8S_AUTH_VERIFY_SSL)
        (or C(K8S_AUTH_VALIDATE_CERTS)), then the kubeconfig's setting, then C(true).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path of the CA certificate(s) that signed the API server's certificate. Default
        C(K8S_AUTH_SSL_CA_CERT) (or C(K8S_AUTH_CA_CERT)), then the kubeconfig's.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path of a client certificate. Default C(K8S_AUTH_CERT_FILE) (or C(K8S_AUTH_CLIENT_CERT)).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path of the client certificate's key. Default C(K8S_AUTH_KEY_FILE) (or
        C(K8S_AUTH_CLIENT_KEY)).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy for the API connection. Default C(K8S_AUTH_PROXY).
        C(HTTP_PROXY) and friends are not read.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains and CIDRs that bypass O(proxy). Default
        C(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description:
      - Headers for the HTTP proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(username:password) for the proxy. Default C(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH).
        type: str
      basic_auth:
        description:
          - C(username:password) basic authentication header. Default
            C(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH).
        type: str
      user_agent:
        description:
          - User agent, such as C(foo/1.0). Default C(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
        type: str
  persist_config:
    description:
      - Whether to write refreshed tokens back to the kubeconfig. Default
        C(K8S_AUTH_PERSIST_CONFIG), then C(false).
    type: bool
  impersonate_user:
    description:
      - User to impersonate. Default C(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate. Default C(K8S_AUTH_IMPERSONATE_GROUPS) (comma-separated).
    type: list
    elements: str
notes:
  - The connection options and environment variables are those of kubernetes.core's
    modules, and the action group C(meshguard.egress.egress) covers both, so one
    C(module_defaults) entry sets them for every module the collection's roles call.
  - Unlike kubernetes.core 6.x, a blank option or C(K8S_AUTH_*) variable counts as unset.
"""
