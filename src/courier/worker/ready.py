"""The claimed rows a worker holds before a slot frees for them, served fairly.

The claim is fair across destinations, but what one claim returns waits here until
slots free. In one queue, a destination with a backlog fills it (up to the prefetch),
and a quiet destination's delivery claimed next waits behind all of that: with 128 rows
held ahead at 3,300 deliveries/s, about 40 ms before its turn. Here each destination
has its own line and the lines take turns, one row each: a newly claimed destination's
row starts at the second free slot, whatever the others hold. Within a line, claim
order is kept (a FIFO destination never has more than one row in flight anyway).
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Lines keyed by destination, served round-robin; `popleft` on empty raises."""

    __slots__ = ("_lines", "_size", "_turns")

    def __init__(self) -> None:
        self._lines: dict[Hashable, collections.deque[T]] = {}
        self._turns: collections.deque[Hashable] = collections.deque()  # non-empty lines
        self._size = 0

    def append(self, key: Hashable, item: T) -> None:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = collections.deque()
            self._turns.append(key)
        line.append(item)
        self._size += 1

    def popleft(self) -> T:
        key = self._turns.popleft()  # IndexError when empty, as a deque's
        line = self._lines[key]
        item = line.popleft()
        if line:
            self._turns.append(key)
        else:
            del self._lines[key]
        self._size -= 1
        return item

    def clear(self) -> None:
        self._lines.clear()
        self._turns.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0
