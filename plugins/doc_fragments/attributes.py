# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared C(attributes) documentation of the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    # What each attribute means (every module extends this one).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying
      target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in
      check_mode), when in diff mode.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the
      second invocation indicates no change.
"""

    # Read-only verification modules: they change nothing, so they run in check mode too.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs in check mode as it does otherwise.
  diff_mode:
    support: N/A
    details:
      - The module only reads; there is nothing to diff.
  idempotent:
    support: full
"""
