"""Scrubbing secrets in every encoding a reply can carry them (zoom_s2s._redact)."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from zoom_s2s._redact import scrub, scrub_optional, secret_forms

CLIENT_ID = "client-id"
SECRET = "s3cr/et+val=ue x"  # "/", "+", "=" and a space encode differently everywhere
PAIR = f"{CLIENT_ID}:{SECRET}".encode()

ENCODINGS = {
    "raw": SECRET,
    "quote": urllib.parse.quote(SECRET, safe=""),
    "quote-path": urllib.parse.quote(SECRET),
    "quote-plus": urllib.parse.quote_plus(SECRET),
    "quote-lowercase-hex": urllib.parse.quote(SECRET, safe="").lower(),
    "pair": PAIR.decode(),
    "pair-quoted": urllib.parse.quote(PAIR.decode(), safe=""),
    "base64": base64.b64encode(PAIR).decode(),
    "base64-unpadded": base64.b64encode(PAIR).decode().rstrip("="),
    "base64-urlsafe": base64.urlsafe_b64encode(PAIR).decode(),
    "base64-urlsafe-unpadded": base64.urlsafe_b64encode(PAIR).decode().rstrip("="),
    "basic-header": "Basic " + base64.b64encode(PAIR).decode(),
    "basic-quoted": urllib.parse.quote(base64.b64encode(PAIR).decode(), safe=""),
    "secret-base64": base64.b64encode(SECRET.encode()).decode(),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_of_the_secret_is_scrubbed(encoding: str) -> None:
    forms = secret_forms(SECRET, client_id=CLIENT_ID)
    text = f"before <{ENCODINGS[encoding]}> after"
    assert scrub(text, forms) == "before <***> after"


def test_a_whole_header_is_replaced_before_a_part_of_it() -> None:
    forms = secret_forms(SECRET, client_id=CLIENT_ID)
    header = ENCODINGS["basic-header"]
    assert scrub(f"Authorization: {header}", forms) == "Authorization: ***"
    assert list(forms) == sorted(forms, key=len, reverse=True)


def test_without_a_client_id_only_the_secrets_own_forms_are_listed() -> None:
    forms = secret_forms(SECRET)
    assert SECRET in forms
    assert ENCODINGS["quote-plus"] in forms
    assert not [form for form in forms if CLIENT_ID in form or form.startswith("Basic ")]


def test_several_secrets_and_empty_ones() -> None:
    forms = secret_forms("token-one", "", None, "pa55word")
    assert scrub("token-one and pa55word", forms) == "*** and ***"
    assert "" not in forms
    assert secret_forms("", None) == ()
    assert scrub("nothing to hide", ()) == "nothing to hide"


def test_other_text_is_left_alone() -> None:
    forms = secret_forms(SECRET, client_id=CLIENT_ID)
    assert scrub("invalid_client: client-id is wrong", forms) == "invalid_client: client-id is wrong"
    assert scrub_optional(None, forms) is None
    assert scrub_optional(SECRET, forms) == "***"
