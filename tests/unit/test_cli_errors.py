"""The CLI maps failures in one place: one line on stderr and an exit status, never a
traceback."""

from __future__ import annotations

import uuid

import click
import psycopg
import pytest
from click.testing import CliRunner

from courier.cli import answer_for, clear_errors
from courier.errors import CourierError, DeliveryNotFound
from courier.store.database import DatabaseUnavailable
from courier.worker.worker import LoopDied

LOOP = "worker stopped: a loop ended unexpectedly: courier-heartbeat"
NO_SERVER = "connection refused\nIs the server running?"


@pytest.mark.parametrize(
    ("exc", "answer"),
    [
        (DatabaseUnavailable("database unavailable: gone"), ("database unavailable: gone", 2)),
        (CourierError("COURIER_SECRET_KEY is not set"), ("COURIER_SECRET_KEY is not set", 2)),
        (ValueError("unknown tenant(s): acme"), ("unknown tenant(s): acme", 2)),
        (LoopDied("courier-heartbeat"), (LOOP, 1)),
        (psycopg.OperationalError(NO_SERVER), ("database unavailable: connection refused", 2)),
        (psycopg.OperationalError(""), ("database unavailable: OperationalError", 2)),
    ],
)
def test_each_failure_has_one_line_and_a_status(exc: Exception, answer: tuple[str, int]) -> None:
    assert answer_for(exc) == answer


def test_an_error_of_the_tree_ends_a_command_in_one_line() -> None:
    @click.command()
    @clear_errors
    def command() -> None:
        raise DeliveryNotFound(uuid.UUID(int=7))

    result = CliRunner().invoke(command)
    assert result.exit_code == 2
    assert result.stderr == "courier: no delivery 00000000-0000-0000-0000-000000000007\n"
    assert result.stdout == ""


def test_other_exceptions_are_not_swallowed() -> None:
    @click.command()
    @clear_errors
    def command() -> None:
        raise KeyError("a bug")

    result = CliRunner().invoke(command)
    assert isinstance(result.exception, KeyError)
