"""The rest of the API: bounds, help texts, stubs, history, reproduce."""

import inspect
import pathlib
import re

import numpy as np
import pytest

import taskrobust
from conftest import ROOT, data_tasks


def test_every_bound_of_the_core_is_a_python_function():
    source = (ROOT / "core/src/theory/bounds.rs").read_text()
    names = re.findall(r"^pub fn (\w+)\(", source, re.M)
    assert len(names) >= 20
    for name in names:
        assert callable(getattr(taskrobust.bounds, name)), name
        assert getattr(taskrobust.bounds, name).__doc__, name
    stub = (pathlib.Path(taskrobust.__file__).parent / "bounds.pyi").read_text()
    for name in names:
        assert f"def {name}(" in stub, name


def test_bounds_compute_the_stated_formulas():
    b = taskrobust.bounds
    assert b.smoothing_bias(0.5, 8) == 0.5 * np.log(8)
    assert b.smoothed_smoothness(2.0, 3.0, 0.5) == 2.0 + 9.0 / 0.5
    t, mu, m, l_mu, r = 100, 0.1, 4, 20.0, 1.5
    assert b.softmax_gd_fixed_mu(t, mu, m, l_mu, r) == pytest.approx(mu * np.log(m) + l_mu * r**2 / (2 * t), rel=1e-15)
    assert b.softmax_gd_fixed_mu(0, mu, m, l_mu, r) == float("inf")
    assert b.subgradient(100, 2.0, 3.0) > 0
    eta_x, eta_q = b.descent_ascent_steps(100, 1.0, 2.0, 3.0, 4)
    assert eta_x > 0 and eta_q > 0
    assert len(b.plugin_softmax_bias([1.0, 2.0], [0.5, 0.5], 0.3, 16)) == 2


def test_help_is_useful():
    doc = taskrobust.solve.__doc__
    for word in ["softmax-gd", "mu", "iters", "callback", "Ctrl-C", "ValueError"]:
        assert word in doc, word
    assert "problem" in str(inspect.signature(taskrobust.solve))
    assert str(inspect.signature(taskrobust.solve)).startswith("(problem, method='softmax-gd', mu=None, step=None, iters=200, seed=0, callback=None")
    assert "least-squares" in taskrobust.Problem.least_squares.__doc__.lower() or "least" in taskrobust.Problem.least_squares.__doc__.lower()
    package = pathlib.Path(taskrobust.__file__).parent
    assert (package / "py.typed").exists() and (package / "__init__.pyi").exists()


def test_history_and_repr():
    xs, ys = data_tasks(1)
    problem = taskrobust.Problem.least_squares(xs, ys)
    result = taskrobust.solve(problem, iters=25)
    history = result.history
    assert history["iteration"].tolist() == list(range(26))
    assert history["weights"].shape == (26, 4)
    # The history records the losses of the solver's own evaluation (the
    # Gram form for these tasks); the result recomputes F at the returned
    # point from the samples, which may differ in the last bits.
    np.testing.assert_allclose(history["max_loss"][-1], result.max_loss, rtol=1e-12)
    np.testing.assert_allclose(history["weights"].sum(axis=1), 1.0, rtol=1e-12)
    text = repr(result)
    assert text.splitlines()[0] == "taskrobust solve  <arrays>  (least_squares, M = 4 tasks, d = 5)"
    assert "certified: OPT >= D(p)" in text
    assert repr(problem) == "Problem(least_squares, M=4, d=5)"


def test_reproduce_writes_the_report(tmp_path):
    report = taskrobust.reproduce(out=tmp_path / "figs", quick=True, only=["certificate_validity"])
    assert "checks" in report and report["checks"]
    assert (tmp_path / "figs" / "report.json").exists()
    with pytest.raises(ValueError):
        taskrobust.reproduce(out=tmp_path / "x", only=["no-such-experiment"])
