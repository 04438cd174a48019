"""Semantic versions of model versions: parsing with clear errors, ordering, and the next version.

Parsing and precedence come from the ``semver`` package (SemVer 2.0.0); this module adds Steward's
rule for choosing the next version: the first is ``1.0.0``, a retrain bumps the minor number of the
highest version so far, and a changed input signature bumps the major number.
"""

from __future__ import annotations

from collections.abc import Iterable

import semver

from steward.errors import InvalidInput

FIRST_VERSION = "1.0.0"


def parse_version(text: object) -> semver.Version:
    """Parse a SemVer string such as ``"1.2.0"`` or ``"2.0.0-rc.1"``.

    Raises:
        InvalidInput: If ``text`` is not a valid semantic version (``"1.2"`` and ``"v1.2.0"`` are not).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"invalid version {text!r}: expected a string like '1.2.0'", {"field": "version"})
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"invalid version {text!r}: use semantic versioning MAJOR.MINOR.PATCH, e.g. '1.2.0'",
            {"field": "version", "value": text},
        ) from None


def sort_key(text: str) -> semver.Version:
    """A key that orders version strings by SemVer precedence (``1.10.0`` after ``1.9.0``)."""
    return semver.Version.parse(text)


def highest(versions: Iterable[str]) -> str | None:
    """Return the highest of ``versions`` by SemVer precedence, or None if there are none."""
    found = [semver.Version.parse(v) for v in versions]
    return str(max(found)) if found else None


def next_version(existing: Iterable[str], breaking: bool) -> str:
    """Choose the version after ``existing``: ``1.0.0`` first, then a minor bump, or a major one if breaking.

    Args:
        existing: Every version the model has (archived ones too: a number is never reused).
        breaking: Whether the new version's inputs differ from the highest version's.
    """
    top = highest(existing)
    if top is None:
        return FIRST_VERSION
    current = semver.Version.parse(top)
    return str(current.bump_major() if breaking else current.bump_minor())
