"""The console's option form as pure rules: reading the posted rows and fields into the
API's body, blank secrets keeping the stored ones, remove controls, what the form shows
(never a secret), and which catalog types a destination's event types take."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier import destination_options as opts
from courier.console.inputs import BadField
from courier.console.option_form import posted_values, read_options, shown_values
from courier.web.catalog_examples import examples_of, subscribed

TOKEN_CHARS = "!#$%&'*+.^_`|~-" + "abcXYZ019"
names = st.text(TOKEN_CHARS, min_size=1, max_size=12)
# A marker no repr of the form's values contains, so a secret can never be found in one by
# chance ("password", "token_ur", "00000000" are field names and ids, not leaks).
secrets = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8, max_size=24).map(
    lambda text: f"~s~{text}"
)


def _form(**fields: Any) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {"options_form": ["1"]}
    for name, value in fields.items():
        form[name] = value if isinstance(value, list) else [value]
    return form


def _row(options: dict[str, Any], secret_paths: list[str]) -> dict[str, Any]:
    return {
        "options": options,
        "option_secrets": {p: "token" for p in secret_paths},
        "filter": None,
        "payload_format": "raw",
        "capture_response_body": False,
    }


def test_a_form_without_the_option_fields_changes_none() -> None:
    assert read_options({"name": ["x"]}, {"headers": {"A": "b"}}, webhook=True) == {}


def test_blank_fields_are_no_options() -> None:
    body = read_options(
        _form(header_name=["", ""], header_value=["", ""], auth_type="none"), {}, webhook=True
    )
    assert body == {
        "filter": None,
        "payload_format": "raw",
        "capture_response_body": False,
        "headers": None,
        "auth": None,
        "tls_client_certificate": None,
        "tls_ca_certificate": None,
    }


@given(stored=st.dictionaries(names, secrets, min_size=1, max_size=5), new=secrets)
def test_a_blank_header_value_keeps_the_stored_one_and_remove_drops_it(
    stored: dict[str, str], new: str
) -> None:
    rows = list(stored)
    kept = read_options(
        _form(header_name=rows, header_value=[""] * len(rows)), {"headers": stored}, webhook=True
    )
    assert kept["headers"] == stored
    first = rows[0]
    changed = read_options(
        _form(
            header_name=rows,
            header_value=[new] + [""] * (len(rows) - 1),
            header_remove=rows[1:],
        ),
        {"headers": stored},
        webhook=True,
    )
    assert changed["headers"] == {first: new}
    removed = read_options(
        _form(header_name=rows, header_value=[""] * len(rows), header_remove=rows),
        {"headers": stored},
        webhook=True,
    )
    assert removed["headers"] is None


@pytest.mark.parametrize(
    ("names", "values", "field"),
    [
        (["", ""], ["orphan", ""], "headers"),
        (["X-A", "X-A"], ["1", "2"], "headers.X-A"),
        (["X-A"], ["1", "2"], "headers"),
    ],
)
def test_bad_header_rows_name_the_field(names: list[str], values: list[str], field: str) -> None:
    with pytest.raises(BadField) as raised:
        read_options(_form(header_name=names, header_value=values), {}, webhook=True)
    assert raised.value.field == field


@given(password=secrets, token=secrets)
def test_a_blank_auth_secret_is_kept_only_for_the_same_type(password: str, token: str) -> None:
    stored = {"auth": {"type": "basic", "username": "u", "password": password}}
    kept = read_options(
        _form(auth_type="basic", auth_username="u", auth_password=""), stored, webhook=True
    )
    assert kept["auth"] == {"type": "basic", "username": "u", "password": password}
    switched = read_options(_form(auth_type="bearer", auth_token=""), stored, webhook=True)
    assert switched["auth"] == {"type": "bearer", "token": ""}  # the API refuses it
    typed = read_options(_form(auth_type="bearer", auth_token=token), stored, webhook=True)
    assert typed["auth"] == {"type": "bearer", "token": token}
    assert read_options(_form(auth_type="none"), stored, webhook=True)["auth"] is None


def test_oauth2_optional_fields_left_blank_are_left_out() -> None:
    body = read_options(
        _form(
            auth_type="oauth2_client_credentials",
            auth_token_url=" https://auth.example.com/token ",
            auth_client_id="cid",
            auth_client_secret="cs",
            auth_scope="",
            auth_audience="",
        ),
        {},
        webhook=True,
    )
    assert body["auth"] == {
        "type": "oauth2_client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "cid",
        "client_secret": "cs",
    }


def test_an_unknown_auth_type_or_payload_format_is_refused() -> None:
    for fields, field in (
        (_form(auth_type="digest"), "auth.type"),
        (_form(payload_format="xml"), "payload_format"),
    ):
        with pytest.raises(BadField) as raised:
            read_options(fields, {}, webhook=True)
        assert raised.value.field == field


def test_a_client_key_left_blank_stays_and_an_unchanged_pem_is_the_stored_one() -> None:
    stored = {"tls_client_certificate": {"certificate": "CERT\n", "private_key": "KEY"}}
    body = read_options(
        _form(tls_certificate="CERT\r\n", tls_private_key="", tls_ca_certificate=""),
        stored,
        webhook=True,
    )
    assert body["tls_client_certificate"] == {"certificate": "CERT\n", "private_key": "KEY"}
    removed = read_options(
        _form(tls_certificate="CERT", tls_client_certificate_remove="1"), stored, webhook=True
    )
    assert removed["tls_client_certificate"] is None


def test_a_brokers_form_leaves_auth_and_tls_alone() -> None:
    body = read_options(_form(auth_type="basic"), {}, webhook=False)
    assert "auth" not in body and "tls_client_certificate" not in body


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "is not JSON"), ("[1]", "must be a JSON object"), ('"x"', "must be a JSON object")],
)
def test_a_filter_must_be_a_json_object(text: str, problem: str) -> None:
    with pytest.raises(BadField) as raised:
        read_options(_form(filter=text), {}, webhook=True)
    assert raised.value.field == "filter" and problem in raised.value.problem


@given(header=secrets, password=secrets)
def test_what_the_form_shows_holds_no_secret(header: str, password: str) -> None:
    row = _row(
        {"headers": ["X-Api-Key"], "auth": {"type": "basic", "username": "u"}},
        ["headers.X-Api-Key", "auth.password"],
    )
    shown = shown_values(row)
    first = shown.header_rows[0]
    assert (first.name, first.stored) == ("X-Api-Key", True)
    assert shown.auth == {"username": "u"} and shown.auth_set == {"password"}
    posted = posted_values(
        _form(
            header_name=["X-Api-Key", "X-New"],
            header_value=[header, header],
            auth_type="basic",
            auth_username="u",
            auth_password=password,
            auth_token=password,
            auth_client_secret=password,
            tls_private_key=password,
        ),
        row,
    )
    assert header not in repr(posted) and password not in repr(posted)
    assert [r.name for r in posted.header_rows][:2] == ["X-Api-Key", "X-New"]


def test_a_new_destination_offers_blank_header_rows_up_to_the_limit() -> None:
    rows = shown_values(None).header_rows
    assert rows and all(not r.stored and r.name == "" for r in rows)
    many = _row({"headers": [f"X-{n}" for n in range(opts.MAX_HEADERS)]}, [])
    assert len(shown_values(many).header_rows) == opts.MAX_HEADERS


event_types = st.from_regex(r"[a-z]{1,6}(\.[a-z]{1,6}){0,2}", fullmatch=True)


@given(name=event_types, others=st.lists(event_types, max_size=3))
def test_subscribed_matches_names_families_and_everything(name: str, others: list[str]) -> None:
    assert subscribed([], name) and subscribed(["*"], name) and subscribed([*others, name], name)
    family = name.rsplit(".", 1)[0] + ".*" if "." in name else None
    if family is not None:
        assert subscribed([family], name)
    assert subscribed(others, name) == (
        not others
        or any(o == name or (o.endswith(".*") and name.startswith(o[:-1])) for o in others)
    )


def test_a_family_does_not_match_a_longer_word() -> None:
    assert not subscribed(["order.*"], "orders.created")
    assert not subscribed(["order.*"], "order")


def test_examples_are_the_example_then_the_schemas_each_once() -> None:
    row = {"example": {"a": 1}, "schema": {"examples": [{"a": 1}, {"a": 2}]}}
    assert examples_of(row) == [{"a": 1}, {"a": 2}]
    assert examples_of({"example": None, "schema": True}) == []
    assert examples_of({"example": 0, "schema": {"examples": "not a list"}}) == [0]
