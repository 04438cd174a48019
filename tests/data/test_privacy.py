"""Protecting personal data: policy rules, each action, pseudonyms that still join, k-anonymity."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.data.pii import ColumnFinding, scan
from steward.data.privacy import (
    ACTIONS,
    KAnonymityReport,
    PrivacyPolicy,
    Rule,
    apply_policy,
    k_anonymity,
    pseudonymize,
)
from steward.errors import InvalidInput

SECRET = b"s" * 32
OTHER = b"o" * 32


def _people() -> pa.Table:
    return pa.table(
        {
            "email": ["ann@example.com", "bob@example.org", None, "ann@example.com"],
            "card": ["4111111111111111", "5500000000000004", "378282246310005", None],
            "age": [34, 41, None, 93],
            "dob": [date(1990, 5, 17), date(1983, 1, 2), None, date(1931, 12, 31)],
            "postcode": ["SW1A 1AA", "EC1V 9HX", "N1 7GU", None],
            "amount": [1.5, 2.0, 3.25, 4.0],
        }
    )


# --- rules and policies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": "nuke"}, "action"),
        ({"action": "mask", "params": {"keep_lst": 4}}, "keep_lst"),
        ({"action": "mask", "params": {"keep_last": -1}}, "keep_last"),
        ({"action": "mask", "params": {"char": "**"}}, "char"),
        ({"action": "generalize", "params": {"to": "decade"}}, "to"),
        ({"action": "generalize", "params": {"to": "date", "unit": "week"}}, "unit"),
        ({"action": "generalize", "params": {"to": "prefix", "width": 3}}, "width"),
        ({"action": "pseudonymize", "params": {"length": 8}}, "length"),
        ({"action": "drop", "params": {"keep": 1}}, "keep"),
    ],
)
def test_bad_rules_name_the_bad_action_or_parameter(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Rule.from_dict(data)
    assert info.value.details["field"] == field
    assert field in info.value.message or field in ("action", "to", "unit")


def test_policies_round_trip_through_json() -> None:
    policy = PrivacyPolicy(
        by_tag={"email": Rule("pseudonymize"), "credit_card": Rule("mask", {"keep_last": 4})},
        by_column={"age": Rule("generalize", {"to": "age_band", "width": 5, "top": 90})},
        default=Rule("drop"),
    )
    assert PrivacyPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert PrivacyPolicy.from_dict({}) == PrivacyPolicy()


def test_policies_refuse_unknown_tags() -> None:
    with pytest.raises(InvalidInput, match="religion"):
        PrivacyPolicy(by_tag={"religion": Rule("drop")})
    with pytest.raises(InvalidInput, match="religion"):
        PrivacyPolicy.from_dict({"by_tag": {"religion": {"action": "drop"}}})


def test_column_rules_beat_tag_rules_and_the_strongest_tag_rule_wins() -> None:
    policy = PrivacyPolicy(
        by_tag={"email": Rule("mask"), "name": Rule("drop"), "phone": Rule("pseudonymize")},
        by_column={"contact": Rule("keep")},
        default=Rule("generalize", {"to": "prefix", "keep": 1}),
    )
    assert policy.rule_for("contact", ["name"]).action == "keep"
    assert policy.rule_for("x", ["email", "phone"]).action == "pseudonymize"
    assert policy.rule_for("x", ["email", "name", "phone"]).action == "drop"
    assert policy.rule_for("x", []).action == "generalize"
    assert set(ACTIONS) == {"drop", "mask", "pseudonymize", "generalize", "keep"}


# --- apply_policy ----------------------------------------------------------------------------------


def test_apply_policy_runs_every_action_and_documents_the_schema() -> None:
    table = _people()
    before = table.to_pylist()
    policy = PrivacyPolicy(
        by_tag={"email": Rule("pseudonymize", {"length": 16}), "credit_card": Rule("mask", {"keep_last": 4})},
        by_column={
            "age": Rule("generalize", {"to": "age_band", "width": 10, "top": 90}),
            "dob": Rule("generalize", {"to": "date", "unit": "year"}),
            "postcode": Rule("generalize", {"to": "prefix", "keep": 3}),
            "amount": Rule("drop"),
        },
    )
    out = apply_policy(table, scan(table), policy, SECRET)
    assert table.to_pylist() == before  # the input is untouched
    assert out.column_names == ["email", "card", "age", "dob", "postcode"]
    assert [f.type for f in out.schema] == [pa.string(), pa.string(), pa.string(), pa.date32(), pa.string()]
    rows = out.to_pydict()
    assert rows["email"][0] == rows["email"][3] and len(rows["email"][0]) == 16 and rows["email"][2] is None
    assert rows["card"] == ["************1111", "************0004", "***********0005", None]
    assert rows["age"] == ["30-39", "40-49", None, "90+"]
    assert rows["dob"] == [date(1990, 1, 1), date(1983, 1, 1), None, date(1931, 1, 1)]
    assert rows["postcode"] == ["SW1", "EC1", "N1 ", None]
    assert json.loads(out.schema.metadata[b"steward.privacy"]) == {
        "email": "pseudonymize",
        "card": "mask",
        "age": "generalize",
        "dob": "generalize",
        "postcode": "generalize",
        "amount": "drop",
    }


def test_findings_can_be_a_plain_mapping_and_default_drop_is_an_allow_list() -> None:
    policy = PrivacyPolicy(
        by_tag={"email": Rule("mask")}, by_column={"age": Rule("keep")}, default=Rule("drop")
    )
    out = apply_policy(_people(), {"email": ["email"]}, policy, SECRET)
    assert out.column_names == ["email", "age"]
    assert out.column("age").to_pylist() == [34, 41, None, 93]
    assert out.column("email").to_pylist()[0] == "*" * len("ann@example.com")


def test_mask_hides_at_least_half_of_every_value() -> None:
    rule = Rule("mask", {"keep_first": 1, "keep_last": 4, "char": "#"})
    table = pa.table({"v": ["4111111111111111", "1234", "ab", "a", "", None]})
    out = apply_policy(table, {}, PrivacyPolicy(by_column={"v": rule}), SECRET)
    assert out.column("v").to_pylist() == ["4###########1111", "##34", "#b", "#", "#", None]


def test_mask_and_pseudonymize_turn_any_type_into_strings() -> None:
    table = pa.table({"n": [123456, None], "d": [date(2000, 1, 2), None], "b": [b"\x00\xff", None]})
    policy = PrivacyPolicy(
        by_column={"n": Rule("mask", {"keep_last": 2}), "d": Rule("pseudonymize"), "b": Rule("mask")}
    )
    out = apply_policy(table, {}, policy, SECRET)
    assert out.schema == pa.schema([("n", pa.string()), ("d", pa.string()), ("b", pa.string())])
    assert out.column("n").to_pylist() == ["****56", None]
    assert out.column("d").to_pylist()[0] == pseudonymize(pa.array(["2000-01-02"]), SECRET)[0].as_py()
    assert out.column("b").to_pylist() == ["****", None]


def test_generalize_dates_on_timestamps_and_iso_strings() -> None:
    table = pa.table(
        {
            "ts": [datetime(2021, 7, 15, 13, 45), None],
            "text": ["1985-03-14", "14/03/1985"],  # not ISO: becomes null instead of passing through
        }
    )
    month = Rule("generalize", {"to": "date", "unit": "month"})
    out = apply_policy(table, {}, PrivacyPolicy(by_column={"ts": month, "text": month}), SECRET)
    assert out.column("ts").type == table.column("ts").type
    assert out.column("ts").to_pylist() == [datetime(2021, 7, 1), None]
    assert out.column("text").to_pylist() == ["1985-03", None]


def test_generalize_refuses_types_it_cannot_handle() -> None:
    policy = PrivacyPolicy(by_column={"email": Rule("generalize", {"to": "age_band"})})
    with pytest.raises(InvalidInput, match="email"):
        apply_policy(_people(), {}, policy, SECRET)
    policy = PrivacyPolicy(by_column={"age": Rule("generalize", {"to": "date", "unit": "year"})})
    with pytest.raises(InvalidInput, match="age"):
        apply_policy(_people(), {}, policy, SECRET)


def test_unknown_columns_and_short_secrets_are_invalid_input() -> None:
    policy = PrivacyPolicy(by_column={"e_mail": Rule("drop")})
    with pytest.raises(InvalidInput, match="e_mail") as info:
        apply_policy(_people(), {}, policy, SECRET)
    assert info.value.details["field"] == "e_mail"
    with pytest.raises(InvalidInput, match="ghost"):
        apply_policy(_people(), [ColumnFinding("ghost", ("email",), True, 0.0)], PrivacyPolicy(), SECRET)
    with pytest.raises(InvalidInput, match="secret"):
        apply_policy(_people(), {}, PrivacyPolicy(), b"short")


def test_keep_everything_returns_an_equal_table() -> None:
    table = _people()
    out = apply_policy(table, scan(table), PrivacyPolicy(), SECRET)
    assert out.equals(table)


def test_chunked_and_dictionary_columns_are_handled() -> None:
    emails = pa.chunked_array(
        [
            pa.array(["a@x.com", "b@x.com"]).dictionary_encode(),
            pa.array([None, "a@x.com"]).dictionary_encode(),
        ]
    )
    table = pa.table({"email": emails})
    out = apply_policy(table, scan(table), PrivacyPolicy(by_tag={"email": Rule("pseudonymize")}), SECRET)
    values = out.column("email").to_pylist()
    assert values[0] == values[3] != values[1] and values[2] is None


# --- pseudonymize ----------------------------------------------------------------------------------


def test_pseudonyms_are_hmac_sha256_stable_and_keyed() -> None:
    values = pa.array(["alice", "bob", None, "alice"])
    first = pseudonymize(values, SECRET).to_pylist()
    assert first == pseudonymize(values, SECRET).to_pylist()
    assert first[0] == hmac.new(SECRET, b"alice", hashlib.sha256).hexdigest()
    assert first[0] == first[3] != first[1] and first[2] is None
    other = pseudonymize(values, OTHER).to_pylist()
    assert all(a != b for a, b in zip(first, other, strict=True) if a is not None)
    long_key = b"k" * 100  # keys longer than the block size are hashed first, as HMAC says
    assert (
        pseudonymize(pa.array(["x"]), long_key)[0].as_py() == hmac.new(long_key, b"x", "sha256").hexdigest()
    )


def test_pseudonymized_keys_still_join() -> None:
    customers = pa.table({"email": ["ann@example.com", "bob@example.org"], "tier": ["gold", "silver"]})
    orders = pa.table(
        {"email": ["bob@example.org", "ann@example.com", "ann@example.com"], "total": [5, 7, 9]}
    )
    policy = PrivacyPolicy(by_tag={"email": Rule("pseudonymize")})
    safe_customers = apply_policy(customers, scan(customers), policy, SECRET)
    safe_orders = apply_policy(orders, scan(orders), policy, SECRET)
    joined = safe_orders.join(safe_customers, "email").sort_by("total")
    assert joined.column("tier").to_pylist() == ["silver", "gold", "gold"]


def test_pseudonymize_checks_the_secret_and_length() -> None:
    with pytest.raises(InvalidInput, match="16 bytes"):
        pseudonymize(pa.array(["x"]), b"fifteen bytes!!")
    with pytest.raises(InvalidInput):
        pseudonymize(pa.array(["x"]), "a text secret is refused too")  # type: ignore[arg-type]
    assert len(pseudonymize(pa.array(["x"]), SECRET, length=20)[0].as_py()) == 20
    chunked = pseudonymize(pa.chunked_array([["x"], ["y", None]]), SECRET)
    assert isinstance(chunked, pa.ChunkedArray) and chunked.null_count == 1


# --- k-anonymity -----------------------------------------------------------------------------------


def test_k_anonymity_reports_the_smallest_group() -> None:
    table = pa.table(
        {
            "age band": ["30-39"] * 5 + ["40-49"] * 3 + ["50-59"] + [None] * 2,
            "gender": ["f"] * 5 + ["m"] * 3 + ["f"] + [None] * 2,
            "salary": list(range(11)),
        }
    )
    report = k_anonymity(table, ["age band", "gender"])
    assert report == KAnonymityReport(
        k=1,
        quasi_identifiers=("age band", "gender"),
        groups=4,
        smallest_group={"age band": "50-59", "gender": "f"},
        rows_below={2: 1, 5: 6, 10: 11},
    )
    assert json.loads(json.dumps(report.to_dict()))["rows_below"] == {"2": 1, "5": 6, "10": 11}


def test_nulls_form_their_own_group() -> None:
    report = k_anonymity(pa.table({"zip": [None, None, "N1", "N1", "N1"]}), ["zip"])
    assert (report.k, report.groups, report.smallest_group) == (2, 2, {"zip": None})


def test_k_anonymity_of_an_empty_table_is_zero() -> None:
    report = k_anonymity(pa.table({"a": pa.array([], pa.int64())}), ["a"], thresholds=(3,))
    assert (report.k, report.groups, report.smallest_group, dict(report.rows_below)) == (0, 0, {}, {3: 0})


@pytest.mark.parametrize("qis", [[], ["a", "a"], ["nope"]])
def test_k_anonymity_checks_the_quasi_identifiers(qis: list[str]) -> None:
    with pytest.raises(InvalidInput):
        k_anonymity(pa.table({"a": [1]}), qis)


# --- properties ------------------------------------------------------------------------------------

# Every raw value starts with the only "Q" it holds: a lower-case hex pseudonym cannot contain it, and a
# mask, which always hides the first half of a value, never shows it, so no raw value can be in a cell.
_raw = st.text("ABCDEFGHJKLMNPRSTUVWXYZabc0123456789@.-", max_size=12).map(lambda s: "Q" + s)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 120), _raw, _raw, _raw), min_size=0, max_size=30),
    keep_last=st.integers(0, 6),
)
def test_apply_policy_keeps_rows_and_never_leaks_protected_values(
    rows: list[tuple[int, str, str, str]], keep_last: int
) -> None:
    table = pa.table(
        {
            "age": pa.array([r[0] for r in rows], pa.int64()),
            "email": pa.array([r[1] for r in rows], pa.string()),
            "card": pa.array([r[2] for r in rows], pa.string()),
            "notes": pa.array([r[3] for r in rows], pa.string()),
        }
    )
    policy = PrivacyPolicy(
        by_tag={"email": Rule("pseudonymize"), "credit_card": Rule("mask", {"keep_last": keep_last})},
        by_column={"notes": Rule("drop")},
    )
    out = apply_policy(table, {"email": ["email"], "card": ["credit_card"]}, policy, SECRET)
    assert out.num_rows == table.num_rows
    assert out.column_names == ["age", "email", "card"]
    cells = [str(v) for column in out.columns for v in column.to_pylist()]
    for raw in (r[i] for r in rows for i in (1, 2, 3)):
        assert not any(raw in cell for cell in cells)
