from __future__ import annotations

import json
import string
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from courier.redact import MAX_SUMMARY_CHARS, REDACTED, redact, summarize
from courier.signing import generate_secret, sign

R = REDACTED

URLSAFE = string.ascii_letters + string.digits + "-_"
BASE64 = string.ascii_letters + string.digits + "+/="

# Random secrets as the brief describes them, plus real generated `whsec_` secrets.
plain_secrets = st.one_of(
    st.text(alphabet=URLSAFE, min_size=8, max_size=64),
    st.text(alphabet=BASE64, min_size=8, max_size=64),
)
any_secrets = st.one_of(plain_secrets, st.builds(generate_secret))
filler = st.text(max_size=300)


def plant(template: str, secret: str) -> str:
    return template.replace("{s}", secret)


def survives(secret: str, output: str | None) -> bool:
    assert output is not None
    assert len(output) <= MAX_SUMMARY_CHARS
    return secret in output


# --- explicit secrets ---------------------------------------------------------------


def test_explicit_secret_is_replaced() -> None:
    assert redact("connect failed: s3cr3t-value!", ["s3cr3t-value"]) == f"connect failed: {R}!"


def test_every_occurrence_is_replaced() -> None:
    assert redact("abcdXabcd", ["abcd"]) == f"{R}X{R}"


def test_overlapping_occurrences_are_covered() -> None:
    assert redact("aaaaa", ["aaaa"]) == R
    assert redact("xxABCDEFyy", ["ABCDE", "DEFyy"]) == f"xx{R}"


def test_whsec_secret_also_matches_its_base64_part() -> None:
    secret = generate_secret()
    bare = secret.removeprefix("whsec_")
    assert redact(f"key={bare!r}", [secret]) == f"key='{R}'"
    assert redact(f"bad {bare} here", [secret]) == f"bad {R} here"
    assert redact(f"bad {bare.rstrip('=')} here", [secret]) == f"bad {R} here"


def test_percent_encoded_secret_is_replaced() -> None:
    secret = "ab+cd/ef=="
    text = f"GET /hook?x={quote(secret, safe='')}"
    assert redact(text, [secret]) == f"GET /hook?x={R}"


def test_json_escaped_slash_is_replaced() -> None:
    assert redact('{"x": "ab\\/cdef"}', ["ab/cdef"]) == f'{{"x": "{R}"}}'


@pytest.mark.parametrize("short", ["", "a", "ab", "abc"])
def test_short_secrets_are_ignored(short: str) -> None:
    assert redact("abc abc", [short]) == "abc abc"


def test_secrets_may_be_any_iterable() -> None:
    assert redact("one two", iter(["one2", "two2", "two"])) == "one two"
    assert redact("alpha beta", (s for s in ["alpha"])) == f"{R} beta"


# --- patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # whsec_ secrets of any length, anywhere
        ("found whsec_abcDEF123+/== in body", f"found {R} in body"),
        ("xwhsec_abc", f"x{R}"),
        # Standard Webhooks signatures
        (
            "sig v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,short",
            f"sig {R} v1,short",
        ),
        # Authorization values, to the end of line or a quote or comma
        ("Authorization: Bearer abc.def\nHost: x", f"Authorization: {R}\nHost: x"),
        ("proxy-authorization: Digest u=1, n=2", f"proxy-authorization: {R}"),
        ("got authorization: Digest u=1, n=2", f"got authorization: {R}, n=2"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', f'{{"Authorization": "{R}"}}'),
        ("{'authorization': 'Token abc'}", f"{{'authorization': '{R}'}}"),
        # Bearer and Basic credentials
        ("sent Bearer eyJhbGciOi.eyJzdWIi.sig_x, got 401", f"sent Bearer {R}, got 401"),
        ("BASIC dXNlcjpwYXNz==", f"BASIC {R}"),
        # URL user-info
        ("GET https://user:pass@example.com/x", f"GET https://{R}@example.com/x"),
        ("postgres://u:p@ss@db:5432/app", f"postgres://{R}@db:5432/app"),
        ("https://tok123@example.com", f"https://{R}@example.com"),
        ("https://example.com/users/a@b.com", "https://example.com/users/a@b.com"),
        ("https://example.com/?email=a@b.com", "https://example.com/?email=a@b.com"),
        # token-like query and form parameters
        ("?api_key=abc&x=1", f"?api_key={R}&x=1"),
        ("https://h/in?token=abc#frag", f"https://h/in?token={R}#frag"),
        ("password=hunter2&user=bob", f"password={R}&user=bob"),
        ("a=1&client_secret=xyz&b=2", f"a=1&client_secret={R}&b=2"),
        ("sig=abc==&x=1", f"sig={R}&x=1"),
        ("Set-Cookie: session=abc; Path=/", f"Set-Cookie: {R}"),
        ("cookie jar: session_id=abc; theme=dark", f"cookie jar: session_id={R}; theme=dark"),
        ("callback?code=4/0AX4Xf&state=s", f"callback?code={R}&state=s"),
        ("PWD=x1 passwd=x2 AUTH=x3 credentials=x4", f"PWD={R} passwd={R} AUTH={R} credentials={R}"),
        ("Request(api_key='abc', timeout=3)", f"Request(api_key='{R}', timeout=3)"),
        ('token = "abc def"', f'token = "{R}"'),
        ("token=&x=1", "token=&x=1"),
        # values that are not secrets stay
        ("status_code=503 error_code=E42", "status_code=503 error_code=E42"),
        ("user=bob&page=2", "user=bob&page=2"),
        # JSON-ish values
        ('{"password": "hunter2", "user": "bob"}', f'{{"password": "{R}", "user": "bob"}}'),
        ('{"apiKey":"k1","n":1}', f'{{"apiKey":"{R}","n":1}}'),
        ('{"token": 12345, "refresh_token": null}', f'{{"token": {R}, "refresh_token": {R}}}'),
        ("{'client_secret': 'abc'}", f"{{'client_secret': '{R}'}}"),
        ('{"password": "a\\"b"}', f'{{"password": "{R}"}}'),
        ('"password": "cut off mid-val', f'"password": "{R}'),
        ('{"SessionToken" : "x"}', f'{{"SessionToken" : "{R}"}}'),
        # an escaped quote never ends a value: over-redaction, never a leak
        ('{"data": "{\\"token\\": \\"abc\\"}"}', f'{{"data": "{{\\"token\\": \\"{R}"}}'),
        # header lines
        ("X-Api-Key: abc123\nContent-Type: json", f"X-Api-Key: {R}\nContent-Type: json"),
        ("Cookie: sid=xyz", f"Cookie: {R}"),
        # header-like names mid-line (found by the end-to-end redaction property test)
        ("HTTP 400: ..x-api-key: ck_1_abc", f"HTTP 400: ..x-api-key: {R}"),
        ("got access_token: abc.def, retry", f"got access_token: {R}, retry"),
        ("invalid token: expired", f"invalid token: {R}"),
        ("cannot sign: webhook secret is empty", None),
        ("X-Auth-Error: bad", None),
        # exception names are not headers
        ("KeyError: 'missing'", "KeyError: 'missing'"),
        ("AuthenticationError: denied", "AuthenticationError: denied"),
        # nested: a non-secret value holding a secret parameter
        (
            "message='Service Unavailable', url='https://h/in?token=abc&x=2'",
            f"message='Service Unavailable', url='https://h/in?token={R}&x=2'",
        ),
        # nothing to redact
        ("ClientConnectorError: Cannot connect to host example.com:443", None),
        ("", None),
    ],
)
def test_rules(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    "text",
    [
        "token=abc&x=1",
        '{"password": "x", "n": 1}',
        "Authorization: Bearer abc",
        "https://u:p@h/",
        "X-Api-Key: k",
        "Bearer abc, next",
        "whsec_abcd",
        "sig=abc]",
    ],
)
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = redact(text)
    assert once != text
    assert redact(once) == once  # no "[REDACTED]]" from a rule matching part of a marker


def test_adjacent_matches_merge_into_one_marker() -> None:
    assert redact("Authorization: Bearer whsec_abcd") == f"Authorization: {R}"


# --- summarize ----------------------------------------------------------------------


def test_summarize_none_stays_none() -> None:
    assert summarize(None) is None
    assert summarize(None, ["secret-value"]) is None


def test_summarize_collapses_whitespace_and_control_characters() -> None:
    text = "line one\r\n\tline\x00two\x1b[31m  red\u202eevil\u200b\x85 end  "
    assert summarize(text) == "line one line two [31m red evil end"


def test_summarize_short_text_is_unchanged() -> None:
    assert summarize("HTTP 503: upstream busy") == "HTTP 503: upstream busy"
    assert summarize("") == ""
    exact = "x" * MAX_SUMMARY_CHARS
    assert summarize(exact) == exact


def test_summarize_truncates_with_ellipsis() -> None:
    out = summarize("y" * 2000)
    assert out is not None
    assert len(out) == MAX_SUMMARY_CHARS
    assert out.endswith("…")
    assert out[:-1] == "y" * (MAX_SUMMARY_CHARS - 1)


def test_summarize_redacts_before_truncating() -> None:
    secret = "Z" * 40
    text = "a" * 505 + secret  # the cut at 511 falls in the secret
    out = summarize(text, [secret])
    assert out == "a" * 505 + "…"  # nor is half a marker left


def test_summarize_never_cuts_a_marker_in_half() -> None:
    for offset in range(490, 515):
        out = summarize("a" * offset + " token=abcdef " + "b" * 100)
        assert out is not None
        assert len(out) <= MAX_SUMMARY_CHARS
        if "[" in out:
            assert R in out
            assert out.count("[") == out.count(R)


def test_summarize_huge_text_is_bounded() -> None:
    secret = generate_secret()
    text = ("row " * 2_000_000) + secret
    out = summarize(text, [secret])
    assert out is not None
    assert out.endswith("…")
    assert len(out) <= MAX_SUMMARY_CHARS
    assert secret not in out


def test_summarize_huge_mostly_whitespace_text_keeps_no_partial_secret() -> None:
    secret = "Q" * 64
    # Collapsing the whitespace brings text from the scan window's far end into the
    # first 512 characters; the secret straddles that end.
    for start in range(16_384 - 300, 16_384 + 1, 7):
        text = " " * start + secret + " tail"
        out = summarize(text, [secret])
        assert out is not None
        assert "Q" not in out
        out = summarize(" " * start + "token=" + secret + " tail")
        assert out is not None
        assert "Q" not in out


@pytest.mark.parametrize(
    "text",
    [
        "=" * 16_000,
        ":" * 16_000,
        "a=" * 8_000,
        "token=" * 3_000,
        "'key':" * 3_000,
        "a" * 16_000,
        ("a" * 100 + "://") * 160,
        '"a' * 8_000,
        "x" * 127 + "=" * 16_000,
        "Authorization:" * 1_000,
    ],
)
def test_pathological_inputs_stay_bounded(text: str) -> None:
    # Speed is the benchmark's business; here: these inputs finish and stay bounded.
    out = summarize(text)
    assert out is not None
    assert len(out) <= MAX_SUMMARY_CHARS


# --- properties: a planted secret never survives summarize --------------------------

CONTEXTS = [
    "Traceback: ValueError: bad credentials {s} for destination",
    "{s}",
    "ClientError: {s}",
    "POST https://user:{s}@hooks.example.com/in failed",
    "POST https://hooks.example.com/in?token={s}&x=1 failed",
    "POST https://hooks.example.com/in?x=1&api_key={s}",
    "Authorization: Bearer {s}\nContent-Type: application/json",
    "Authorization: {s}",
    '{"error": "invalid", "echo": "{s}"}',
]


@given(secret=any_secrets, context=st.sampled_from(CONTEXTS), before=filler, after=filler)
def test_planted_secret_never_survives(secret: str, context: str, before: str, after: str) -> None:
    assume(secret not in R)
    text = before + plant(context, secret) + after
    assert not survives(secret, summarize(text, secrets=[secret]))


@given(
    secret=any_secrets,
    position=st.integers(min_value=0, max_value=1200),
    body_char=st.sampled_from(["x", " ", "ab ", "é", "\n", "token=", "-"]),
    tail=st.text(max_size=200),
)
def test_planted_secret_in_long_body_never_survives(
    secret: str, position: int, body_char: str, tail: str
) -> None:
    assume(secret not in R)
    # The space keeps the padding out of a whsec_ or token= match, which would otherwise
    # (rightly) redact all of it.
    body = (body_char * 1200)[:position] + secret + " " + "z" * 600 + tail
    out = summarize(body, secrets=[secret])
    assert not survives(secret, out)
    assert out is not None
    assert out.endswith("…")


@given(secret=any_secrets, offset=st.integers(min_value=-400, max_value=50))
def test_planted_secret_at_scan_window_edge_never_survives(secret: str, offset: int) -> None:
    assume(secret not in R)
    body = " " * (16_384 + offset) + secret + " tail"
    assert not survives(secret, summarize(body, secrets=[secret]))


@given(secret=st.builds(generate_secret))
def test_whsec_base64_part_never_survives(secret: str) -> None:
    bare = secret.removeprefix("whsec_")
    text = f"echo: {bare} / {quote(bare, safe='')} / {secret}"
    out = summarize(text, secrets=[secret])
    assert not survives(bare, out)
    assert not survives(quote(bare, safe=""), out)


@given(secret=any_secrets, context=st.sampled_from(CONTEXTS))
def test_output_is_bounded(secret: str, context: str) -> None:
    out = summarize(plant(context, secret) * 50, secrets=[secret])
    assert out is not None
    assert len(out) <= MAX_SUMMARY_CHARS


@given(text=st.text(max_size=2000), secrets=st.lists(st.text(max_size=20), max_size=3))
def test_any_text_is_bounded_and_one_line(text: str, secrets: list[str]) -> None:
    out = summarize(text, secrets)
    assert out is not None
    assert len(out) <= MAX_SUMMARY_CHARS
    assert "\n" not in out
    assert "\r" not in out
    assert out == out.strip()


# --- properties: the pattern rules alone, with no secret given ----------------------

PATTERN_CONTEXTS = [
    "GET https://hooks.example.com/in?token={s}&x=1",
    "GET https://hooks.example.com/in?x=1&client_secret={s}",
    "Authorization: Bearer {s}\nHost: example.com",
    "sent header authorization={s}",
    "request had Bearer {s}",
    "X-Webhook-Signature: {s}",
]


@given(secret=plain_secrets, context=st.sampled_from(PATTERN_CONTEXTS), before=filler)
def test_patterns_catch_unlisted_secrets(secret: str, context: str, before: str) -> None:
    template = before + "\n" + context  # header lines must start a line
    assume(secret not in R and secret not in plant(template, ""))
    assert not survives(secret, summarize(plant(template, secret)))


@given(secret=st.text(alphabet=URLSAFE + "+=", min_size=8, max_size=64))
def test_userinfo_pattern_catches_unlisted_password(secret: str) -> None:
    template = "POST https://user:{s}@hooks.example.com/in failed"
    assume(secret not in R and secret not in plant(template, ""))
    assert not survives(secret, summarize(plant(template, secret)))


@given(
    value=st.text(min_size=4, max_size=40),
    name=st.sampled_from(["password", "api_key", "accessToken", "client-secret", "sig"]),
)
def test_json_values_of_sensitive_keys_are_redacted(value: str, name: str) -> None:
    document = json.dumps({"user": "bob", name: value, "n": 1})
    assert redact(document) == json.dumps({"user": "bob", name: R, "n": 1})


@given(secret=st.builds(generate_secret), before=filler, after=filler)
def test_whsec_pattern_catches_unlisted_generated_secrets(
    secret: str, before: str, after: str
) -> None:
    assert not survives(secret.removeprefix("whsec_"), summarize(before + secret + " " + after))


@given(body=st.binary(max_size=200), msg_id=st.text(min_size=1, max_size=30))
def test_signature_pattern_catches_signatures(body: bytes, msg_id: str) -> None:
    signature = sign(generate_secret(), msg_id, 1_700_000_000, body)
    out = summarize(f"webhook-signature was {signature} but expected another")
    assert not survives(signature.removeprefix("v1,"), out)
