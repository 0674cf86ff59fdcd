"""The embedded server's folders: started as root, it opens no folder to reading by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg

from courier.store.embedded import EmbeddedPostgres

READ_BITS = stat.S_IRGRP | stat.S_IROTH
WRITE_BITS = stat.S_IWGRP | stat.S_IWOTH


def _modes(folders: list[Path]) -> dict[Path, int]:
    return {f: stat.S_IMODE(f.stat().st_mode) for f in folders}


def test_start_adds_only_traverse_bits_to_the_folders_above_the_data(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    outer.chmod(0o750)
    inner.chmod(0o700)
    data_dir = inner / "data"
    parents = [tmp_path, outer, inner]
    before = _modes(parents)

    embedded = EmbeddedPostgres(data_dir)
    try:
        url = embedded.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        after = _modes([*parents, data_dir])
    finally:
        embedded.close()

    for folder in parents:
        added = after[folder] & ~before[folder]
        assert added & (READ_BITS | WRITE_BITS) == 0, (folder, oct(before[folder]), oct(added))
    # the data dir holds `courier up`'s secret key: nobody but its owner may list it
    assert after[data_dir] & (READ_BITS | WRITE_BITS) == 0, oct(after[data_dir])
    if os.geteuid() == 0:
        # the server runs as its own user: it must be able to pass through, and it did
        for folder in [*parents, data_dir]:
            assert after[folder] & stat.S_IXOTH, (folder, oct(after[folder]))
