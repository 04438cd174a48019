"""Ids sort by time; names and keys are checked with messages that name the field."""

from __future__ import annotations

import pytest

from steward.core.ids import new_id
from steward.core.names import validate_key, validate_name
from steward.errors import InvalidInput


def test_ids_are_unique_and_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and i[12] == "7" for i in ids)  # UUID version 7


@pytest.mark.parametrize("name", ["churn", "Churn_v2", "a.b-c", "9lives", "x" * 128])
def test_valid_names_pass(name: str) -> None:
    assert validate_name(name, "model") == name


@pytest.mark.parametrize("name", ["", "_x", "a b", "a/b", "x" * 129, None, 3])
def test_invalid_names_name_the_field(name: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_name(name, "model")
    assert info.value.details["field"] == "model"
    assert "model" in info.value.message


@pytest.mark.parametrize("key", ["loss", "val/loss", "val loss", "f1.macro", "a-b"])
def test_metric_keys_allow_slashes_and_spaces(key: str) -> None:
    assert validate_key(key, "metrics") == key


@pytest.mark.parametrize("key", ["", " loss", "loss ", "a;b", "../x", "é"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidInput):
        validate_key(key, "metrics")
