"""`make smoke-delivery-retry` as a test: the script against a real stack must exit 0.

It starts its own `courier serve` and two `courier worker` processes on the database
COURIER_DATABASE_URL names, else on an embedded server in its own temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_delivery_retry.py"

pytestmark = [pytest.mark.delivery_retry]


def test_smoke_delivery_retry_script_passes() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=dict(os.environ),
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, out
    assert "RESULT: ok" in out
    assert "MISMATCH" not in out
