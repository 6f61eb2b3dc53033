# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes connection options, the one place where they are read.

The options and their ``K8S_AUTH_*`` environment variables are those of kubernetes.core
(``kubeconfig``, ``context``, ``host``, ``api_key``, ...), with one difference: a **blank
value counts as unset**, in a module parameter and in the environment alike. AWX renders
every env injector of a credential type, so an optional field left empty arrives as
``K8S_AUTH_CONTEXT=""``; kubernetes.core would look for a context named "" and fail.

Pure functions (no AnsibleModule): modules and controller-side action plugins use the same
code. ``kubernetes`` is imported only by :func:`api_client`.
"""

from __future__ import annotations

import base64
import os
from typing import Any

# option -> environment variables, in the order they are consulted (the second name is the
# kubernetes client's own, which kubernetes.core also reads).
ENV_VARS: dict[str, tuple[str, ...]] = {
    "kubeconfig": ("K8S_AUTH_KUBECONFIG",),
    "context": ("K8S_AUTH_CONTEXT",),
    "host": ("K8S_AUTH_HOST",),
    "api_key": ("K8S_AUTH_API_KEY",),
    "username": ("K8S_AUTH_USERNAME",),
    "password": ("K8S_AUTH_PASSWORD",),
    "validate_certs": ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"),
    "ca_cert": ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"),
    "client_cert": ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"),
    "client_key": ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"),
    "proxy": ("K8S_AUTH_PROXY",),
    "no_proxy": ("K8S_AUTH_NO_PROXY",),
    "persist_config": ("K8S_AUTH_PERSIST_CONFIG",),
    "impersonate_user": ("K8S_AUTH_IMPERSONATE_USER",),
    "impersonate_groups": ("K8S_AUTH_IMPERSONATE_GROUPS",),
}
PROXY_HEADERS_ENV = {
    "proxy_basic_auth": "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH",
    "basic_auth": "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH",
    "user_agent": "K8S_AUTH_PROXY_HEADERS_USER_AGENT",
}

PROXY_HEADERS_SPEC: dict[str, Any] = {
    "proxy_basic_auth": {"type": "str", "no_log": True},
    "basic_auth": {"type": "str", "no_log": True},
    "user_agent": {"type": "str"},
}

# AnsibleModule argument spec of the options (documented by the meshguard.egress.k8s_auth
# doc fragment). No env fallbacks here: auth_options() reads the environment itself, so
# that a blank variable is skipped instead of overriding a lower-priority source.
AUTH_ARG_SPEC: dict[str, Any] = {
    "kubeconfig": {"type": "raw", "no_log": True},
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
    "no_proxy": {"type": "str"},
    "proxy_headers": {"type": "dict", "options": PROXY_HEADERS_SPEC},
    "persist_config": {"type": "bool"},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
}

ALIASES = {alias: name for name, spec in AUTH_ARG_SPEC.items() for alias in spec.get("aliases", ())}
BOOL_OPTIONS = frozenset(n for n, s in AUTH_ARG_SPEC.items() if s.get("type") == "bool")
_FALSE = frozenset(("0", "false", "no", "off", "n", "f"))
_TRUE = frozenset(("1", "true", "yes", "on", "y", "t"))


class AuthError(ValueError):
    """Connection options that cannot work (the message says which and why)."""


def is_blank(value: Any) -> bool:
    """None, an empty or whitespace-only string, or an empty list/dict."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return len(value) == 0
    return False


def to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise AuthError(f"{name}: not a boolean (got {value!r})")


def _from_env(name: str, environ: Any) -> Any:
    for var in ENV_VARS[name]:
        value = environ.get(var)
        if not is_blank(value):
            if name in BOOL_OPTIONS:
                return to_bool(var, value)
            if name == "impersonate_groups":
                return [g.strip() for g in value.split(",") if g.strip()]
            return value.strip()
    return None


def auth_options(params: Any, environ: Any = None) -> dict[str, Any]:
    """The connection options that are set, as a dict of non-blank values.

    ``params`` (module parameters or an action plugin's task arguments; aliases such as
    ``verify_ssl`` are accepted) win over the ``K8S_AUTH_*`` variables of ``environ``
    (default ``os.environ``). Blank values of either are skipped. Keys that are not
    connection options are ignored, so a module can pass all its parameters.
    """
    environ = os.environ if environ is None else environ
    params = params or {}
    given: dict[str, Any] = {}
    for key, value in params.items():
        name = ALIASES.get(key, key)
        if name in AUTH_ARG_SPEC and not is_blank(value) and name not in given:
            given[name] = value
    options: dict[str, Any] = {}
    for name in AUTH_ARG_SPEC:
        if name == "proxy_headers":
            headers = {
                k: v
                for k, v in (given.get(name) or {}).items()
                if k in PROXY_HEADERS_SPEC and not is_blank(v)
            }
            for key, var in PROXY_HEADERS_ENV.items():
                if key not in headers and not is_blank(environ.get(var)):
                    headers[key] = environ[var].strip()
            if headers:
                options[name] = headers
            continue
        if name in given:
            value = given[name]
            if name in BOOL_OPTIONS:
                value = to_bool(name, value)
            elif isinstance(value, str):
                value = value.strip()
        else:
            value = _from_env(name, environ)
        if value is not None:
            options[name] = value
    return options


def kubeconfig_path(options: dict[str, Any], environ: Any = None) -> str:
    """The kubeconfig file(s) to read: the option, else ``KUBECONFIG``, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    if isinstance(options.get("kubeconfig"), str):
        return os.path.expanduser(options["kubeconfig"])
    if not is_blank(environ.get("KUBECONFIG")):
        return os.path.expanduser(environ["KUBECONFIG"].strip())
    return os.path.expanduser("~/.kube/config")


def _has_credentials(options: dict[str, Any]) -> bool:
    return bool(
        options.get("api_key")
        or (options.get("username") and options.get("password"))
        or (options.get("client_cert") and options.get("client_key"))
    )


def _basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def _set_authorization(cfg: Any, value: str) -> None:
    # kubernetes >= 30 reads api_key["BearerToken"] first, older clients "authorization".
    # The kubeconfig loader's refresh hook would put the kubeconfig's token back.
    cfg.api_key = {"BearerToken": value, "authorization": value}
    cfg.api_key_prefix = {}
    cfg.refresh_api_key_hook = None


def authorization(cfg: Any) -> str | None:
    """The Authorization header a Configuration sends (None without one)."""
    setting = cfg.auth_settings().get("BearerToken")
    return setting["value"] if setting else None


def configuration(options: dict[str, Any], environ: Any = None) -> Any:
    """A ``kubernetes.client.Configuration`` for ``options`` (as auth_options returns them).

    * ``host`` with a credential (``api_key``, ``username``+``password`` or
      ``client_cert``+``client_key``): built from the options alone, no kubeconfig read;
    * else ``kubeconfig`` or ``context`` given: that kubeconfig (``KUBECONFIG`` or
      ``~/.kube/config`` when only the context is given), then the other options on top;
    * else the in-cluster service account when running in a pod, otherwise the default
      kubeconfig.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    if options.get("host") and _has_credentials(options):
        pass
    elif options.get("kubeconfig") is not None or options.get("context"):
        _load_kubeconfig(cfg, options, environ)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            _load_kubeconfig(cfg, options, environ)
    if options.get("host"):
        cfg.host = options["host"].rstrip("/")
    if options.get("api_key"):
        _set_authorization(cfg, f"Bearer {options['api_key']}")
    elif options.get("username") and options.get("password"):
        cfg.username, cfg.password = options["username"], options["password"]
        _set_authorization(cfg, _basic_auth(options["username"], options["password"]))
    if "validate_certs" in options:
        cfg.verify_ssl = options["validate_certs"]
    for option, attribute in (
        ("ca_cert", "ssl_ca_cert"),
        ("client_cert", "cert_file"),
        ("client_key", "key_file"),
        ("proxy", "proxy"),
        ("no_proxy", "no_proxy"),
    ):
        if options.get(option):
            setattr(cfg, attribute, options[option])
    if options.get("proxy_headers"):
        import urllib3

        cfg.proxy_headers = urllib3.util.make_headers(**options["proxy_headers"])
    return cfg


def _load_kubeconfig(cfg: Any, options: dict[str, Any], environ: Any) -> None:
    from kubernetes import config

    kwargs = {
        "context": options.get("context"),
        "client_configuration": cfg,
        "persist_config": bool(options.get("persist_config", False)),
    }
    try:
        if isinstance(options.get("kubeconfig"), dict):
            config.load_kube_config_from_dict(config_dict=options["kubeconfig"], **kwargs)
        else:
            path = kubeconfig_path(options, environ)
            config.load_kube_config(config_file=path, **kwargs)
    except (config.ConfigException, OSError) as exc:
        where = "the kubeconfig given as a dict"
        if not isinstance(options.get("kubeconfig"), dict):
            where = kubeconfig_path(options, environ)
        context = f", context {options['context']!r}" if options.get("context") else ""
        raise AuthError(f"cannot load {where}{context}: {exc}") from exc


def api_client(options: dict[str, Any], environ: Any = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``options`` (see :func:`configuration`)."""
    from kubernetes import client

    api = client.ApiClient(configuration=configuration(options, environ))
    if options.get("impersonate_user"):
        api.set_default_header("Impersonate-User", options["impersonate_user"])
    if options.get("impersonate_groups"):
        api.set_default_header("Impersonate-Group", options["impersonate_groups"])
    return api
