"""Broker servers of a test's own, on free loopback ports, to kill and start again at
will without touching the shared ones: a redis-server and a RabbitMQ node."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.support.ports import free_port


def reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


class RedisServer:
    """A redis-server of our own on a free loopback port, to stop and start at will.
    Append-only with fsync on every write: what it acknowledged survives a kill."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        auth = f"default:{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            if reachable(self.port):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), timeout=10)
            self.proc = None


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves: they run as the caller


def _rabbitmq_script(name: str) -> str:
    """The script itself, not the /usr/sbin wrapper that switches to the rabbitmq user."""
    script = RABBITMQ_BIN / name
    found = str(script) if script.exists() else shutil.which(name)
    assert found is not None, f"{name} is not installed"
    return found


class RabbitMQNode:
    """A RabbitMQ node of our own: its own node name, ports, database and logs under
    `workdir`, so it can be SIGKILLed and started again without touching the shared one.
    Its database survives a restart: durable queues keep the persistent messages they
    confirmed."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.workdir = workdir
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.binary = _rabbitmq_script("rabbitmq-server")
        self.ctl_binary = _rabbitmq_script("rabbitmqctl")
        (workdir / "enabled_plugins").write_text("[].\n")  # no management listener to clash
        (workdir / "rabbitmq.conf").write_text("")
        (workdir / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        base = self.workdir
        return {
            **os.environ,
            "HOME": str(base),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": f"{self.name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }

    async def start(self) -> None:
        log = (self.workdir / "server.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, env=self._env(), stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        for _ in range(600):  # the AMQP listener opens last, once the node is booted
            if self.proc.returncode is not None:
                break
            if reachable(self.port):
                # The listener is ours only if our node says it has booted.
                await self.ctl("await_startup")
                return
            await asyncio.sleep(0.1)
        raise AssertionError("rabbitmq-server did not start: see " + str(self.workdir))

    async def ctl(self, *args: str) -> None:
        """Run `rabbitmqctl` against this node (its arguments may hold a password: its
        output is not kept)."""
        proc = await asyncio.create_subprocess_exec(
            self.ctl_binary,
            "-n",
            f"{self.name}@localhost",
            *args,
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert await proc.wait() == 0, f"rabbitmqctl {args[0]} failed"

    async def kill(self) -> None:
        """SIGKILL the whole node (the script, the Erlang VM and its helpers)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), timeout=10)
            self.proc = None
        for _ in range(100):  # the VM's sockets close a moment after the script is reaped
            if not reachable(self.port):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"rabbitmq-server still listens on {self.port} after SIGKILL")
