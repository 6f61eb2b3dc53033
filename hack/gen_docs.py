"""Generate what is derived from the description schema (plugins/plugin_utils/schema.py):

- each role's ``meta/argument_specs.yml`` options (the ``egress_*`` variables it reads);
  the hand-written ``short_description`` / ``description`` there are kept;
- each role's README.md (hack/role_docs.py renders it from the argument specs);
- docs/description.md, the key reference.

.venv/bin/python hack/gen_docs.py          # rewrite them
.venv/bin/python hack/gen_docs.py --check  # exit 1 and name the stale files
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".venv" / "collections"))
sys.path.insert(0, str(ROOT / "hack"))

import role_docs  # noqa: E402

from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import (  # noqa: E402
    CONCERN_KEYS,
    REQUIRED,
    SCHEMA,
    VARIABLE_PREFIX,
    Field,
)

ROLE_KEYS = {**CONCERN_KEYS, "verify": SCHEMA.keys}
ROLE_OWN = {
    role: {
        f"{role}_state": {
            "type": "str",
            "default": "present",
            "choices": ["present", "absent"],
            "description": f"C(absent) removes what the {role} part of the description owns.",
        }
    }
    for role in CONCERN_KEYS
}
ROLE_OWN["verify"] = {
    "verify_fail": {
        "type": "bool",
        "default": True,
        "description": "Fail the role when an expectation does not hold.",
    }
}
_TYPES = {"labels": "dict"}


def _option(item: Field) -> dict[str, Any]:
    text = item.doc
    if item.fields:
        text += " Keys: " + ", ".join(f"C({f.key})" for f in item.fields) + "."
    text += " See docs/description.md."
    option: dict[str, Any] = {"type": _TYPES.get(item.type, item.type), "description": text}
    if item.elements:
        option["elements"] = item.elements
    elif item.type == "list" and item.fields:
        option["elements"] = "dict"
    if item.default is REQUIRED:
        # not required here: the plan's own validation names what is missing, with its path
        option["description"] = "Required. " + text
    elif item.default is not None:
        option["default"] = item.default
    if item.choices:
        option["choices"] = list(item.choices)
    return option


def argument_specs(role: str, current: dict[str, Any]) -> dict[str, Any]:
    main = dict(current["argument_specs"]["main"])
    options = dict(ROLE_OWN[role])
    for key in ROLE_KEYS[role]:
        options[VARIABLE_PREFIX + key] = _option(SCHEMA.child(key))
    main["options"] = options
    return {"argument_specs": {"main": main}}


def _rows(item: Field, prefix: str) -> list[str]:
    rows = []
    for child in item.fields:
        path = f"{prefix}{child.key}"
        kind = _TYPES.get(child.type, child.type)
        if child.type == "list" and (child.fields or child.elements):
            kind = f"list of {child.elements or 'dict'}"
        if child.default is REQUIRED:
            default = "(required)"
        elif child.default is None:
            default = ""
        else:
            default = f"`{json.dumps(child.default)}`"
        choices = f" One of {', '.join(child.choices)}." if child.choices else ""
        doc = child.doc.replace("|", "\\|")
        rows.append(f"| `{path}` | {kind} | {default} | {doc}{choices} |")
        rows += _rows(child, f"{path}[]." if child.type == "list" else f"{path}.")
    return rows


def description_doc() -> str:
    lines = [
        "# The egress description: every key",
        "",
        "<!-- Generated from plugins/plugin_utils/schema.py by hack/gen_docs.py; do not edit. -->",
        "",
        "Each top-level key `K` is the inventory variable `egress_K` (for example",
        "`egress_gateway`). Every `egress_override_*` variable (a mapping of the same keys) is",
        "deep-merged on top in name order, so one setting can be overridden in group_vars,",
        "host_vars or extra vars without restating its mapping:",
        '`-e \'{"egress_override_ci": {"gateway": {"chart_version": "1.23.5"}}}\'`.',
        "An unknown key, at any depth, is refused with its path before anything is written.",
        "Empty strings mean unset.",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
        *_rows(SCHEMA, ""),
        "",
    ]
    return "\n".join(lines)


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key, as yamllint (ansible-lint) wants."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def outputs() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for role in ROLE_KEYS:
        path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
        spec = argument_specs(role, yaml.safe_load(path.read_text()))
        text = "---\n" + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=100)
        files[path] = text
    files[ROOT / "docs" / "description.md"] = description_doc()
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        if path.is_file() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if not check:
        role_docs.main([])
    elif role_docs.main(["--check"]):
        stale.append("role READMEs")
    if stale:
        print("out of date (run .venv/bin/python hack/gen_docs.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
