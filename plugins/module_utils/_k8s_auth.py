# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cluster credentials, in one place for the modules and the controller-side actions.

Options are those of kubernetes.core (``kubeconfig``, ``context``, ``host``, ``api_key``,
``validate_certs``, ``ca_cert``, ...), each falling back to its ``K8S_AUTH_*`` environment
variable. A blank value counts as unset: AWX renders every injector of a credential type,
so optional fields left empty arrive as empty strings.
"""

from __future__ import annotations

from typing import Any

AUTH_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "raw", "no_log": False},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
    "proxy": {"type": "str"},
}
# option -> environment variable (kubernetes.core's names)
AUTH_ENV = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "username": "K8S_AUTH_USERNAME",
    "password": "K8S_AUTH_PASSWORD",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
    "client_cert": "K8S_AUTH_CERT_FILE",
    "client_key": "K8S_AUTH_KEY_FILE",
    "proxy": "K8S_AUTH_PROXY",
}
_FALSE = ("0", "false", "no", "off", "n", "f")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def auth_options(params: dict[str, Any], environ: Any) -> dict[str, Any]:
    """The non-blank auth options: a parameter wins over its ``K8S_AUTH_*`` variable."""
    options: dict[str, Any] = {}
    for key, variable in AUTH_ENV.items():
        value = params.get(key)
        if _blank(value):
            value = environ.get(variable)
        if _blank(value):
            continue
        if key == "validate_certs" and isinstance(value, str):
            value = value.strip().lower() not in _FALSE
        options[key] = value
    return options


def api_client(options: dict[str, Any]) -> Any:
    """A ``kubernetes.client.ApiClient``: the kubeconfig (given, or the default one) when there
    is no ``host``, then ``host``, ``api_key``, certificates and ``proxy`` on top of it."""
    from kubernetes import client, config

    configuration = client.Configuration()
    kubeconfig = options.get("kubeconfig")
    if isinstance(kubeconfig, dict):
        config.load_kube_config_from_dict(
            kubeconfig, context=options.get("context"), client_configuration=configuration
        )
    elif kubeconfig or not options.get("host"):
        config.load_kube_config(
            config_file=kubeconfig,
            context=options.get("context"),
            client_configuration=configuration,
        )
    if options.get("host"):
        configuration.host = options["host"]
    if options.get("api_key"):
        configuration.api_key = {"authorization": f"Bearer {options['api_key']}"}
    if options.get("username"):
        configuration.username = options["username"]
        configuration.password = options.get("password")
    if "validate_certs" in options:
        configuration.verify_ssl = options["validate_certs"]
    if options.get("ca_cert"):
        configuration.ssl_ca_cert = options["ca_cert"]
    if options.get("client_cert"):
        configuration.cert_file = options["client_cert"]
        configuration.key_file = options.get("client_key")
    if options.get("proxy"):
        configuration.proxy = options["proxy"]
    return client.ApiClient(configuration)
