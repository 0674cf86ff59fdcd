"""StreamSlots: no tenant ever holds more than its cap, and released slots come back."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from courier.web.event_stream import StreamSlots

TENANTS = [uuid.UUID(int=n) for n in range(3)]


@given(
    cap=st.integers(min_value=1, max_value=5),
    steps=st.lists(st.tuples(st.booleans(), st.sampled_from(TENANTS)), max_size=60),
)
def test_slots_follow_a_model_and_never_exceed_the_cap(
    cap: int, steps: list[tuple[bool, uuid.UUID]]
) -> None:
    slots = StreamSlots(cap)
    model = dict.fromkeys(TENANTS, 0)
    for opening, tenant in steps:
        if opening:
            granted = slots.acquire(tenant)
            assert granted == (model[tenant] < cap)
            model[tenant] += granted
        elif model[tenant] > 0:  # only a stream that got a slot gives one back
            slots.release(tenant)
            model[tenant] -= 1
        assert all(slots.held(t) == model[t] <= cap for t in TENANTS)
