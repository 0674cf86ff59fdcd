"""Redacted, bounded error summaries: what may be stored and shown about a failed attempt.

Error texts come from exceptions, URLs and response bodies, any of which can carry a
signing secret, a token in a query string or a header echoed back by the receiver.
`redact` replaces what looks secret with `[REDACTED]`; `summarize` also makes the result
one line of at most `MAX_SUMMARY_CHARS`.

How it works: every rule yields spans of the ORIGINAL text; overlapping spans are merged
and each merged span becomes one `[REDACTED]`. Rules therefore cannot hide each other's
matches, and the output is pieces of the input that contain no whole match, separated by
markers. Redaction errs towards hiding too much: a summary with a word too many redacted
is a nuisance, a leaked secret is an incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote

__all__ = ["MAX_SUMMARY_CHARS", "REDACTED", "redact", "summarize"]

MAX_SUMMARY_CHARS = 512
REDACTED = "[REDACTED]"

# Shorter secrets are ignored: redacting every "abc" would destroy the text.
_MIN_SECRET_CHARS = 4
_ELLIPSIS = "…"

# summarize() looks at no more than this much of a huge input (a multi-megabyte response
# body), which keeps its cost bounded. To make the cut safe, output stops this far before
# the scanned window ends, so any secret that starts in the output is wholly inside the
# window and therefore found; the guard grows to fit the longest secret given.
_SCAN_LIMIT_CHARS = 16_384
_CUT_GUARD_CHARS = 256

_SECRET_PREFIX = "whsec_"  # as in courier.signing; not imported to keep this module leaf

# Names of parameters, JSON keys and headers whose values are treated as secret.
_SENSITIVE_NAME = re.compile(
    r"token|key|secret|sig|signature|password|passwd|pwd|auth|code|session|credential",
    re.IGNORECASE,
)
# "code" would otherwise hide the most useful part of many error messages.
_NOT_SECRET_NAMES = frozenset(
    {
        "status_code",
        "statuscode",
        "error_code",
        "errorcode",
        "http_code",
        "response_code",
        "reason_code",
        "exit_code",
        "return_code",
    }
)
# A line such as "KeyError: 'x'" or "AuthenticationError: denied" is an exception, not a
# header; its message is what the summary is for.
_EXCEPTION_NAME_SUFFIXES = ("error", "exception", "warning")

# Whole-match rules: the entire match is secret.
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
_SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/=]{20,}")

# Value rules: only the value group is secret. `\\?["']` is a quote that may be
# JSON-escaped (an error body that embeds a JSON document as a string).
_Q = r"""\\?["']"""
# A quoted value runs to its closing quote, or to the end of the line when the text was
# cut mid-value. Escapes are skipped in pairs, so an escaped quote does not end it.
_VALUE = (
    r"""(?:\\?"(?P<dq>(?:[^"\\\r\n]|\\.)*)"?"""
    r"""|\\?'(?P<sq>(?:[^'\\\r\n]|\\.)*)'?"""
    r"""|(?P<bare>[^\s&#"'<>,;)}\]\\]+))"""
)

_AUTHORIZATION = re.compile(
    rf"""\bauthorization(?:{_Q})?[ \t]*[:=][ \t]*(?:{_Q})?(?P<v>[^\r\n"',\\]+)""",
    re.IGNORECASE,
)
# "Basic authentication failed" loses a word to this; accepted, see the module docstring.
# The credential runs to a space, quote, comma or semicolon, not just over the token68
# alphabet: a malformed token must not leak its tail.
_BEARER_BASIC = re.compile(r"""\b(?:bearer|basic)[ \t]+(?P<v>[^\s"',;\\]+)""", re.IGNORECASE)
# Greedy up to the authority's end, then back to its LAST "@": a password may hold an
# unescaped "@". `:\/\/` is a JSON-escaped "://".
_USERINFO = re.compile(r""":(?://|\\/\\/)(?P<v>[^\s/?#"'<>\\]+)@""")
# name=value (query strings, form bodies, cookies, log fields, keyword arguments) and
# "name": value (JSON, Python dict reprs). Found from each "=" or ":": the name before it
# is read by matching a reversed pattern against the reversed text, and only after a
# sensitive name is the value matched. A non-secret value is therefore never skipped
# (url='https://h/?token=abc' still has its token found), and the scan stays linear:
# each character is read by at most one value.
_SEPARATOR = re.compile(r"[=:]")
_VALUE_AFTER = re.compile(rf"[ \t]*{_VALUE}")
_MAX_NAME_CHARS = 128
# Reversed: optional spaces, optional (possibly escaped) closing quote, then the name.
_EQUALS_NAME_REVERSED = re.compile(
    rf"""[ \t]*(?:["']\\?)?(?P<n>[\w.\[\]-]{{1,{_MAX_NAME_CHARS}}})"""
)
# Reversed: the name must be quoted, by the same quote on both sides.
_COLON_NAME_REVERSED = re.compile(
    rf"""[ \t]*(?P<q>["'])\\?(?P<n>[\w .\[\]-]{{1,{_MAX_NAME_CHARS}}})(?P=q)"""
)
# Reversed: an unquoted name before ":" in the middle of a line ("got x-api-key: abc").
# Only header-like names count (see _header_like): "cannot sign: reason" keeps its reason.
_BARE_COLON_NAME_REVERSED = re.compile(rf"[ \t]*(?P<n>[A-Za-z0-9_-]{{1,{_MAX_NAME_CHARS}}})")
_BARE_SENSITIVE_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "pwd", "apikey", "signature", "credentials"}
)
# Header lines: "X-Api-Key: abc", "Cookie: sid=abc", to the end of the line.
_HEADER_LINE = re.compile(r"^[ \t]*(?P<n>[A-Za-z0-9_-]+)[ \t]*:[ \t]*(?P<v>[^\r\n]+)", re.MULTILINE)
_SECRET_HEADERS = frozenset({"cookie", "set-cookie"})

_VALUE_GROUPS = ("v", "dq", "sq", "bare")  # the groups that may hold the secret value

# Runs of whitespace, control characters and the invisible format characters that can
# reorder or hide text in a terminal (zero-width, bidi embeddings/overrides/isolates).
_COLLAPSE = re.compile(
    "[\\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+"
)

_Span = tuple[int, int]


def _sensitive(name: str) -> bool:
    if not _SENSITIVE_NAME.search(name):
        return False
    return name.lower().replace("-", "_").strip(" ._[]") not in _NOT_SECRET_NAMES


def _sensitive_header(name: str) -> bool:
    lowered = name.lower()
    if lowered in _SECRET_HEADERS:
        return True
    return _sensitive(name) and not lowered.endswith(_EXCEPTION_NAME_SUFFIXES)


def _header_like(name: str) -> bool:
    """An unquoted "name:" mid-line: a compound name (x-api-key, access_token) or a word
    that only ever names a secret; either way sensitive and not an exception name."""
    lowered = name.lower()
    compound = "-" in name or "_" in name
    return (compound or lowered in _BARE_SENSITIVE_WORDS) and _sensitive_header(name)


@lru_cache(maxsize=4096)
def _variants(secret: str) -> tuple[str, ...]:
    """The forms in which `secret` may appear in a text, longest first.

    For a `whsec_` secret the base64 part alone counts too. Each form also appears
    percent-encoded (as in a URL) and with "/" escaped as "\\/" (as some JSON encoders
    write it), and a base64 form also without its "=" padding.
    """
    forms = {secret}
    if secret.startswith(_SECRET_PREFIX):
        forms.add(secret.removeprefix(_SECRET_PREFIX))
    for form in list(forms):
        forms.add(form.rstrip("="))
    for form in list(forms):
        forms.update((quote(form, safe=""), quote(form, safe="/"), form.replace("/", "\\/")))
    return tuple(sorted((f for f in forms if len(f) >= _MIN_SECRET_CHARS), key=len, reverse=True))


def _needles(secrets: Iterable[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}  # ordered and de-duplicated
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_CHARS:
            found.update(dict.fromkeys(_variants(secret)))
    return tuple(found)


def _value_span(match: re.Match[str]) -> _Span | None:
    for group in _VALUE_GROUPS:
        if group in match.re.groupindex:
            start, end = match.span(group)
            if end > start:
                return start, end
    return None


def _named_value_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    reversed_text = text[::-1]
    pos = 0
    while separator := _SEPARATOR.search(text, pos):
        at = separator.start()
        pos = at + 1
        back = len(text) - at
        if separator[0] == "=":
            named = _EQUALS_NAME_REVERSED.match(reversed_text, back)
            wanted = named is not None and _sensitive(named["n"][::-1])
        elif named := _COLON_NAME_REVERSED.match(reversed_text, back):
            wanted = _sensitive(named["n"][::-1])
        else:
            named = _BARE_COLON_NAME_REVERSED.match(reversed_text, back)
            wanted = named is not None and _header_like(named["n"][::-1])
        if not wanted:
            continue
        value = _VALUE_AFTER.match(text, pos)
        if value is not None and (span := _value_span(value)) is not None:
            spans.append(span)
            pos = span[1]  # the whole value is redacted: nothing inside it needs finding
    return spans


def _spans(text: str, needles: Sequence[str]) -> list[_Span]:
    spans: list[_Span] = []
    for needle in needles:
        # Overlapping occurrences too: "aaaa" in "aaaaa" must cover all five characters.
        start = text.find(needle)
        while start != -1:
            spans.append((start, start + len(needle)))
            start = text.find(needle, start + 1)
    # Markers already in the text (redacting twice) are spans too, so that a rule matching
    # part of one merges with it instead of leaving "[REDACTED]]" behind.
    start = text.find(REDACTED)
    while start != -1:
        spans.append((start, start + len(REDACTED)))
        start = text.find(REDACTED, start + len(REDACTED))
    # Each rule runs only if the text holds what it needs: most error texts lack most of
    # these, and a substring test is far cheaper than a regex scan.
    lowered = text.lower()
    if "whsec_" in text:
        spans.extend(m.span() for m in _WHSEC.finditer(text))
    if "v1," in text:
        spans.extend(m.span() for m in _SIGNATURE.finditer(text))
    value_rules = (
        (_AUTHORIZATION, "authorization" in lowered),
        (_BEARER_BASIC, "bearer" in lowered or "basic" in lowered),
        (_USERINFO, "@" in text),
    )
    for pattern, wanted in value_rules:
        if wanted:
            spans.extend(span for m in pattern.finditer(text) if (span := _value_span(m)))
    if "=" in text or ":" in text:
        spans.extend(_named_value_spans(text))
    if ":" in text:
        for m in _HEADER_LINE.finditer(text):
            if _sensitive_header(m["n"]):
                spans.append(m.span("v"))
    return spans


def _redact(text: str, needles: Sequence[str], end: int) -> str:
    """`text[:end]` with every secret span replaced; a span crossing `end` is replaced."""
    merged: list[list[int]] = []
    for start, stop in sorted(_spans(text, needles)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    parts: list[str] = []
    pos = 0
    for start, stop in merged:
        if start >= end:
            break
        parts.append(text[pos:start])
        parts.append(REDACTED)
        pos = stop
    if pos < end:
        parts.append(text[pos:end])
    return "".join(parts)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with secrets replaced by `[REDACTED]`; the rest is left exactly as it was.

    Replaced: each of `secrets` (ignoring any shorter than 4 characters) and, for a
    `whsec_` secret, its base64 part, also percent-encoded; any `whsec_…` string; any
    Standard Webhooks `v1,…` signature; Authorization header values; Bearer and Basic
    credentials; URL user-info; and the values of query/form parameters, JSON keys and
    header lines whose name contains token, key, secret, sig(nature), password, passwd,
    pwd, auth, code, session or credential; and, in the middle of a line, the value after
    such a header-like name and a colon ("got x-api-key: abc").
    """
    return _redact(text, _needles(secrets), len(text))


def _truncate(text: str, limit: int) -> str:
    """At most `limit` characters ending in "…", not cutting a marker in half."""
    cut = limit - len(_ELLIPSIS)
    marker = text.rfind(REDACTED, 0, cut + len(REDACTED) - 1)
    if marker != -1 and marker < cut < marker + len(REDACTED):
        cut = marker
    return text[:cut].rstrip() + _ELLIPSIS


def summarize(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """One redacted line of at most MAX_SUMMARY_CHARS, ending in "…" if anything was cut.

    Redaction runs before truncation, so a cut can never leave part of a secret behind
    that the full secret would have matched; whitespace and control characters are
    collapsed to single spaces after redaction, since some rules read to the end of line.
    Of a text longer than 16 KiB only the start is read, so the cost stays bounded.
    """
    if text is None:
        return None
    needles = _needles(secrets)
    end = len(text)
    cut = False
    if len(text) > _SCAN_LIMIT_CHARS:
        guard = max([_CUT_GUARD_CHARS, *map(len, needles)])
        text = text[:_SCAN_LIMIT_CHARS]
        end = max(0, _SCAN_LIMIT_CHARS - guard)
        cut = True
    line = _COLLAPSE.sub(" ", _redact(text, needles, end)).strip()
    if not cut and len(line) <= MAX_SUMMARY_CHARS:
        return line
    return _truncate(line, MAX_SUMMARY_CHARS)
