# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Clear errors for missing Python libraries (modules and controller-side plugins alike)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

# Import name -> the requirement line of the collection's requirements.txt.
REQUIREMENTS = {
    "kubernetes": "kubernetes>=24.2.0",
    "jsonschema": "jsonschema>=4.0,<5",
    "yaml": "PyYAML>=6.0",
}


def missing_library_message(name: str, purpose: str) -> str:
    """Why a library is needed and how to install it, naming the interpreter that lacks it."""
    requirement = REQUIREMENTS.get(name, name)
    return (
        f"meshguard.egress needs the Python library {name!r} {purpose}, but it cannot be "
        f"imported by {sys.executable} (Python {sys.version.split()[0]}). Install it into that "
        f"interpreter: {sys.executable} -m pip install '{requirement}' (every requirement: "
        "requirements.txt of the collection; in an execution environment, rebuild the image "
        "with ansible-builder, which reads meta/execution-environment.yml). If it is installed "
        "elsewhere, point ansible_python_interpreter (modules) or the controller's Python at it."
    )


class MissingLibrary(ImportError):
    """A required library is not importable; str() is missing_library_message()."""


def require(name: str, purpose: str) -> Any:
    """Import and return ``name``, or raise MissingLibrary with a message naming it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingLibrary(missing_library_message(name, purpose)) from exc
