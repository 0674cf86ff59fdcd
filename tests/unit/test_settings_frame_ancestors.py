"""COURIER_CONSOLE_FRAME_ANCESTORS: CSP sources, or `'none'` (the default, not embeddable)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from courier.settings import Settings


def test_the_default_frames_nothing() -> None:
    settings = Settings()
    assert settings.console_frame_ancestors == "'none'" and not settings.console_embedded


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("https://platform.example", "https://platform.example"),
        ("  'self'   https://*.example.com ", "'self' https://*.example.com"),
    ],
)
def test_sources_make_the_console_embeddable(value: str, kept: str) -> None:
    settings = Settings(console_frame_ancestors=value)
    assert settings.console_frame_ancestors == kept and settings.console_embedded


@pytest.mark.parametrize(
    "value",
    [
        "https://a.example; script-src *",  # a second directive
        "https://a.example, https://b.example",
        '"https://a.example"',
        "https://ä.example",
        "   ",
    ],
)
def test_anything_that_could_change_other_directives_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="console_frame_ancestors"):
        Settings(console_frame_ancestors=value)
