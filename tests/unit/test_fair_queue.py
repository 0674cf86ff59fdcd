"""The worker's ready rows: every row served once, claim order kept per destination, and
the destinations taking turns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.worker.ready import FairQueue

# A script of operations: ("add", destination) or ("pop", None).
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=0, max_value=5)),
        st.tuples(st.just("pop"), st.none()),
    ),
    max_size=200,
)


def test_a_quiet_destination_waits_for_one_row_of_a_backlog_not_all_of_it() -> None:
    queue: FairQueue[str] = FairQueue()
    for n in range(128):
        queue.append("noisy", f"noisy-{n}")
    queue.append("quiet", "quiet-0")
    assert [queue.popleft(), queue.popleft()] == ["noisy-0", "quiet-0"]
    assert len(queue) == 127


def test_an_empty_queue_raises_and_clear_empties() -> None:
    queue: FairQueue[int] = FairQueue()
    with pytest.raises(IndexError):
        queue.popleft()
    queue.append("a", 1)
    queue.append("b", 2)
    queue.clear()
    assert not queue and len(queue) == 0
    with pytest.raises(IndexError):
        queue.popleft()


@given(operations)
def test_every_row_once_in_claim_order_per_destination(
    script: list[tuple[str, int | None]],
) -> None:
    queue: FairQueue[tuple[int, int]] = FairQueue()
    added: list[tuple[int, int]] = []
    popped: list[tuple[int, int]] = []
    for op, key in script:
        if op == "add" and key is not None:
            item = (key, len(added))
            queue.append(key, item)
            added.append(item)
        elif queue:
            popped.append(queue.popleft())
        assert len(queue) == len(added) - len(popped)
    while queue:
        popped.append(queue.popleft())
    assert sorted(popped) == sorted(added)
    for key in {k for k, _ in added}:
        assert [i for i in popped if i[0] == key] == [i for i in added if i[0] == key]


@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=100))
def test_waiting_destinations_take_turns(keys: list[int]) -> None:
    queue: FairQueue[int] = FairQueue()
    for n, key in enumerate(keys):
        queue.append(key, n)
    order = [keys[queue.popleft()] for _ in range(len(keys))]
    # While k destinations still wait, the next k rows come from k different ones.
    for at in range(len(order)):
        waiting = len(set(order[at:]))
        window = order[at : at + waiting]
        assert len(set(window)) == len(window), (order, at)
