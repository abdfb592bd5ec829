import threading
import time

import pytest

from ctcnet.core.ordered import ordered_map


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_in_the_items_order_whatever_finishes_first(workers):
    def work(i):
        time.sleep(0.002 * (i % 4 == 0))  # every fourth item is slow
        return i * i

    items = [0, None, 2, 3, 4, 5, 6, 7, 8]  # None is an item like any other
    out = list(ordered_map(lambda i: None if i is None else work(i), items, workers))
    assert out == [0, None, 4, 9, 16, 25, 36, 49, 64]


def test_few_items_are_taken_from_the_iterable_before_their_turn():
    taken, yielded = [], []

    def items():
        for i in range(20):
            taken.append(i)
            # Never more than `ahead` at work or waiting, beside the one being handed on.
            assert len(taken) - len(yielded) <= 3 + 1
            yield i

    for result in ordered_map(lambda i: i + 1, items(), workers=2, ahead=3):
        yielded.append(result)
    assert yielded == list(range(1, 21))


def test_the_work_runs_on_threads_and_an_error_is_raised_at_its_turn():
    names = set()

    def work(i):
        names.add(threading.current_thread().name)
        if i == 3:
            raise ValueError("item 3")
        return i

    got = []
    with pytest.raises(ValueError, match="item 3"):
        for result in ordered_map(work, range(10), workers=2, name="probe"):
            got.append(result)
    assert got == [0, 1, 2]
    assert names and all(n.startswith("probe") for n in names)


def test_a_pool_the_caller_keeps_runs_the_work_and_stays_open():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="kept") as pool:
        names = set()

        def work(i):
            names.add(threading.current_thread().name)
            return -i

        assert list(ordered_map(work, range(6), workers=2, pool=pool)) == [0, -1, -2, -3, -4, -5]
        assert names and all(n.startswith("kept") for n in names)
        assert pool.submit(int, "7").result() == 7  # still the caller's to use


def test_a_map_closed_from_one_of_its_own_threads_lets_go_without_joining_itself():
    """A second Ctrl-C unwinding a run let go of a frame generator in one of its pool's
    threads: closing it there joined the thread to itself ("RuntimeError: cannot join current
    thread", printed as an ignored exception)."""
    import threading
    import time

    handed, said = threading.Event(), []

    def work(i):
        if i == 1:  # at work in the pool while the map waits at its first result
            handed.wait(10)
            try:
                results.close()
                said.append("closed")
            except Exception as err:  # noqa: BLE001 (what the closing raised, kept)
                said.append(repr(err))
        return i

    results = ordered_map(work, range(4), workers=2)
    assert next(results) == 0
    handed.set()
    for _ in range(200):
        if said:
            break
        time.sleep(0.05)
    assert said == ["closed"]
