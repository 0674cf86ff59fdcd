"""A real Redmine 5 on loopback, from Debian's `redmine` and `redmine-sqlite` packages.

Preparing one (migrating a database, loading the default data, turning on the REST API,
creating an API key, a project and the correlation-key custom field) takes Rails about
15 seconds, so it is done once per package version and setup script and cached: a copy
of /usr/share/redmine (Redmine keeps per-instance paths under its own root, so a private
instance needs a private root) and the prepared SQLite database. Each test session copies
that database and serves it with WEBrick (the Rails server Debian ships) on a free port.

When the packages are missing or the server does not come up, `start` raises with what
to do; the tests fail with it rather than skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port

PACKAGED = Path("/usr/share/redmine")
SETUP_SCRIPT = Path(__file__).with_name("redmine_setup.rb")
START_TIMEOUT_S = 120.0
INSTALL_HINT = (
    "install Debian's redmine and redmine-sqlite packages "
    "(apt-get install redmine redmine-sqlite; .ci/run does)"
)


class RedmineUnavailable(RuntimeError):
    """The test Redmine cannot be prepared or started; the message says why."""


@dataclass(frozen=True)
class Prepared:
    root: Path  # the private copy of /usr/share/redmine
    database: Path  # the prepared SQLite database, copied per session
    facts: dict[str, Any]  # api_key, correlation_field_id, project, trackers, statuses…


def _package_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "redmine"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise RedmineUnavailable(f"Redmine is not installed: {INSTALL_HINT}") from None
    return out.strip()


def _cache_root() -> Path:
    base = os.environ.get("COURIER_TEST_CACHE") or os.path.expanduser("~/.cache/courier-tests")
    return Path(base)


def _rails_env(root: Path, instance: str) -> dict[str, str]:
    return {
        **os.environ,
        "RAILS_ENV": "production",
        "REDMINE_INSTANCE": instance,
        "REDMINE_LANG": "en",
        "BUNDLE_GEMFILE": str(root / "Gemfile"),
    }


def _make_instance(root: Path, instance: str, database: Path, workdir: Path) -> None:
    """Redmine's per-instance layout (Debian's multi-tenancy): config, tmp, log, files."""
    home = root / "instances" / instance
    if home.exists():
        shutil.rmtree(home)
    (home / "config").mkdir(parents=True)
    for name in ("tmp", "log", "files"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(workdir / name)
    (home / "config" / "database.yml").write_text(
        f"production:\n  adapter: sqlite3\n  database: {database}\n  timeout: 10000\n  pool: 16\n"
    )
    (home / "config" / "secret_key.txt").write_text(uuid.uuid4().hex * 2)


def _run(root: Path, instance: str, args: list[str], what: str) -> str:
    done = subprocess.run(
        args,
        cwd=root,
        env=_rails_env(root, instance),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RedmineUnavailable(f"preparing Redmine failed at {what}:\n" + "\n".join(tail))
    return done.stdout


def _copy_app(root: Path) -> None:
    shutil.copytree(PACKAGED, root, symlinks=True, ignore=shutil.ignore_patterns("instances"))
    (root / "instances").mkdir()
    # The lock file is a symlink into /var/lib/redmine; ours may change with Gemfile.local.
    lock = root / "Gemfile.lock"
    target = lock.resolve()
    lock.unlink()
    shutil.copyfile(target, lock)
    # Debian ships no puma; WEBrick is installed but the Gemfile must name it.
    (root / "Gemfile.local").write_text('gem "webrick"\n')


def prepare() -> Prepared:
    """The cached Redmine copy and prepared database, made on first use (under a lock)."""
    if not (PACKAGED / "bin" / "rails").exists():
        raise RedmineUnavailable(f"{PACKAGED} is missing: {INSTALL_HINT}")
    recipe = hashlib.sha256(SETUP_SCRIPT.read_bytes() + _package_version().encode()).hexdigest()
    cache = _cache_root() / f"redmine-{recipe[:16]}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        facts_file = cache / "facts.json"
        database = cache / "prepared.sqlite3"
        root = cache / "app"
        if not facts_file.exists():
            if root.exists():
                shutil.rmtree(root)
            _copy_app(root)
            building = cache / "building.sqlite3"
            building.unlink(missing_ok=True)
            _make_instance(root, "prepare", building, cache / "prepare")
            _run(root, "prepare", ["bin/rake", "db:migrate"], "db:migrate")
            _run(root, "prepare", ["bin/rake", "redmine:load_default_data"], "default data")
            out = _run(root, "prepare", ["bin/rails", "runner", str(SETUP_SCRIPT)], "setup")
            facts = json.loads(out.strip().splitlines()[-1])
            building.rename(database)
            facts_file.write_text(json.dumps(facts))
        return Prepared(root, database, json.loads(facts_file.read_text()))


@dataclass
class RedmineServer:
    """One Redmine serving a private copy of the prepared database."""

    prepared: Prepared
    workdir: Path
    port: int = field(default_factory=free_port)
    instance: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return str(self.prepared.facts["api_key"])

    @property
    def correlation_field_id(self) -> int:
        return int(self.prepared.facts["correlation_field_id"])

    def status_id(self, name: str) -> int:
        return int(self.prepared.facts["statuses"][name])

    def tracker_id(self, name: str) -> int:
        return int(self.prepared.facts["trackers"][name])

    def priority_id(self, name: str) -> int:
        return int(self.prepared.facts["priorities"][name])

    def destination_config(self, project: str, **overrides: Any) -> dict[str, Any]:
        """A valid `redmine` destination config for `project`: issues keyed by
        payload.incident_id, closed by `incident.resolved`."""
        config: dict[str, Any] = {
            "base_url": self.url,
            "api_key": self.api_key,
            "project": project,
            "tracker_id": self.tracker_id("Bug"),
            "correlation_field_id": self.correlation_field_id,
            "correlation_key": "{{ payload.incident_id }}",
            "subject": "[{{ payload.severity | default('info') }}] {{ payload.title }}",
            "description": "{{ payload.title }} ({{ type }}, event {{ event_id }})",
            "note": "{{ type }}: {{ payload.title }}",
            "resolving_event_types": ["incident.resolved"],
            "closed_status_id": self.status_id("Closed"),
        }
        config.update(overrides)
        return config

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        database = self.workdir / "redmine.sqlite3"
        if not database.exists():
            shutil.copyfile(self.prepared.database, database)
        _make_instance(self.prepared.root, self.instance, database, self.workdir)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        args = ["bin/rails", "server", "-u", "webrick", "-b", "127.0.0.1", "-p", str(self.port)]
        env = _rails_env(self.prepared.root, self.instance)
        args += ["-P", str(self.workdir / "server.pid")]
        self.proc = subprocess.Popen(
            args, cwd=self.prepared.root, env=env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedmineUnavailable(
                    f"the Redmine server exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/issues.json", headers=self.headers, timeout=5)
                if answer.status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise RedmineUnavailable(
            f"Redmine did not answer within {START_TIMEOUT_S:g}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        home = self.prepared.root / "instances" / self.instance
        shutil.rmtree(home, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "server.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- reading and arranging Redmine's side, through its REST API ----------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Redmine-API-Key": self.api_key}

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)

    def create_project(self, identifier: str) -> str:
        body = {
            "project": {
                "name": identifier,
                "identifier": identifier,
                "tracker_ids": list(self.prepared.facts["trackers"].values()),
                "enabled_module_names": ["issue_tracking"],
            }
        }
        answer = self.api("POST", "/projects.json", json=body)
        assert answer.status_code == 201, answer.text
        return identifier

    def delete_project(self, identifier: str) -> None:
        answer = self.api("DELETE", f"/projects/{identifier}.json")
        assert answer.status_code in (200, 204), answer.text

    def issues(self, project: str) -> list[dict[str, Any]]:
        """Every issue of `project`, open or closed, oldest first."""
        params = {"project_id": project, "status_id": "*", "sort": "id", "limit": 100}
        answer = self.api("GET", "/issues.json", params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["issues"])

    def issue(self, issue_id: int) -> dict[str, Any]:
        answer = self.api("GET", f"/issues/{issue_id}.json", params={"include": "journals"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["issue"])

    def key_of(self, issue: dict[str, Any]) -> str | None:
        for cf in issue.get("custom_fields", []):
            if cf["id"] == self.correlation_field_id:
                return str(cf.get("value") or "") or None
        return None


@contextlib.contextmanager
def running_redmine(workdir: Path) -> Iterator[RedmineServer]:
    server = RedmineServer(prepare(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
