"""Finding personal data: each detector both ways, name hints, masked examples, thresholds."""

from __future__ import annotations

import json
import random
from datetime import date, datetime

import pyarrow as pa
import pytest

from steward.data.pii import (
    PII_TAGS,
    ColumnFinding,
    emirates_id_valid,
    iban_valid,
    luhn_valid,
    mask_example,
    name_hints,
    scan,
)
from steward.errors import InvalidInput


def _luhn_check_digit(payload: str) -> str:
    """An independent Luhn check digit, computed from the right as the standard describes."""
    total = 0
    for i, char in enumerate(reversed(payload)):
        digit = int(char) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


def _tags(table: pa.Table, min_share: float = 0.5) -> dict[str, tuple[str, ...]]:
    return {f.column: f.tags for f in scan(table, min_share=min_share)}


def _one_column(values: list[object], name: str = "col", kind: pa.DataType | None = None) -> pa.Table:
    return pa.table({name: pa.array(values, kind)})


# --- checksums -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card", ["4111111111111111", "5500000000000004", "378282246310005", "4012888888881881"]
)
def test_test_card_numbers_pass_luhn(card: str) -> None:
    assert luhn_valid(card)
    assert _luhn_check_digit(card[:-1]) == card[-1]


@pytest.mark.parametrize("card", ["4111111111111112", "5500000000000005", "12ab", ""])
def test_wrong_check_digits_fail_luhn(card: str) -> None:
    assert not luhn_valid(card)


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "AE070331234567890123456",
        "DE89370400440532013000",
        "gb82west12345698765432",
    ],
)
def test_valid_ibans_pass_mod_97(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 33",  # one digit off
        "AE070331234567890123457",  # one digit off
        "AE07033123456789012345",  # AE IBANs have 23 characters, this one 22
        "AE0703312345678901234560",  # and this one 24
        "XX00",
    ],
)
def test_invalid_ibans_fail(iban: str) -> None:
    assert not iban_valid(iban)


def test_emirates_id_check_digit_is_luhn_over_the_15_digits() -> None:
    payload = "78419851234567"
    good = _luhn_check_digit(payload)
    assert good == "3"
    assert emirates_id_valid(f"784-1985-1234567-{good}")
    assert emirates_id_valid(payload + good)
    for wrong in set("0123456789") - {good}:
        assert not emirates_id_valid(f"784-1985-1234567-{wrong}")


def test_emirates_id_needs_784_and_a_plausible_year() -> None:
    assert not emirates_id_valid("785-1985-1234567-3")
    year = date.today().year + 1
    payload = f"784{year}1234567"
    assert not emirates_id_valid(payload + _luhn_check_digit(payload))


# --- value detectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "tag"),
    [
        (["john.doe@example.com", "a+b@mail.co.uk", "x_y@sub.domain.ae"], "email"),
        (["+971 50 123 4567", "00971501234567", "050-123-4567", "0501234567", "04 123 4567"], "phone"),
        (["+44 20 7946 0958", "+1 (555) 123-4567", "555-123-4567"], "phone"),
        (["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"], "credit_card"),
        (["GB82 WEST 1234 5698 7654 32", "AE070331234567890123456", "DE89370400440532013000"], "iban"),
        (["192.168.1.20", "10.0.0.1", "2001:db8::8a2e:370:7334", "::1"], "ip_address"),
        (["784-1985-1234567-3", "784199000000010", "784 2001 1111111 6"], "emirates_id"),
        (["123-45-6789", "078-05-1120"], "national_id"),
    ],
)
def test_value_patterns_flag_columns_with_a_neutral_name(values: list[str], tag: str) -> None:
    findings = scan(_one_column(values))
    assert [f.tags for f in findings] == [(tag,)]
    assert findings[0].by_name is False
    assert findings[0].match_share == 1.0


@pytest.mark.parametrize(
    "values",
    [
        ["not an email", "john@", "@example.com", "a@b"],
        ["4111111111111112", "5500000000000005", "1234567812345678"],  # Luhn fails
        ["GB82 WEST 1234 5698 7654 33", "AE070331234567890123457"],  # mod-97 fails
        ["256.1.1.1", "12:30:45", "1.2.3", "gggg::1"],
        ["784-1985-1234567-4", "784-1985-1234567-5"],  # wrong Emirates ID check digit
        ["12345", "hello", "2024", "5.5"],
        ["000-12-3456", "666-12-3456", "123-00-4567"],  # impossible SSNs
    ],
)
def test_look_alikes_are_not_flagged(values: list[str]) -> None:
    assert scan(_one_column(values)) == []


def test_emirates_ids_are_not_also_counted_as_cards() -> None:
    assert _tags(_one_column(["784198512345673", "784199000000010"])) == {"col": ("emirates_id",)}


def test_uae_mobile_numbers_stored_as_integers_are_phones() -> None:
    assert _tags(_one_column([971501234567, 971551112233], kind=pa.int64())) == {"col": ("phone",)}


def test_plain_integer_ids_are_not_phones_or_cards() -> None:
    rng = random.Random(7)
    ids = [rng.randrange(10**15, 10**16) for _ in range(2_000)]
    small = list(range(1_000_000_000, 1_000_002_000))
    table = pa.table({"order_id": ids, "seq": small})
    assert scan(table) == []


def test_random_16_digit_strings_mostly_fail_luhn_and_are_not_cards() -> None:
    rng = random.Random(1)
    values = [str(rng.randrange(10**15, 10**16)) for _ in range(5_000)]
    assert scan(_one_column(values)) == []
    assert scan(_one_column(values), min_share=0.05)[0].tags == ("credit_card",)  # ~10% pass Luhn


def test_passport_shape_needs_a_name_hint_or_a_high_share_of_distinct_values() -> None:
    distinct = [f"A{1000000 + i}" for i in range(100)]
    repeated = ["AB123456", "CD654321"] * 50
    mostly = distinct[:90] + ["n/a"] * 10
    table = pa.table({"doc": distinct, "sku": repeated, "ref": mostly, "passport_no": repeated})
    assert _tags(table) == {"doc": ("passport",), "passport_no": ("passport",)}


def test_date_of_birth_needs_a_name_hint() -> None:
    births = [date(1980, 1, 2), date(1975, 6, 30), None]
    table = pa.table({"dob": births, "signup_date": births, "born_on": births, "birth_ts": births})
    findings = {f.column: f for f in scan(table)}
    assert set(findings) == {"dob", "born_on", "birth_ts"}
    assert findings["dob"].by_name is True
    assert findings["born_on"].by_name is False  # a weak name, confirmed by plausible dates


def test_weak_birth_name_needs_every_date_to_be_plausible() -> None:
    recent = datetime.now().date()
    table = pa.table(
        {
            "born_on": [date(1980, 1, 2), recent],  # born today: not a plausible customer's birth date
            "birth": ["1980-01-02", "02/03/1990"],
            "birth_place": ["Dubai", "Abu Dhabi"],
            "born": [datetime(1970, 1, 1), datetime(1899, 12, 31)],
        }
    )
    assert _tags(table) == {"birth": ("date_of_birth",)}


# --- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "tag"),
    [
        ("email", "email"),
        ("E_Mail", "email"),
        ("customerEmailAddress", "email"),
        ("mobile", "phone"),
        ("MSISDN", "phone"),
        ("phone_number", "phone"),
        ("card_number", "credit_card"),
        ("cc", "credit_card"),
        ("IBAN", "iban"),
        ("ip", "ip_address"),
        ("client_ip_address", "ip_address"),
        ("IPAddress", "ip_address"),
        ("emirates_id", "emirates_id"),
        ("EID", "emirates_id"),
        ("passport", "passport"),
        ("passport_no", "passport"),
        ("DOB", "date_of_birth"),
        ("date_of_birth", "date_of_birth"),
        ("birth_date", "date_of_birth"),
        ("first_name", "name"),
        ("lastName", "name"),
        ("full-name", "name"),
        ("address", "address"),
        ("street", "address"),
        ("billing_address_line_1", "address"),
        ("national_id", "national_id"),
        ("ssn", "national_id"),
    ],
)
def test_column_names_are_hints_in_any_style(column: str, tag: str) -> None:
    assert name_hints(column)[0] == {tag}
    finding = scan(pa.table({column: ["x", None]}))[0]
    assert finding.tags == (tag,) and finding.by_name is True


@pytest.mark.parametrize(
    "column", ["name", "product_name", "cc_recipients", "mac_address", "zip_file", "tip", "city"]
)
def test_innocent_column_names_are_not_hints(column: str) -> None:
    assert name_hints(column)[0] == set()


def test_boolean_columns_are_never_flagged() -> None:
    assert scan(pa.table({"is_mobile": [True, False], "email": [True, None]})) == []


def test_name_and_value_tags_combine_in_tag_order() -> None:
    finding = scan(pa.table({"contact_phone": ["a@example.com", "b@example.org"]}))[0]
    assert finding.tags == ("email", "phone")
    assert finding.by_name is True and finding.match_share == 1.0


# --- findings --------------------------------------------------------------------------------------


def test_examples_are_masked_and_never_hold_the_raw_value() -> None:
    raw = {
        "email": ["john.doe@example.com", "jane@corp.ae", "zed@x.io"],
        "card": ["4111 1111 1111 1111", "5500000000000004", "378282246310005"],
        "phone": ["+971 50 123 4567", "0559876543", "+971 4 123 4567"],
        "iban": ["GB82WEST12345698765432", "AE070331234567890123456", "DE89370400440532013000"],
        "ip": ["192.168.1.20", "2001:db8::8a2e:370:7334", "10.1.2.3"],
        "eid": ["784-1985-1234567-3", "784199000000010", "784200111111116"],
        "first_name": ["Fatima", "John", "Li"],
        "dob": ["1980-01-02", "1975-06-30", "2001-12-31"],
        "passport": ["A1234567", "B7654321", "XY123456"],
    }
    findings = scan(pa.table(raw))
    assert {f.column for f in findings} == set(raw)
    for finding in findings:
        text = json.dumps(finding.to_dict())
        assert 1 <= len(finding.examples) <= 3
        for value in raw[finding.column]:
            assert value not in text
            assert value.replace(" ", "") not in text.replace(" ", "")
    by_column = {f.column: f for f in findings}
    assert by_column["email"].examples[0] == "j***@e***.com"
    assert by_column["card"].examples[0] == "**** **** **** 1111"


def test_mask_example_never_returns_the_value() -> None:
    for value in ["a", "ab", "x@y.z", "4111111111111111", "784-1985-1234567-3", "::1"]:
        for tag in (None, *PII_TAGS):
            assert mask_example(value, tag) != value


def test_min_share_is_the_threshold_for_value_detection() -> None:
    values = ["a@example.com"] * 6 + ["n/a"] * 4
    assert _tags(_one_column(values), min_share=0.5) == {"col": ("email",)}
    assert _tags(_one_column(values), min_share=0.7) == {}
    assert scan(_one_column(values))[0].match_share == pytest.approx(0.6)


def test_nulls_do_not_count_against_the_share() -> None:
    values = ["a@example.com", None, None, None, "b@example.com"]
    finding = scan(_one_column(values))[0]
    assert finding.match_share == 1.0


def test_the_sample_is_deterministic_and_spread_over_the_table() -> None:
    values = ["plain text"] * 50_000 + ["a@example.com"] * 50_000
    table = _one_column(values)
    first = scan(table, sample_rows=100)
    assert first == scan(table, sample_rows=100)
    assert first[0].match_share == pytest.approx(0.5)  # rows from both halves, not just the head


def test_dictionary_and_chunked_columns_are_scanned() -> None:
    emails = pa.array(["a@example.com", "b@example.com", "a@example.com"]).dictionary_encode()
    chunked = pa.chunked_array([["192.168.0.1"], ["10.0.0.2", None]])
    assert _tags(pa.table({"x": emails, "y": chunked})) == {"x": ("email",), "y": ("ip_address",)}


def test_empty_tables_are_flagged_by_name_only() -> None:
    table = pa.table({"email": pa.array([], pa.string()), "v": pa.array([], pa.string())})
    assert scan(table) == [ColumnFinding("email", ("email",), True, 0.0, ())]


def test_findings_round_trip_through_dicts() -> None:
    finding = scan(_one_column(["a@example.com"], name="email"))[0]
    assert ColumnFinding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_findings_from_dict_refuse_unknown_tags() -> None:
    with pytest.raises(InvalidInput, match="religion"):
        ColumnFinding.from_dict(
            {"column": "c", "tags": ["religion"], "by_name": True, "match_share": 0.0, "examples": []}
        )
    with pytest.raises(InvalidInput):
        ColumnFinding.from_dict({"column": "c"})


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"sample_rows": 0}, "sample_rows"), ({"min_share": 0.0}, "min_share")]
)
def test_scan_checks_its_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        scan(_one_column(["x"]), **kwargs)  # type: ignore[arg-type]
    assert info.value.details["field"] == field
    with pytest.raises(InvalidInput):
        scan({"a": [1]})  # type: ignore[arg-type]
