"""The bound shared by the comparator queue and the Redis publisher's buffer."""

from __future__ import annotations

from shadowproxy.budget import Budget


def test_count_bound() -> None:
    budget = Budget(count_max=2)
    assert budget.take(10**9)  # no byte bound
    assert budget.has_room()
    assert not budget.has_room(pending=1)  # a call in flight would fill the last place
    assert budget.take(1)
    assert not budget.take(1)
    budget.release(1)
    assert budget.take(1)
    assert (2, 10**9 + 1) == (budget.count, budget.held_bytes)


def test_byte_bound_counts_what_is_held_and_what_is_on_its_way() -> None:
    budget = Budget(count_max=100, bytes_max=1000)
    assert budget.take(600)
    assert not budget.take(401)  # would pass the bound
    assert budget.take(400)  # exactly at it
    budget.release(400)
    assert budget.has_room(pending=1, pending_bytes=399)
    assert not budget.has_room(pending=1, pending_bytes=400)
    budget.clear()
    assert (0, 0) == (budget.count, budget.held_bytes)
