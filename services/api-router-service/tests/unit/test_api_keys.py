"""API key format and secret hashing."""

from __future__ import annotations

from api_router.auth import api_keys


def test_a_new_key_parses_back_into_its_id_and_secret() -> None:
    key_id, secret = api_keys.new_key_id(), api_keys.new_secret()
    presented = api_keys.format_key(key_id, secret)
    assert presented.startswith("ark_")
    assert api_keys.parse_key(presented) == (key_id, secret)


def test_keys_are_unique_and_carry_160_secret_bits() -> None:
    secrets = {api_keys.new_secret() for _ in range(1000)}
    assert len(secrets) == 1000
    assert all(len(s) == 32 for s in secrets)  # 32 base32 characters = 160 bits


def test_malformed_keys_do_not_parse() -> None:
    good = api_keys.format_key(api_keys.new_key_id(), api_keys.new_secret())
    for bad in [
        "",
        "ark_",
        good + "x",
        good.upper(),
        good.replace("ark_", "sk_"),
        "ark_k" + "a" * 12 + "_" + "1" * 32,
        "ark_k\u00e9" + "a" * 11 + "_" + "a" * 32,
        "x" * 10_000,
    ]:
        assert api_keys.parse_key(bad) is None, bad


def test_only_the_right_secret_matches_the_stored_hash() -> None:
    pepper = b"p" * 32
    stored = api_keys.hash_secret(pepper, "secret-one")
    assert api_keys.secret_matches(pepper, "secret-one", stored)
    assert not api_keys.secret_matches(pepper, "secret-two", stored)
    assert not api_keys.secret_matches(b"q" * 32, "secret-one", stored)
    assert "secret-one" not in stored
