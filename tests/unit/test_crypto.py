"""Encryption at rest: key forms, the versioned passphrase stretching, rotation."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken
from hypothesis import given, settings
from hypothesis import strategies as st

from courier.crypto import (
    SCRYPT_N,
    V2_PREFIX,
    SecretBox,
    SecretKeyError,
    generate_key,
    scrypt_passphrase_key,
)

PASSPHRASE = "correct horse battery staple"
OTHER_PASSPHRASE = "a different passphrase entirely"
# Written by courier before passphrases were stretched with scrypt (one SHA-256 of the
# passphrase): stored data of that age must still open.
OLD_FORMAT_TOKEN = (
    "gAAAAABrFe1iWlL5P6G6RgezS0nite67-eUPb46guvtJefEdKdRRNNQ-WNMi1HD0_UkUcGbirDyaZ45R8WCLx"
    "MdPQQMqdrVH537pPk6a0IljHsmtZNbwVHJZfzTsKV8496eaPH5QWWno"
)
OLD_FORMAT_PLAINTEXT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

secrets_text = st.text(max_size=200)


def _sha256_fernet(passphrase: str) -> Fernet:
    """The first format's key, spelled out independently of courier.crypto."""
    digest = hashlib.sha256(b"courier-secret-key:" + passphrase.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def test_a_token_written_the_old_way_still_decrypts() -> None:
    assert SecretBox(PASSPHRASE).decrypt(OLD_FORMAT_TOKEN) == OLD_FORMAT_PLAINTEXT


def test_a_passphrase_is_stretched_with_scrypt_and_tokens_say_so() -> None:
    token = SecretBox(PASSPHRASE).encrypt("whsec_x")
    assert token.startswith(V2_PREFIX)
    body = token[len(V2_PREFIX) :].encode("ascii")
    with pytest.raises(InvalidToken):  # not the old single SHA-256
        _sha256_fernet(PASSPHRASE).decrypt(body)
    expected = hashlib.scrypt(
        PASSPHRASE.encode(), salt=b"courier-secret-key/v2", n=SCRYPT_N, r=8, p=1,
        maxmem=64 * 1024 * 1024, dklen=32,
    )  # fmt: skip
    assert Fernet(base64.urlsafe_b64encode(expected)).decrypt(body) == b"whsec_x"


def test_a_passphrase_is_derived_once_per_process() -> None:
    SecretBox(PASSPHRASE)
    before = scrypt_passphrase_key.cache_info()
    for _ in range(20):
        SecretBox(f"{PASSPHRASE},{generate_key()}")
    after = scrypt_passphrase_key.cache_info()
    assert after.misses == before.misses
    assert after.hits >= before.hits + 20


def test_a_fernet_key_writes_plain_fernet_tokens() -> None:
    key = generate_key()
    token = SecretBox(key).encrypt("whsec_y")
    assert not token.startswith(V2_PREFIX)
    assert Fernet(key.encode()).decrypt(token.encode()) == b"whsec_y"


def test_rekey_moves_old_format_tokens_to_the_new_one() -> None:
    box = SecretBox(PASSPHRASE)
    assert not box.is_current(OLD_FORMAT_TOKEN)
    moved = box.rotate(OLD_FORMAT_TOKEN)
    assert moved.startswith(V2_PREFIX) and box.is_current(moved)
    assert box.decrypt(moved) == OLD_FORMAT_PLAINTEXT


def test_rotating_from_a_passphrase_to_a_fernet_key() -> None:
    new = generate_key()
    both = SecretBox(f"{new},{PASSPHRASE}")
    old_v2 = SecretBox(PASSPHRASE).encrypt("whsec_z")
    for token in (OLD_FORMAT_TOKEN, old_v2):
        assert both.decrypt(token) in (OLD_FORMAT_PLAINTEXT, "whsec_z")
        assert not both.is_current(token)
        moved = both.rotate(token)
        assert not moved.startswith(V2_PREFIX) and both.is_current(moved)
        assert SecretBox(new).decrypt(moved) == both.decrypt(token)


def test_a_wrong_key_is_a_clear_error_for_both_formats() -> None:
    wrong = SecretBox(OTHER_PASSPHRASE)
    for token in (OLD_FORMAT_TOKEN, SecretBox(PASSPHRASE).encrypt("s"), "v2:not-a-token", "é"):
        with pytest.raises(SecretKeyError, match="COURIER_SECRET_KEY"):
            wrong.decrypt(token)


@pytest.mark.parametrize("key", ["", " , ", "short"])
def test_unusable_keys_are_refused(key: str) -> None:
    with pytest.raises(SecretKeyError, match="COURIER_SECRET_KEY"):
        SecretBox(key)


@given(plaintext=secrets_text, passphrase_first=st.booleans())
def test_round_trip_under_either_key_form(plaintext: str, passphrase_first: bool) -> None:
    fernet_key = generate_key()
    keys = [PASSPHRASE, fernet_key] if passphrase_first else [fernet_key, PASSPHRASE]
    box = SecretBox(",".join(keys))
    token = box.encrypt(plaintext)
    assert box.decrypt(token) == plaintext
    assert box.is_current(token)
    assert box.rotate(token) != token  # a fresh token each time, same plaintext
    # the key that wrote it alone opens it; the other one alone does not
    assert SecretBox(keys[0]).decrypt(token) == plaintext
    with pytest.raises(SecretKeyError):
        SecretBox(keys[1]).decrypt(token)


@settings(max_examples=10)
@given(
    plaintext=secrets_text,
    passphrase=st.text(min_size=16, max_size=40).filter(lambda p: "," not in p and p.strip()),
)
def test_old_tokens_of_any_passphrase_open_and_rekey(plaintext: str, passphrase: str) -> None:
    passphrase = passphrase.strip()
    if len(passphrase) < 16:
        passphrase = passphrase.ljust(16, "x")
    old = _sha256_fernet(passphrase).encrypt(plaintext.encode("utf-8")).decode("ascii")
    box = SecretBox(passphrase)
    assert box.decrypt(old) == plaintext
    moved = box.rotate(old)
    assert moved.startswith(V2_PREFIX) and box.decrypt(moved) == plaintext
