"""Solves release the GIL, and Ctrl-C (or an exception from the callback)
stops a long solve cleanly."""

import _thread
import signal
import threading
import time

import numpy as np
import pytest

import taskrobust
from conftest import data_tasks


@pytest.fixture(scope="module")
def long_problem():
    # Data tasks in the data form (wide: n < d), slow enough per iteration.
    xs, ys = data_tasks(3, m=8, n=200, d=400)
    return taskrobust.Problem.least_squares(xs, ys)


@pytest.fixture
def sigint_handled():
    # A process started in the background by a non-interactive shell
    # inherits SIGINT ignored, and interrupt_main then does nothing: give
    # SIGINT Python's own handler, as an interactive session has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_a_long_solve(long_problem, sigint_handled):
    # The same signal Ctrl-C sends, delivered to the main thread while it
    # is inside the solve.
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    # Uninterrupted, this solve takes tens of seconds (about 0.4 ms per
    # iteration): Python alone would raise KeyboardInterrupt only after it.
    with pytest.raises(KeyboardInterrupt):
        taskrobust.solve(long_problem, iters=50_000)
    elapsed = time.perf_counter() - start
    timer.cancel()
    assert elapsed < 5, elapsed
    # Nothing is left broken: the next solve runs normally.
    result = taskrobust.solve(long_problem, iters=3)
    assert result.iterations == 3 and result.gap >= 0


def test_the_gil_is_released_during_a_solve(long_problem):
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    time.sleep(0.05)
    before = len(ticks)
    result = taskrobust.solve(long_problem, iters=3000)
    during = len(ticks) - before
    stop.set()
    thread.join()
    assert result.seconds > 0.3, "the solve should take a while"
    # While the solve holds the GIL, the counter cannot tick (at most once
    # on entry and once on exit); released, it ticks about every millisecond.
    assert during >= 20, (during, result.seconds)


def test_a_callback_sees_every_iteration_and_can_stop_the_solve(long_problem):
    seen = []

    def callback(iteration, max_loss, theta):
        seen.append((iteration, max_loss, theta.copy()))

    result = taskrobust.solve(long_problem, iters=12, callback=callback)
    assert [s[0] for s in seen] == list(range(1, 13))
    assert seen[-1][1] == pytest.approx(result.history["max_loss"][-1], rel=1e-15)
    np.testing.assert_array_equal(seen[-1][2], result.theta)

    def interrupt(iteration, max_loss, theta):
        if iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        taskrobust.solve(long_problem, iters=1000, callback=interrupt)

    class Mine(Exception):
        pass

    def fail(iteration, max_loss, theta):
        raise Mine("stop here")

    with pytest.raises(Mine, match="stop here"):
        taskrobust.solve(long_problem, iters=1000, callback=fail)
