"""Semantic versions: parsing with clear errors, precedence, and the next version of a model."""

from __future__ import annotations

import pytest

from steward.core.semver import highest, next_version, parse_version
from steward.errors import InvalidInput


@pytest.mark.parametrize("text", ["1.2", "v1.2.0", "1.2.0.0", "01.2.0", "", "latest"])
def test_invalid_versions_are_refused_with_the_rule(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"MAJOR\.MINOR\.PATCH") as info:
        parse_version(text)
    assert info.value.details["field"] == "version"


def test_non_string_version_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_version(1.2)


def test_precedence_is_numeric_and_prereleases_come_first() -> None:
    assert highest(["1.9.0", "1.10.0", "1.2.0"]) == "1.10.0"
    assert highest(["2.0.0-rc.1", "1.5.0"]) == "2.0.0-rc.1"
    assert highest(["2.0.0-rc.1", "2.0.0"]) == "2.0.0"
    assert highest([]) is None


def test_next_version_starts_at_one_and_bumps_minor_or_major() -> None:
    assert next_version([], breaking=False) == "1.0.0"
    assert next_version([], breaking=True) == "1.0.0"
    assert next_version(["1.0.0", "1.1.0"], breaking=False) == "1.2.0"
    assert next_version(["1.0.0", "1.1.3"], breaking=True) == "2.0.0"
    # The highest version counts, not the latest registered: a hotfix of an old line does not rewind.
    assert next_version(["2.0.0", "1.4.1"], breaking=False) == "2.1.0"
