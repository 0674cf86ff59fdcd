"""The one tree of errors courier raises on purpose; the API and the CLI map them to answers
(the API to problem documents; the CLI, in courier.cli.clear_errors, to one line on stderr
and the error's `exit_code`).

CourierError
├── NotFound                  a tenant's row that is not there (or is another tenant's)
│   ├── DeliveryNotFound
│   └── DestinationNotFound
├── DestinationDisabled       the operation needs an enabled destination
├── InvalidCursor             a cursor this service did not issue (also a ValueError)
└── ...                       each module's own errors (replay, enqueue, crypto,
                              store, adapters, settings), keeping their builtin bases
"""

from __future__ import annotations

import uuid
from typing import ClassVar


class CourierError(Exception):
    """Base of every error courier raises on purpose."""

    # The `courier` command's exit status when one ends it: 2, a refusal the caller fixes
    # (a setting, URL, key or argument); a subclass may say otherwise.
    exit_code: ClassVar[int] = 2


class NotFound(CourierError):
    """`noun` names what is missing: the API answers 404 "No such <noun>."."""

    def __init__(self, noun: str, message: str | None = None) -> None:
        super().__init__(message if message is not None else f"no such {noun}")
        self.noun = noun


class DeliveryNotFound(NotFound):
    def __init__(self, delivery_id: uuid.UUID) -> None:
        super().__init__("delivery", f"no delivery {delivery_id}")
        self.delivery_id = delivery_id


class DestinationNotFound(NotFound):
    def __init__(self, destination_id: str) -> None:
        super().__init__("destination", destination_id)


class DestinationDisabled(CourierError):
    """A disabled destination refuses deliveries: a test or recovery would fail without a
    request."""


class InvalidCursor(CourierError, ValueError):
    def __init__(self, message: str = "not a cursor this API issued") -> None:
        super().__init__(message)
