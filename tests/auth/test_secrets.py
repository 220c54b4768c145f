"""Token and password secrets: shapes, randomness, hashes."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.auth import secrets
from segue.errors import InvalidArgument, Unauthenticated


def test_a_token_carries_its_public_id_and_256_random_bits():
    token, public_id = secrets.new_token()

    assert re.fullmatch(r"[0-9a-f]{8}", public_id)
    prefix, secret = token[:13], token[13:]  # the secret may hold '_' itself
    assert prefix == f"sgt_{public_id}_"
    assert len(secret) == 43  # 32 bytes in unpadded URL-safe base64
    assert secrets.parse_token(token) == public_id
    assert len({secrets.new_token()[0] for _ in range(200)}) == 200


def test_the_stored_hash_is_the_sha256_of_the_whole_token():
    token, _ = secrets.new_token()
    stored = secrets.hash_token(token)

    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored
    assert secrets.token_matches(token, stored)
    other, _ = secrets.new_token()
    assert not secrets.token_matches(other, stored)
    assert not secrets.token_matches(token[:-1] + ("A" if token[-1] != "A" else "B"), stored)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sgt_",
        "sgt_0123abcd",
        "sgt_0123ABCD_" + "a" * 43,  # the id is lowercase hex
        "sgt_0123abcd_" + "a" * 42,
        "sgt_0123abcd_" + "a" * 44,
        "sgt_0123abcd_" + "a" * 42 + "=",
        "xyz_0123abcd_" + "a" * 43,
        "sgt_0123abcd_" + "a" * 43 + "\n",
    ],
)
def test_malformed_tokens_are_refused_without_repeating_them(text):
    with pytest.raises(Unauthenticated) as raised:
        secrets.parse_token(text)
    assert "a" * 40 not in str(raised.value)


@given(st.text(max_size=80))
def test_parse_token_accepts_only_the_token_shape(text):
    try:
        public_id = secrets.parse_token(text)
    except Unauthenticated:
        return
    assert text == f"sgt_{public_id}_{text[13:]}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", text[13:])


def test_passwords_are_hashed_with_argon2id_and_verified():
    stored = secrets.hash_password("correct horse")

    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert secrets.verify_password("correct horse", stored)
    assert not secrets.verify_password("correct horsE", stored)
    assert not secrets.verify_password("correct horse", "not a hash")
    assert not secrets.needs_rehash(stored)
    assert secrets.needs_rehash("not a hash")
    assert secrets.hash_password("correct horse") != stored  # salted
    assert not secrets.verify_password("x", secrets.DUMMY_HASH)


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8"), ("x" * 1025, "at most 1024"), (None, "must be text")],
)
def test_bad_passwords_are_refused(password, message):
    with pytest.raises(InvalidArgument, match=message):
        secrets.hash_password(password)
