"""Finding personal data in Arrow tables, by column name and by value patterns.

``scan`` looks at every column twice: its *name* (``e_mail``, ``DOB``, ``passportNo`` …) and a
deterministic *sample* of its values (the first row and evenly spaced rows after it, never random, so
two scans of the same table agree). A finding carries masked examples only: raw personal data never
leaves this module inside a :class:`ColumnFinding`.

Detection rules (value patterns run over the sample, with ``pyarrow.compute`` regexes first and the
Python checksums only over the values a regex let through):

- ``email``: ``local@domain.tld``.
- ``phone``: ``+`` or ``00`` followed by 8-15 digits (spaces, dashes, dots, brackets allowed); UAE local
  forms (``05x xxx xxxx`` mobiles, ``0[234679] xxx xxxx`` landlines, and ``9715…`` stored as a number);
  North-American ``(555) 123-4567`` only *with* separators, so bare integer ids never look like phones.
- ``credit_card``: 13-19 digits, spaces/dashes allowed, first digit 1-9, passing the Luhn check and not
  all zeros. A column of random digit strings passes Luhn for ~10% of its values, below ``min_share``.
  Values that are valid Emirates IDs (whose check digit is also Luhn) count as Emirates IDs instead.
- ``iban``: country code, two check digits, 11-30 alphanumerics; the ISO 13616 mod-97 check must give 1
  and, for the countries in ``_IBAN_LENGTHS``, the length must be right (AE: 23).
- ``ip_address``: IPv4/IPv6 shapes confirmed by :mod:`ipaddress`.
- ``emirates_id``: ``784-YYYY-NNNNNNN-C`` with or without dashes/spaces, YYYY from 1900 to this year,
  C the Luhn check digit over all 15 digits.
- ``national_id``: by name; by value only the US SSN shape ``AAA-GG-SSSS`` with its invalid ranges
  (000, 666, 9xx, 00, 0000) excluded.
- ``passport``: 1-2 letters and 6-9 digits. So many internal codes share that shape that the values
  alone flag a column only when at least 95% of sampled values match (and at least ``min_share``)
  *and* at least 90% of the matching values are distinct; a passport-like column name flags it anyway.
- ``date_of_birth``: never from values alone, since most date columns are not birth dates. A strong
  name (``dob``, ``date_of_birth``, ``birth_date``, ``birthday``) flags the column by name. A weak name
  (a ``birth`` or ``born`` word, e.g. ``born_on``, ``birth_ts``) flags it only when the column holds dates
  (date/timestamp type, or ISO ``YYYY-MM-DD`` / ``DD/MM/YYYY`` strings), at least ``min_share`` of the
  sampled values are dates, and every date lies between 1900-01-01 and ten years before today.
- ``name`` and ``address``: by column name only (no pattern tells a name from a word). A bare ``name``
  column is not flagged (it is as often a product's name); ``first_name``, ``customer_name`` … are.

Name hints ignore case, underscores, dashes and camelCase (``eMail``, ``E-Mail`` and ``e_mail`` are all
``email``); the longest known phrase wins, so ``email_address`` is an e-mail, not an address. Boolean
columns are never flagged (``is_mobile`` is not a phone number).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.errors import InvalidInput

PII_TAGS = (
    "email", "phone", "credit_card", "iban", "ip_address", "emirates_id", "passport", "date_of_birth", "name",
    "address", "national_id",
)  # fmt: skip

_HINT_WORDS: dict[str | None, str] = {
    "email": "email emailaddress emailaddr emailid",
    "phone": "phone phoneno phonenumber telephone mobile mobileno mobilenumber msisdn cellphone tel cell "
    "landline",
    "credit_card": "cardnumber cardno cardnum creditcard debitcard cc ccnumber ccnum ccno",
    "iban": "iban",
    "ip_address": "ip ipaddress ipaddr ipv4 ipv6",
    "emirates_id": "emiratesid eid emirateid uaeid",
    "passport": "passport passportno passportnumber passportnum",
    "date_of_birth": "dob dateofbirth birthdate birthday birthdt",
    "name": "firstname lastname fullname surname givenname familyname middlename forename maidenname "
    "customername contactname personname patientname cardholder cardholdername holdername accountholder",
    "address": "address street streetaddress addressline addr postcode postalcode zipcode zip",
    "national_id": "nationalid nationalidnumber nationalnumber ssn nin nid socialsecuritynumber taxid "
    "personalid",
    None: "macaddress webaddress urladdress walletaddress",  # contain a hint word, but are not that data
}
_HINTS = {word: tag for tag, words in _HINT_WORDS.items() for word in words.split()}
# Short words that mean PII only when they are the whole column name ("cc" vs "cc_recipients").
_WHOLE_NAME_ONLY = frozenset({"cc", "tel", "cell", "zip", "nin", "nid", "addr"})
_WEAK_BIRTH_WORDS = frozenset({"birth", "born"})

_IBAN_LENGTHS = {
    "AE": 23, "SA": 24, "QA": 29, "BH": 22, "KW": 30, "OM": 23, "JO": 30, "EG": 29, "GB": 22, "DE": 22,
    "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21, "AT": 20, "IE": 22, "PT": 25, "LU": 20,
    "PL": 28, "SE": 24, "DK": 18, "NO": 15, "FI": 18, "TR": 26, "PK": 24,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """Tell whether a digit string passes the Luhn (mod 10) check, its last digit being the check digit.

    Args:
        digits: Digits only.

    Returns:
        ``True`` when the weighted digit sum is a multiple of ten.
    """
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_valid(value: str) -> bool:
    """Tell whether a string is an IBAN with a correct ISO 13616 mod-97 check (spaces allowed).

    Args:
        value: The candidate, e.g. ``"AE07 0331 2345 6789 0123 456"``.

    Returns:
        ``True`` for a well-formed IBAN of a plausible length whose check digits are right.
    """
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
        return False
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def emirates_id_valid(value: str) -> bool:
    """Tell whether a string is a UAE Emirates ID: ``784-YYYY-NNNNNNN-C`` with a Luhn check digit ``C``.

    Args:
        value: The candidate, with or without dashes or spaces.

    Returns:
        ``True`` when the year is between 1900 and this year and the 15 digits pass the Luhn check.
    """
    digits = re.sub(r"[\s-]", "", value)
    if len(digits) != 15 or not digits.startswith("784"):
        return False
    return 1900 <= int(digits[3:7]) <= date.today().year and luhn_valid(digits)


def _card_valid(value: str) -> bool:
    digits = re.sub(r"[\s-]", "", value)
    return digits.strip("0") != "" and luhn_valid(digits) and not emirates_id_valid(digits)


def _phone_valid(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if value.startswith("00"):
        digits = digits[2:]
    return 8 <= len(digits) <= 15


def _ip_valid(value: str) -> bool:
    try:
        return bool(ipaddress.ip_address(value))
    except ValueError:
        return False


def _ssn_valid(value: str) -> bool:
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_Check = Callable[[str], bool] | None
_EMAIL = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}$"
_PHONE = "|".join(
    (
        r"^(?:\+|00)[1-9][0-9 ().-]{6,22}$",  # international, E.164 with or without separators
        r"^05[024568][ -]?[0-9]{3}[ -]?[0-9]{4}$",  # UAE mobile, local form
        r"^0[234679][ -]?[0-9]{3}[ -]?[0-9]{4}$",  # UAE landline, local form
        r"^9715[024568][0-9]{7}$",  # UAE mobile stored as a number
        r"^\(?[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4}$",  # North American, separators required
    )
)
_IP = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$"
_DETECTORS: tuple[tuple[str, str, _Check], ...] = (
    ("email", _EMAIL, None),
    ("phone", _PHONE, _phone_valid),
    ("credit_card", r"^[1-9](?:[ -]?[0-9]){12,18}$", _card_valid),
    ("iban", r"^[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}$", iban_valid),
    ("ip_address", _IP, _ip_valid),
    ("emirates_id", r"^784[ -]?(?:19|20)[0-9]{2}[ -]?[0-9]{7}[ -]?[0-9]$", emirates_id_valid),
    ("passport", r"^[A-Za-z]{1,2}[0-9]{6,9}$", None),
    ("national_id", r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$", _ssn_valid),
)
_PASSPORT_SHARE, _PASSPORT_DISTINCT = 0.95, 0.9
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9:.]+(?:Z|[+-][0-9:]+)?)?$"
_DATE_REGEX = _ISO_DATE + r"|^[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{4}$"


def _mask_generic(value: str) -> str:
    return "*" * len(value) if len(value) <= 2 else value[0] + "*" * min(len(value) - 1, 7)


def _mask_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    labels = domain.split(".")
    tld = f".{labels[-1]}" if len(labels) > 1 else ""
    return f"{local[:1]}***@{labels[0][:1]}***{tld}"


def _mask_ip(value: str) -> str:
    if ":" in value:
        return value.split(":", 1)[0] + ":*:*:*"
    return value.split(".", 1)[0] + ".*.*.*"


def _mask_iban(value: str) -> str:
    compact = value.replace(" ", "").upper()
    return compact[:2] + "*" * max(len(compact) - 6, 1) + compact[-4:]


_MASKERS: dict[str, Callable[[str], str]] = {
    "email": _mask_email,
    "phone": lambda v: (
        ("+" if v.startswith("+") else "") + "*" * max(len(re.sub(r"\D", "", v)) - 2, 1) + v[-2:]
    ),
    "credit_card": lambda v: "**** **** **** " + re.sub(r"\D", "", v)[-4:],
    "iban": _mask_iban,
    "ip_address": _mask_ip,
    "emirates_id": lambda v: "784-****-*******-*",
    "passport": lambda v: v[:1] + "*" * (len(v) - 1),
    "date_of_birth": lambda v: v[:3] + "*-**-**" if re.match(r"[0-9]{4}-", v) else "****-**-**",
    "national_id": lambda v: "***-**-****" if re.fullmatch(r"[0-9-]+", v) else _mask_generic(v),
}


def mask_example(value: str, tag: str | None = None) -> str:
    """Hide a value for display: enough shape to recognise the kind of data, never the value itself.

    Args:
        value: The raw value.
        tag: The PII tag whose masking style to use (``None``: keep the first character only).

    Returns:
        The masked text, e.g. ``"j***@e***.com"`` or ``"**** **** **** 1111"``.
    """
    masker = _MASKERS.get(tag or "", _mask_generic)
    try:
        masked = masker(value)
    except (ValueError, IndexError):
        masked = _mask_generic(value)
    return masked if masked != value else "*" * len(value)


@dataclass(frozen=True)
class ColumnFinding:
    """Personal data found in one column.

    Args:
        column: The column's name.
        tags: The PII tags found, in the order of ``PII_TAGS``.
        by_name: Whether the column name alone was enough to flag at least one tag.
        match_share: The share of sampled non-null values matching the value pattern of the finding's
            tags (the best of them); 0.0 when no tag has a matching value pattern.
        examples: Up to three *masked* examples from the sample.
    """

    column: str
    tags: tuple[str, ...]
    by_name: bool
    match_share: float
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this finding."""
        return {**asdict(self), "tags": list(self.tags), "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnFinding:
        """Build a finding from :meth:`to_dict` output.

        Raises:
            InvalidInput: A field is missing or a tag is not one of ``PII_TAGS``.
        """
        try:
            tags = tuple(str(t) for t in data["tags"])
            finding = cls(
                column=str(data["column"]),
                tags=tags,
                by_name=bool(data["by_name"]),
                match_share=float(data["match_share"]),
                examples=tuple(str(e) for e in data.get("examples", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"Malformed PII finding: {exc}", {"field": "finding"}) from exc
        check_tags(tags)
        return finding


def check_tags(tags: Iterable[str]) -> None:
    """Refuse tags that are not in ``PII_TAGS``.

    Raises:
        InvalidInput: Naming the first unknown tag.
    """
    for tag in tags:
        if tag not in PII_TAGS:
            raise InvalidInput(f"Unknown PII tag {tag!r}", {"field": "tags", "allowed": list(PII_TAGS)})


def name_hints(column: str) -> tuple[set[str], bool]:
    """Return the PII tags a column name suggests, and whether it holds a weak birth word.

    Args:
        column: The column's name, in any case or naming style.

    Returns:
        The tags (possibly empty) and ``True`` when the name contains ``birth``/``born`` without being a
        strong date-of-birth name.
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3 \2\4", column)
    tokens = re.findall(r"[a-z]+|[0-9]+", spaced.lower())
    whole = "".join(tokens)
    if whole in _WHOLE_NAME_ONLY:
        return {str(_HINTS[whole])}, False
    tags: set[str] = set()
    i = 0
    while i < len(tokens):
        for width in (4, 3, 2, 1):
            phrase = "".join(tokens[i : i + width])
            if width <= len(tokens) - i and phrase in _HINTS and phrase not in _WHOLE_NAME_ONLY:
                if (tag := _HINTS[phrase]) is not None:
                    tags.add(tag)
                i += width
                break
        else:
            i += 1
    weak = "date_of_birth" not in tags and any(t in _WEAK_BIRTH_WORDS for t in tokens)
    return tags, weak


def _sample_indices(num_rows: int, sample_rows: int) -> pa.Array:
    if num_rows <= sample_rows:
        return pa.array(np.arange(num_rows, dtype=np.int64))
    return pa.array((np.arange(sample_rows, dtype=np.int64) * num_rows) // sample_rows)


def _as_strings(values: pa.Array) -> pa.Array | None:
    """Return the values as trimmed strings, or ``None`` for types no value pattern applies to."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_integer(values.type):
        values = pc.cast(values, pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    return pc.utf8_trim_whitespace(values)


def _parse_date(text: str) -> date | None:
    try:
        if text[4:5] == "-":
            return date.fromisoformat(text[:10])
        day, month, year = (int(p) for p in re.split(r"[/.-]", text))
        return date(year, month, day) if month <= 12 else date(year, day, month)
    except ValueError:
        return None


def _birth_date_share(values: pa.Array) -> tuple[float, bool, list[str]]:
    """Share of plausible birth dates among non-null values, whether all dates are plausible, examples."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    total = len(values)
    if total == 0:
        return 0.0, False, []
    low, high = date(1900, 1, 1), date.today() - timedelta(days=3653)
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        days = values if pa.types.is_date32(values.type) else pc.cast(values, pa.date32())
        parsed: list[date | None] = days.to_pylist()
        texts = [d.isoformat() for d in parsed if d is not None]
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        trimmed = pc.utf8_trim_whitespace(values)
        texts = [
            str(t) for t in pc.filter(trimmed, pc.match_substring_regex(trimmed, _DATE_REGEX)).to_pylist()
        ]
        parsed = [_parse_date(t) for t in texts]
    else:
        return 0.0, False, []
    plausible = [d for d in parsed if d is not None and low <= d <= high]
    all_plausible = len(plausible) == sum(d is not None for d in parsed)
    return len(plausible) / total, all_plausible and bool(plausible), texts


def _scan_column(name: str, values: pa.Array, min_share: float) -> ColumnFinding | None:
    if pa.types.is_boolean(values.type):
        return None
    named, weak_birth = name_hints(name)
    values = values.drop_null()
    total = len(values)
    shares: dict[str, float] = {}
    hits: dict[str, list[str]] = {}
    strings = _as_strings(values)
    if strings is not None and total:
        for tag, regex, check in _DETECTORS:
            found = [str(v) for v in pc.filter(strings, pc.match_substring_regex(strings, regex)).to_pylist()]
            hits[tag] = [v for v in found if check(v)] if check is not None else found
            shares[tag] = len(hits[tag]) / total
    value_tags = {t for t, s in shares.items() if s >= min_share and t != "passport"}
    passports = hits.get("passport", [])
    if shares.get("passport", 0.0) >= max(min_share, _PASSPORT_SHARE) and (
        len(set(passports)) >= _PASSPORT_DISTINCT * len(passports)
    ):
        value_tags.add("passport")
    if "date_of_birth" in named or weak_birth:
        share, all_plausible, texts = _birth_date_share(values)
        shares["date_of_birth"], hits["date_of_birth"] = share, texts
        if weak_birth and all_plausible and share >= min_share:
            value_tags.add("date_of_birth")
    tags = tuple(t for t in PII_TAGS if t in named or t in value_tags)
    if not tags:
        return None
    primary = next((t for t in tags if hits.get(t)), tags[0])
    pool = hits.get(primary) or [
        str(v) for v in (strings if strings is not None else values)[:50].to_pylist()
    ]
    examples: list[str] = []
    for raw in pool:
        masked = mask_example(raw.strip(), primary)
        if masked not in examples:
            examples.append(masked)
        if len(examples) == 3:
            break
    share = max((shares.get(t, 0.0) for t in tags), default=0.0)
    return ColumnFinding(name, tags, bool(named), round(share, 6), tuple(examples))


def scan(table: pa.Table, *, sample_rows: int = 10_000, min_share: float = 0.5) -> list[ColumnFinding]:
    """Find the columns of a table that hold personal data.

    The same table always gives the same findings: the sample is the first row and evenly spaced rows
    after it. See the module docstring for the rules of each tag.

    Args:
        table: The data to scan.
        sample_rows: How many rows to test value patterns on (all rows when the table is smaller).
        min_share: The share of sampled non-null values that must match a pattern to flag a column by its
            values (a column name hint flags it regardless).

    Returns:
        One finding per flagged column, in column order.

    Raises:
        InvalidInput: ``table`` is not an Arrow table, ``sample_rows`` < 1 or ``min_share`` not in (0, 1].
    """
    if not isinstance(table, pa.Table):
        raise InvalidInput("scan() needs a pyarrow.Table", {"field": "table"})
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise InvalidInput("sample_rows must be a positive integer", {"field": "sample_rows"})
    if not 0.0 < min_share <= 1.0:
        raise InvalidInput("min_share must be in (0, 1]", {"field": "min_share"})
    sample = table.take(_sample_indices(table.num_rows, sample_rows))
    findings = []
    for name, column in zip(table.column_names, sample.columns, strict=True):
        values = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        finding = _scan_column(name, values, min_share)
        if finding is not None:
            findings.append(finding)
    return findings
