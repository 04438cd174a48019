"""Tests for steward/registry/requirements.py: pins from packages, modules and the user's extras."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from steward.errors import InvalidInput
from steward.registry.requirements import pinned_requirements


def test_modules_resolve_to_their_distribution() -> None:
    assert pinned_requirements([], ["sklearn"]) == [f"scikit-learn=={version('scikit-learn')}"]
    assert pinned_requirements([], ["sklearn.linear_model._logistic"]) == pinned_requirements([], ["sklearn"])


def test_pins_are_canonical_sorted_and_deduplicated() -> None:
    pins = pinned_requirements(["NumPy", "scikit_learn", "numpy"], ["numpy", "sklearn"])
    assert pins == [f"numpy=={version('numpy')}", f"scikit-learn=={version('scikit-learn')}"]


def test_what_is_not_installed_or_not_distributed_is_skipped() -> None:
    pins = pinned_requirements(
        ["steward-test-not-installed"], ["json", "builtins", "steward_test_local_file"]
    )
    assert pins == []


def test_extras_are_kept_verbatim_and_win_over_pins() -> None:
    pins = pinned_requirements(
        ["numpy", "scipy"], [], ["tokenizers>=0.19", " numpy>=1.26 ", "tokenizers>=0.19"]
    )
    assert pins == ["numpy>=1.26", "scipy==" + version("scipy"), "tokenizers>=0.19"]


@pytest.mark.parametrize("bad", ["numpy>=", "not a requirement!", "==1.0"])
def test_malformed_extras_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid requirement") as info:
        pinned_requirements([], [], [bad])
    assert info.value.details["field"] == "requirements"
