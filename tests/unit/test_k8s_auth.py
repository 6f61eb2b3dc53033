"""Connection options (plugins/module_utils/_k8s_auth.py): blank counts as unset.

Configurations are built by the real kubernetes client from kubeconfig files written here;
nothing connects anywhere (the end-to-end runs against the local control plane are in
tests/integration/test_awx_credentials.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.module_utils import _k8s_auth as auth
from ansible_collections.meshguard.egress.plugins.module_utils._requirements import (
    MissingLibrary,
    missing_library_message,
    require,
)

BLANK_AWX_ENV = {
    # what AWX renders for a credential type whose optional fields were left empty
    "K8S_AUTH_CONTEXT": "",
    "K8S_AUTH_HOST": "",
    "K8S_AUTH_API_KEY": "",
    "K8S_AUTH_VERIFY_SSL": "",
    "K8S_AUTH_SSL_CA_CERT": "",
    "K8S_AUTH_CERT_FILE": " ",
    "K8S_AUTH_KEY_FILE": "",
    "K8S_AUTH_PROXY": "",
    "K8S_AUTH_IMPERSONATE_GROUPS": "",
}


def _kubeconfig(tmp_path: Path, current: str = "first") -> Path:
    clusters = [
        {"name": name, "cluster": {"server": f"https://127.0.0.1:{port}"}}
        for name, port in (("first", 6441), ("second", 6442))
    ]
    users = [{"name": name, "user": {"token": f"token-{name}"}} for name in ("first", "second")]
    contexts = [
        {"name": name, "context": {"cluster": name, "user": name}} for name in ("first", "second")
    ]
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": clusters,
                "users": users,
                "contexts": contexts,
                "current-context": current,
            }
        )
    )
    return path


def test_blank_environment_is_no_option() -> None:
    assert auth.auth_options({}, BLANK_AWX_ENV) == {}


def test_blank_parameters_are_no_option() -> None:
    params = {name: None for name in auth.AUTH_ARG_SPEC}
    params.update(context="", host="  ", kubeconfig="", impersonate_groups=[], proxy_headers={})
    assert auth.auth_options(params, {}) == {}


def test_parameters_win_over_environment() -> None:
    env = {"K8S_AUTH_CONTEXT": "from-env", "K8S_AUTH_HOST": "https://env:6443"}
    got = auth.auth_options({"context": "from-param", "host": ""}, env)
    assert got == {"context": "from-param", "host": "https://env:6443"}


def test_blank_parameter_falls_back_to_environment() -> None:
    got = auth.auth_options({"context": ""}, {"K8S_AUTH_CONTEXT": "staging"})
    assert got == {"context": "staging"}


def test_bearer_token_credential_environment() -> None:
    env = {
        "K8S_AUTH_HOST": "https://10.0.0.1:6443",
        "K8S_AUTH_API_KEY": "abc",
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": "/runner/env/tmpca",
    }
    assert auth.auth_options({}, env) == {
        "host": "https://10.0.0.1:6443",
        "api_key": "abc",
        "validate_certs": True,
        "ca_cert": "/runner/env/tmpca",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("False", False), ("no", False), ("0", False), ("true", True), ("YES", True), ("1", True)],
)
def test_boolean_environment(value: str, expected: bool) -> None:
    assert auth.auth_options({}, {"K8S_AUTH_VERIFY_SSL": value}) == {"validate_certs": expected}


def test_not_a_boolean_is_refused() -> None:
    with pytest.raises(auth.AuthError, match="K8S_AUTH_VERIFY_SSL: not a boolean"):
        auth.auth_options({}, {"K8S_AUTH_VERIFY_SSL": "maybe"})


def test_aliases_and_second_environment_names() -> None:
    got = auth.auth_options(
        {"verify_ssl": "false", "ssl_ca_cert": "/ca.pem"},
        {"K8S_AUTH_CERT_FILE": "/c.pem", "K8S_AUTH_CLIENT_KEY": "/k.pem"},
    )
    assert got == {
        "validate_certs": False,
        "ca_cert": "/ca.pem",
        "client_cert": "/c.pem",
        "client_key": "/k.pem",
    }


def test_other_module_parameters_are_ignored() -> None:
    assert auth.auth_options({"probes": [1], "namespace": "x"}, {}) == {}


def test_groups_and_proxy_headers_from_environment() -> None:
    env = {
        "K8S_AUTH_IMPERSONATE_GROUPS": "a, b,,",
        "K8S_AUTH_PROXY_HEADERS_USER_AGENT": "meshguard/1",
        "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH": "",
    }
    assert auth.auth_options({}, env) == {
        "impersonate_groups": ["a", "b"],
        "proxy_headers": {"user_agent": "meshguard/1"},
    }


def test_blank_context_uses_current_context(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, current="second")
    env = {**BLANK_AWX_ENV, "K8S_AUTH_KUBECONFIG": str(path)}
    cfg = auth.configuration(auth.auth_options({}, env), env)
    assert cfg.host == "https://127.0.0.1:6442"
    assert auth.authorization(cfg) == "Bearer token-second"


def test_context_selects_another_cluster(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    env = {"K8S_AUTH_KUBECONFIG": str(path), "K8S_AUTH_CONTEXT": "second"}
    cfg = auth.configuration(auth.auth_options({}, env), env)
    assert cfg.host == "https://127.0.0.1:6442"


def test_unknown_context_names_the_file_and_context(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    options = auth.auth_options({"kubeconfig": str(path), "context": "nope"}, {})
    with pytest.raises(auth.AuthError, match=r"cannot load .*kubeconfig, context 'nope'"):
        auth.configuration(options, {})


def test_blank_kubeconfig_falls_back_to_KUBECONFIG(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    env = {"K8S_AUTH_KUBECONFIG": "", "KUBECONFIG": str(path), "K8S_AUTH_CONTEXT": ""}
    options = auth.auth_options({}, env)
    assert options == {}
    assert auth.kubeconfig_path(options, env) == str(path)


def test_kubeconfig_as_a_dictionary(tmp_path: Path) -> None:
    config = yaml.safe_load(_kubeconfig(tmp_path).read_text())
    cfg = auth.configuration(auth.auth_options({"kubeconfig": config, "context": ""}, {}), {})
    assert cfg.host == "https://127.0.0.1:6441"


def test_host_and_token_need_no_kubeconfig(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    ca = tmp_path / "ca.crt"
    ca.write_text("not read before connecting\n")
    env = {
        "K8S_AUTH_HOST": "https://127.0.0.1:6443/",
        "K8S_AUTH_API_KEY": "abc",
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca),
        "K8S_AUTH_CONTEXT": "",
        "K8S_AUTH_KUBECONFIG": "",
    }
    cfg = auth.configuration(auth.auth_options({}, env), env)
    assert cfg.host == "https://127.0.0.1:6443"
    assert auth.authorization(cfg) == "Bearer abc"
    assert cfg.verify_ssl is True and cfg.ssl_ca_cert == str(ca)


def test_parameters_override_the_kubeconfig(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    options = auth.auth_options(
        {"kubeconfig": str(path), "validate_certs": False, "api_key": "override"}, {}
    )
    cfg = auth.configuration(options, {})
    assert cfg.host == "https://127.0.0.1:6441"
    assert cfg.verify_ssl is False
    assert auth.authorization(cfg) == "Bearer override"


def test_api_client_carries_impersonation(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    options = auth.auth_options({"kubeconfig": str(path), "impersonate_user": "jane"}, {})
    client = auth.api_client(options, {})
    assert client.configuration.host == "https://127.0.0.1:6441"
    assert client.default_headers["Impersonate-User"] == "jane"


def test_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    options = auth.auth_options({"kubeconfig": str(tmp_path / "absent")}, {})
    with pytest.raises(auth.AuthError, match=r"cannot load .*absent"):
        auth.configuration(options, {})


def test_missing_library_message_names_library_interpreter_and_fix() -> None:
    import sys

    message = missing_library_message("jsonschema", "to check the chart values")
    assert "'jsonschema'" in message and "to check the chart values" in message
    assert sys.executable in message and "pip install 'jsonschema>=4" in message


def test_require_raises_the_message() -> None:
    with pytest.raises(MissingLibrary, match="'no_such_library_xyz' for a test"):
        require("no_such_library_xyz", "for a test")
    assert require("yaml", "to read YAML") is yaml
