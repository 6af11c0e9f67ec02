"""C-contiguous float64 data are read in place; other layouts are copied once."""

import numpy as np

import taskrobust
from taskrobust import _taskrobust
from conftest import data_tasks


def test_c_contiguous_float64_is_not_copied():
    xs, ys = data_tasks(1, n=300, d=8)
    before = _taskrobust._copies()
    problem = taskrobust.Problem.least_squares(xs, ys)
    logistic = taskrobust.Problem.logistic(xs, [np.where(y > 0, 1.0, -1.0) for y in ys], l2=0.1)
    assert _taskrobust._copies() == before
    # The core reads the NumPy buffers themselves.
    assert problem._data_pointers() == [x.ctypes.data for x in xs]
    assert logistic._data_pointers() == [x.ctypes.data for x in xs]
    # The targets too.
    labels = [np.where(y > 0, 1.0, -1.0) for y in ys]
    logistic = taskrobust.Problem.logistic(xs, labels, l2=0.1)
    assert problem._target_pointers() == [y.ctypes.data for y in ys]
    assert logistic._target_pointers() == [y.ctypes.data for y in labels]
    # The same numbers as from a copy.
    copied = taskrobust.Problem.least_squares([np.asfortranarray(x) for x in xs], ys)
    a = taskrobust.solve(problem, iters=20)
    b = taskrobust.solve(copied, iters=20)
    assert a.max_loss == b.max_loss and np.array_equal(a.theta, b.theta)


def test_other_layouts_are_copied_once():
    xs, ys = data_tasks(1, n=300, d=8)
    variants = {
        "fortran": [np.asfortranarray(x) for x in xs],
        "float32": [x.astype(np.float32) for x in xs],
        "strided": [np.repeat(x, 2, axis=0)[::2] for x in xs],
        "lists": [x.tolist() for x in xs],
    }
    for name, layout in variants.items():
        before = _taskrobust._copies()
        problem = taskrobust.Problem.least_squares(layout, ys)
        # Exactly one copy per x (the y's are C-contiguous float64).
        assert _taskrobust._copies() - before == len(xs), name
        for x, pointer in zip(layout, problem._data_pointers()):
            if isinstance(x, np.ndarray):
                assert pointer != x.ctypes.data, name
        result = taskrobust.solve(problem, iters=5)
        reference = taskrobust.solve(taskrobust.Problem.least_squares(xs, ys), iters=5)
        if name != "float32":
            assert np.array_equal(result.theta, reference.theta), name
