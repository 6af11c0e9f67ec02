"""Every class of bad input raises ValueError or TypeError with the command
line's one-line message, the field renamed to the Python argument."""

import json

import numpy as np
import pytest

import taskrobust
from conftest import data_tasks, quadratic_tasks, write_problem


def cli_message(cli, *args):
    status, out, err = cli(*args)
    assert status == 2, (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prefix = "taskrobust: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


def after_field(message):
    """The message without its field (the part both interfaces share)."""
    return message.split(": ")[-1]


@pytest.fixture
def problem_file(tmp_path):
    xs, ys = data_tasks(1)
    return write_problem(tmp_path, "least_squares", xs=xs, ys=ys), (xs, ys)


@pytest.mark.parametrize(
    "option,python,value",
    [
        ("--mu", "mu", -1.0),
        ("--mu", "mu", 0.0),
        ("--step", "step", -0.5),
        ("--iters", "iters", 0),
        ("--iters", "iters", -3),
        ("--method", "method", "newton"),
        ("--distance", "distance", float("nan")),
        ("--weight-step", "weight_step", -2.0),
    ],
)
def test_bad_options_raise_the_cli_message(problem_file, cli, option, python, value):
    path, (xs, ys) = problem_file
    expected = cli_message(cli, "solve", path, option, value)
    assert expected.startswith(option + ":")
    problem = taskrobust.Problem.least_squares(xs, ys)
    with pytest.raises(ValueError) as raised:
        taskrobust.solve(problem, **{python: value})
    assert str(raised.value) == python + expected[len(option):]


def test_stochastic_on_quadratics_is_refused_as_by_the_cli(tmp_path, cli):
    a, c, b = quadratic_tasks(1)
    path = write_problem(tmp_path, "quadratic", a=a, c=c, b=b)
    expected = cli_message(cli, "solve", path, "--method", "stochastic")
    with pytest.raises(ValueError) as raised:
        taskrobust.solve(taskrobust.Problem.quadratic(a, c, b), method="stochastic")
    assert str(raised.value) == "method" + expected[len("--method"):]


def data_error(tmp_path, cli, kind, xs, ys, field, **kw):
    """The CLI's message and Python's for the same bad data."""
    path = write_problem(tmp_path, kind, xs=xs, ys=ys, **kw)
    expected = cli_message(cli, "solve", path)
    build = taskrobust.Problem.logistic if kind == "logistic" else taskrobust.Problem.least_squares
    with pytest.raises(ValueError) as raised:
        build(xs, ys, **kw)
    got = str(raised.value)
    assert got.startswith(field + ": "), got
    assert after_field(got) == after_field(expected), (got, expected)
    return got


def test_nan_in_x(tmp_path, cli):
    xs, ys = data_tasks(1)
    xs[2][3, 1] = np.nan
    got = data_error(tmp_path, cli, "least_squares", xs, ys, "xs[2]")
    assert "entry [3, 1] is NaN" in got


def test_infinity_in_y(tmp_path, cli):
    xs, ys = data_tasks(1)
    ys[1][4] = np.inf
    data_error(tmp_path, cli, "least_squares", xs, ys, "ys[1]")


def test_labels_other_than_plus_minus_one(tmp_path, cli):
    xs, ys = data_tasks(2, logistic=True)
    ys[0][5] = 0.5
    data_error(tmp_path, cli, "logistic", xs, ys, "ys[0]", l2=0.1)


def test_y_length_differs_from_x_rows(tmp_path, cli):
    xs, ys = data_tasks(1)
    ys[1] = ys[1][:-2]
    path = write_problem(tmp_path, "least_squares", xs=xs, ys=ys)
    expected = cli_message(cli, "solve", path)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.least_squares(xs, ys)
    assert str(raised.value) == f"ys[1]: has {len(ys[1])} entries but xs[1] has {len(xs[1])} rows"
    assert f"has {len(ys[1])} entries but" in expected


def test_ragged_dimensions(tmp_path, cli):
    xs, ys = data_tasks(1)
    xs[3] = np.ascontiguousarray(xs[3][:, :4])
    path = write_problem(tmp_path, "least_squares", xs=xs, ys=ys)
    expected = cli_message(cli, "solve", path)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.least_squares(xs, ys)
    assert str(raised.value) == "xs[3]: has 4 columns, expected 5 (as xs[0])"
    assert "has 4 columns, expected 5" in expected


def test_wrong_number_of_dimensions():
    xs, ys = data_tasks(1)
    with pytest.raises(ValueError, match=r"^xs\[0\]: must be a 2-D array \(samples x features\), got 1 dimension\(s\) \[5\]$"):
        taskrobust.Problem.least_squares([xs[0][0]] + xs[1:], ys)


def test_no_tasks(tmp_path, cli):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "least_squares", "tasks": []}))
    expected = cli_message(cli, "solve", path)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.least_squares([], [])
    assert str(raised.value) == "xs: no tasks given"
    assert expected.endswith("tasks: no tasks given")


def test_bad_radius_and_l2(tmp_path, cli):
    xs, ys = data_tasks(2, logistic=True)
    for kw, field in [(dict(radius=-1.0, l2=0.1), "radius"), (dict(l2=0.0), "l2")]:
        path = write_problem(tmp_path, "logistic", xs=xs, ys=ys, **kw)
        expected = cli_message(cli, "solve", path)
        with pytest.raises(ValueError) as raised:
            taskrobust.Problem.logistic(xs, ys, **kw)
        assert str(raised.value) == field + ": " + after_field(expected)


def test_non_psd_quadratic(tmp_path, cli):
    a, c, b = quadratic_tasks(1)
    a[1] = -a[1]
    path = write_problem(tmp_path, "quadratic", a=a, c=c, b=b)
    expected = cli_message(cli, "solve", path)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.quadratic(a, c, b)
    assert str(raised.value).startswith("a[1]: ")
    assert after_field(str(raised.value)) == after_field(expected)


def test_non_symmetric_quadratic(tmp_path, cli):
    a, c, b = quadratic_tasks(1)
    a[0][0, 1] += 1.0
    path = write_problem(tmp_path, "quadratic", a=a, c=c, b=b)
    expected = cli_message(cli, "solve", path)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.quadratic(a, c, b)
    assert str(raised.value).startswith("a[0]: ")
    assert after_field(str(raised.value)) == after_field(expected)


def test_from_file_errors_are_the_cli_lines(tmp_path, cli):
    missing = tmp_path / "missing.json"
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "least_squares", "tasks": [{"x_path": "nope.npy", "y": [1.0]}]}')
    for path in [missing, bad]:
        expected = cli_message(cli, "solve", path)
        with pytest.raises(ValueError) as raised:
            taskrobust.Problem.from_file(path)
        assert str(raised.value) == expected


def test_overflow_is_refused_as_by_the_cli(tmp_path, cli):
    a, c, b = quadratic_tasks(1)
    c[2] = 1e300
    path = write_problem(tmp_path, "quadratic", a=a, c=c, b=b)
    expected = cli_message(cli, "solve", path)
    assert "overflows f64" in expected
    # Refused when the problem is built (the CLI's check at theta = 0).
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.quadratic(a, c, b)
    assert str(raised.value).startswith("c[2]: ")
    assert after_field(str(raised.value)) == after_field(expected)
    with pytest.raises(ValueError) as raised:
        taskrobust.Problem.from_file(path)
    assert str(raised.value) == expected


def test_wrong_types_raise_type_error():
    xs, ys = data_tasks(1)
    with pytest.raises(TypeError, match=r"^xs\[0\]: must be an array of numbers"):
        taskrobust.Problem.least_squares([[["a", "b"]]] + xs[1:], ys)
    with pytest.raises(TypeError, match=r"^xs\[1\]: must be an array of numbers, got None$"):
        taskrobust.Problem.least_squares([xs[0], None], ys[:2])
    with pytest.raises(TypeError, match=r"^xs: must be a sequence of arrays"):
        taskrobust.Problem.least_squares(3, ys)
    problem = taskrobust.Problem.least_squares(xs, ys)
    with pytest.raises(TypeError):
        taskrobust.solve(problem, iters="many")
    with pytest.raises(TypeError, match="callback: must be callable"):
        taskrobust.solve(problem, callback=5)
    with pytest.raises(TypeError):
        taskrobust.solve("not a problem")


def test_theta_and_weights_are_checked():
    xs, ys = data_tasks(1)
    problem = taskrobust.Problem.least_squares(xs, ys)
    with pytest.raises(ValueError, match=r"^theta: has 3 entries, the problem has dimension 5$"):
        taskrobust.certify(problem, np.zeros(3))
    with pytest.raises(ValueError, match=r"^theta: entry 1 is NaN"):
        problem.losses([0.0, np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match=r"^weights: entry 0 is -1"):
        taskrobust.certify(problem, np.zeros(5), weights=[-1.0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"^init: has 2 entries, the problem has dimension 5$"):
        taskrobust.solve(problem, init=[0.0, 0.0])
