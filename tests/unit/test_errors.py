"""One exception tree: every error courier raises on purpose is a CourierError, and each
of NotFound and InvalidCursor is defined once."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid

import courier
from courier import errors, ping, recovery, replay
from courier.store import feed
from courier.web import problems

# Not (yet) in the tree: a Starlette HTTPException, a private parsing signal, and the
# console's form error (other work is changing the console).
OUTSIDE = {
    "courier.api.body_limit.BodyTooLarge",
    "courier.adapters.http1._StopParsing",
    "courier.console.inputs.BadField",
}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(courier.__path__, "courier."):
        if info.name.endswith("__main__"):
            continue  # importing it runs the CLI
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue  # an optional extra (a broker client) that is not installed
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{value.__qualname__}"] = value
    return found


def test_every_courier_exception_is_a_courier_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 20
    outside = {name for name, cls in classes.items() if not issubclass(cls, errors.CourierError)}
    assert outside == OUTSIDE & set(classes)


def test_one_not_found_and_one_invalid_cursor() -> None:
    names = [name.rsplit(".", 1)[1] for name in _exception_classes()]
    assert names.count("NotFound") == 1
    assert names.count("InvalidCursor") == 1
    assert replay.InvalidCursor is feed.InvalidCursor is errors.InvalidCursor
    assert problems.NotFound is errors.NotFound
    assert issubclass(replay.NotFound, errors.NotFound)
    assert ping.DestinationNotFound is recovery.DestinationNotFound
    assert ping.DestinationDisabled is recovery.DestinationDisabled


def test_messages_are_as_before() -> None:
    delivery_id = uuid.uuid4()
    missing = replay.NotFound(delivery_id)
    assert str(missing) == f"no delivery {delivery_id}"
    assert missing.delivery_id == delivery_id
    assert missing.noun == "delivery"
    assert str(errors.InvalidCursor()) == "not a cursor this API issued"
    assert isinstance(errors.InvalidCursor(), ValueError)
    assert str(recovery.DestinationNotFound("abc")) == "abc"
    assert errors.NotFound("destination").noun == "destination"
