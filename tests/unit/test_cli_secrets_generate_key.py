"""`courier secrets generate-key`: a fresh, usable COURIER_SECRET_KEY on one line."""

from __future__ import annotations

from click.testing import CliRunner

from courier.cli import main
from courier.crypto import SecretBox


def _generate() -> str:
    result = CliRunner().invoke(main, ["secrets", "generate-key"], env={})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_generated_key_encrypts_and_decrypts() -> None:
    box = SecretBox(_generate())

    assert box.decrypt(box.encrypt("whsec_example")) == "whsec_example"


def test_each_run_prints_a_new_key() -> None:
    assert _generate() != _generate()
