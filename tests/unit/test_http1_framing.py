"""Where a response body ends: the client's reading of Transfer-Encoding against llhttp's.

The client decides itself whether a body is close-delimited (llhttp cannot say), so its
rule must match the parser's for every spelling, or a response would hang until the
timeout or be cut short.
"""

from __future__ import annotations

import httptools
from hypothesis import given
from hypothesis import strategies as st

from courier.adapters.http1 import chunked_is_final


class _Events:
    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def llhttp_reads_chunked(fields: list[bytes]) -> bool | None:
    """True if llhttp ends a chunked body at its last chunk, False if it reads to the
    close, None if it refuses the head."""
    events = _Events()
    parser = httptools.HttpResponseParser(events)
    parser.set_dangerous_leniencies(lenient_chunked_length=True)
    head = b"".join(b"Transfer-Encoding: %s\r\n" % field for field in fields)
    try:
        parser.feed_data(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n2\r\nok\r\n0\r\n\r\n")
    except httptools.HttpParserError:
        return None
    return events.complete


_tokens = st.sampled_from(
    [b"chunked", b"Chunked", b"CHUNKED", b"gzip", b"identity", b"chunkedx", b"x-chunked", b""]
)
_space = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t", b"\t "])
_coding = st.builds(lambda a, t, b: a + t + b, _space, _tokens, _space)
_field = st.lists(_coding, min_size=1, max_size=3).map(b",".join)


@given(fields=st.lists(_field, min_size=1, max_size=2))
def test_the_client_and_llhttp_agree_where_a_body_ends(fields: list[bytes]) -> None:
    llhttp = llhttp_reads_chunked(fields)
    if llhttp is not None:
        # Repeated fields are one list (RFC 9110 5.3); the client sees the last field.
        assert chunked_is_final(fields[-1]) == llhttp


def test_chunked_must_be_the_final_coding() -> None:
    assert chunked_is_final(b"gzip, chunked")
    assert not chunked_is_final(b"chunked, identity")
    assert not chunked_is_final(b"gzip")
