"""The finishing thread: every frame finished once, in order; a failure stops the frames behind
it and reaches the submitting thread; at most ``ahead`` frames wait."""

import threading
import time

import pytest

from ctcnet.inference.finishing import FrameFinisher


class Recorder:
    def __init__(self, fail_at=None, delay=0.0):
        self.done, self.threads = [], set()
        self.fail_at, self.delay = fail_at, delay

    def __call__(self, work, proba):
        time.sleep(self.delay)
        self.threads.add(threading.current_thread().name)
        if work == self.fail_at:
            raise KeyError(work)
        self.done.append((work, proba))


@pytest.mark.parametrize("threaded", [False, True])
def test_every_frame_is_finished_once_in_order(threaded):
    finish = Recorder(delay=0.002)
    with FrameFinisher(finish, threaded=threaded, ahead=3) as finisher:
        for start in range(0, 20, 4):
            finisher.submit([(i, -i) for i in range(start, start + 4)])
        finisher.drain()
        assert finish.done == [(i, -i) for i in range(20)]
    names = {n.split("_")[0] for n in finish.threads}
    assert names == ({"ctcnet-finish"} if threaded else {threading.current_thread().name})


def test_the_submitting_thread_waits_rather_than_pile_frames_up():
    finish = Recorder(delay=0.02)
    with FrameFinisher(finish, threaded=True, ahead=2) as finisher:
        finisher.submit([(i, None) for i in range(6)])
        assert len(finish.done) >= 4  # at most two still waiting or running
        assert finisher.waited > 0
    assert len(finish.done) == 6


def test_a_failure_stops_the_frames_behind_it_and_reaches_the_caller():
    finish = Recorder(fail_at=2, delay=0.01)
    with pytest.raises(KeyError), FrameFinisher(finish, threaded=True, ahead=10) as finisher:
        finisher.submit([(i, None) for i in range(6)])
        finisher.drain()
    assert [w for w, _ in finish.done] == [0, 1]


def test_leaving_on_an_error_finishes_the_frame_in_hand_and_drops_the_rest():
    started = threading.Event()
    release = threading.Event()
    done = []

    def finish(work, proba):
        started.set()
        release.wait(5)
        done.append(work)

    with pytest.raises(KeyboardInterrupt):
        with FrameFinisher(finish, threaded=True, ahead=10) as finisher:
            finisher.submit([(i, None) for i in range(5)])
            started.wait(5)
            threading.Timer(0.05, release.set).start()
            raise KeyboardInterrupt
    assert done == [0]
