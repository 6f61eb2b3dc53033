"""Generate each role's README.md from its meta/argument_specs.yml.

.venv/bin/python hack/role_docs.py          # rewrite the READMEs
.venv/bin/python hack/role_docs.py --check  # exit 1 if any README is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _text(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value or "").strip()


def _option_rows(options: dict, prefix: str = "") -> list[str]:
    rows = []
    for name, spec in options.items():
        kind = spec.get("type", "str")
        if kind == "list" and spec.get("elements"):
            kind = f"list of {spec['elements']}"
        default = "(required)" if spec.get("required") else f"`{spec.get('default')!r}`"
        if "default" not in spec and not spec.get("required"):
            default = ""
        choices = (
            f" Choices: {', '.join(map(str, spec['choices']))}." if spec.get("choices") else ""
        )
        rows.append(
            f"| `{prefix}{name}` | {kind} | {default} | {_text(spec.get('description'))}{choices} |"
        )
        if spec.get("options"):
            rows.extend(_option_rows(spec["options"], f"{prefix}{name}."))
    return rows


def render(role_dir: Path) -> str:
    spec = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())
    main = spec["argument_specs"]["main"]
    lines = [
        f"# Role `meshguard.egress.{role_dir.name}`",
        "",
        "<!-- Generated from meta/argument_specs.yml by hack/role_docs.py; do not edit. -->",
        "",
        _text(main.get("short_description")),
        "",
        *[_text(d) + "\n" for d in (main.get("description") or [])],
        "## Variables",
        "",
        "| variable | type | default | description |",
        "| --- | --- | --- | --- |",
        *_option_rows(main.get("options") or {}),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for role_dir in sorted((ROOT / "roles").iterdir()):
        if not (role_dir / "meta" / "argument_specs.yml").is_file():
            continue
        readme, text = role_dir / "README.md", render(role_dir)
        if check:
            if not readme.is_file() or readme.read_text() != text:
                stale.append(str(readme.relative_to(ROOT)))
        else:
            readme.write_text(text)
    if stale:
        print("out of date (run hack/role_docs.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
