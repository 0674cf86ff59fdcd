"""A worker process collects garbage less often, with its start-up objects frozen."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_raises_thresholds_and_freezes_startup_objects() -> None:
    code = (
        "import gc\n"
        "from courier.worker.runner import GC_THRESHOLDS, _tune_gc\n"
        "assert gc.get_threshold() != GC_THRESHOLDS\n"
        "_tune_gc()\n"
        "assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "assert gc.collect() >= 1  # cycles are still found\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
