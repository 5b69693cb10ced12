"""standin/model/memo.py: a dict emptied when its byte budget (or its count) is full."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from standin.model.memo import Memo


def test_values_are_found_until_the_budget_is_full_then_all_are_forgotten():
    memo: Memo[str, bytes] = Memo(10)
    get = memo.get  # bound once, as the hot paths hold it
    memo.put("a", b"1", 4)
    memo.put("b", b"2", 4)
    assert get("a") == b"1" and get("b") == b"2" and get("c") is None
    assert memo.held_bytes == 8 and len(memo) == 2 and "a" in memo
    memo.put("c", b"3", 4)  # 12 > 10: emptied first
    assert get("a") is None and get("b") is None and get("c") == b"3"
    assert memo.held_bytes == 4 and list(memo) == ["c"]
    memo.put("huge", b"x", 11)  # larger than the whole budget: not kept, nothing forgotten
    assert get("huge") is None and get("c") == b"3"
    memo.clear()
    assert get("c") is None and memo.held_bytes == 0 and len(memo) == 0
    memo.put("d", b"4", 1)
    assert get("d") == b"4"  # the bound get still reads the memo after a clear


def test_a_count_bound_empties_it_too():
    memo: Memo[int, int] = Memo(1 << 20, max_entries=3)
    for k in range(7):
        memo.put(k, k, 1)
        assert len(memo) <= 3 and memo.get(k) == k
    assert sorted(memo) == [6]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.lists(st.tuples(st.integers(0, 20), st.integers(0, 60)), max_size=60))
def test_what_it_holds_is_within_its_budget_and_what_was_put_last(budget, puts):
    memo: Memo[int, int] = Memo(budget, max_entries=5)
    sizes: dict[int, int] = {}
    for key, size in puts:
        if key in memo:  # the callers put only what they did not find
            continue
        memo.put(key, size, size)
        if size <= budget:
            assert memo.get(key) == size
            sizes = {k: v for k, v in sizes.items() if k in memo}
            sizes[key] = size
        assert memo.held_bytes == sum(sizes[k] for k in memo) <= budget and len(memo) <= 5
