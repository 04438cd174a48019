"""Token secrets: format, entropy, hashing and the fast rejection of malformed ones."""

from __future__ import annotations

import base64
import hashlib

import pytest

from steward.errors import Unauthenticated
from steward.governance import tokens


def test_a_secret_is_the_prefix_and_32_random_bytes_in_base64url() -> None:
    secret = tokens.generate()
    assert secret.startswith("stw_")
    assert len(secret) == tokens.TOKEN_LENGTH == 47
    body = secret[len("stw_") :]
    assert "=" not in body
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert tokens.looks_like_token(secret)
    assert tokens.parse(secret) == secret


def test_secrets_do_not_repeat_and_use_the_whole_alphabet() -> None:
    made = [tokens.generate() for _ in range(2000)]
    assert len(set(made)) == len(made)
    # 2,000 secrets x 42 free characters: every one of the 64 base64url characters shows up.
    seen = {ch for secret in made for ch in secret[4:-1]}
    assert len(seen) == 64
    # Each byte value shows up in the decoded bytes too (64,000 bytes: a missing one means no randomness).
    raw = b"".join(base64.urlsafe_b64decode(s[4:] + "=") for s in made)
    assert len(set(raw)) == 256


def test_only_the_sha256_of_the_whole_secret_is_stored() -> None:
    secret = tokens.generate()
    assert tokens.hash_token(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in tokens.hash_token(secret)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "stw_",
        "abc",
        "xyz_" + "A" * 43,  # wrong prefix
        "STW_" + "A" * 43,
        "stw_" + "A" * 42,  # too short
        "stw_" + "A" * 44,  # too long
        "stw_" + "A" * 41 + "+A",  # standard, not url-safe, base64
        "stw_" + "A" * 41 + "/A",
        "stw_" + "A" * 42 + "=",  # padding
        "stw_" + "A" * 42 + "B",  # a last character that 32 bytes can never end in
        "stw_" + "A" * 41 + " A",
        "stw_" + "é" * 43,
        None,
        12345,
    ],
)
def test_malformed_secrets_are_refused_without_echoing_them(value: object) -> None:
    assert not tokens.looks_like_token(value)
    with pytest.raises(Unauthenticated) as caught:
        tokens.parse(value)
    assert caught.value.message.startswith("malformed token")
    if isinstance(value, str) and len(value) > 8:
        assert value not in caught.value.message
