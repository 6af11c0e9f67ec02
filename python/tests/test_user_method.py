"""A method written in Python runs through the core's runner (run_method),
on a built-in family, and is certified like the built-in methods."""

import numpy as np
import pytest

import taskrobust
from conftest import data_tasks, quadratic_tasks


def softmax(losses, mu):
    z = (losses - losses.max()) / mu
    w = np.exp(z)
    return w / w.sum()


class SoftmaxGd:
    """softmax-gd with fixed mu and step, written in Python: p = softmax(f/mu),
    theta <- theta - step * sum_i p_i grad f_i (the runner projects)."""

    def __init__(self, mu, step):
        self.mu, self.step_size = mu, step

    def step(self, problem, theta, iteration):
        losses = problem.losses(theta)
        p = softmax(losses, self.mu)
        _, gradient = problem.evaluate(theta, p)
        nxt = problem.project(theta - self.step_size * gradient)
        return nxt, softmax(problem.losses(nxt), self.mu)


class Subgradient:
    """The worst task's gradient step, 1/sqrt(t+1) steps; one-hot weights."""

    def __init__(self):
        self.seen = []

    def step(self, problem, theta, iteration):
        self.seen.append(theta.copy())
        losses = problem.losses(theta)
        worst = int(np.argmax(losses))
        g = problem.task_gradient(worst, theta)
        nxt = theta - 0.5 / np.sqrt(iteration + 1) * g / max(np.linalg.norm(g), 1e-12)
        weights = np.zeros(problem.num_tasks)
        weights[int(np.argmax(problem.losses(problem.project(nxt))))] = 1.0
        return nxt, weights


def test_a_python_softmax_gd_reproduces_the_built_in_one():
    xs, ys = data_tasks(4)
    problem = taskrobust.Problem.least_squares(xs, ys, radius=2.0)
    # Certificates on the way only at the start (certify_every > iters): the
    # returned point's bound comes from the method's own last weights.
    built_in = taskrobust.solve(problem, mu=0.05, step=0.02, iters=50, certify_every=1000)
    mine = taskrobust.run_method(problem, SoftmaxGd(0.05, 0.02), iters=50, certify_every=1000)
    assert mine.method == "SoftmaxGd"
    assert mine.iterations == built_in.iterations == 50
    np.testing.assert_allclose(mine.theta, built_in.theta, rtol=1e-10, atol=1e-13)
    assert mine.max_loss == pytest.approx(built_in.max_loss, rel=1e-10)
    # Certified as the built-in method is: the same kind of certificate, and
    # the lower bound within rounding (same point, same weights).
    assert mine.certificate.kind == built_in.certificate.kind
    assert mine.lower_bound == pytest.approx(built_in.lower_bound, rel=1e-9)
    assert mine.gap >= 0
    assert len(mine.history["max_loss"]) == 51


@pytest.mark.parametrize("radius", [None, 0.1])
def test_a_python_method_is_certified_below_opt(radius):
    a, c, b = quadratic_tasks(6, m=5, d=4)
    problem = taskrobust.Problem.quadratic(a, c, b, radius=radius)
    exact = taskrobust.solve(problem, method="exact")
    method = Subgradient()
    result = taskrobust.run_method(problem, method, iters=300, name="my-subgradient")
    seen = method.seen
    assert result.method == "my-subgradient"
    # OPT <= exact's F + its allowance: the Python method's bound is below it.
    assert result.lower_bound <= exact.max_loss + exact.certificate.error_bound
    assert result.max_loss - result.lower_bound <= result.gap
    assert result.gap >= 0 and np.isfinite(result.gap)
    assert np.all(result.weights >= 0) and result.weights.sum() == pytest.approx(1.0)
    if radius is not None:
        # The runner projects every step onto the ball (the optimum is outside).
        assert np.linalg.norm(exact.theta) == pytest.approx(radius)
        norms = [np.linalg.norm(t) for t in seen]
        assert max(norms) <= radius * (1 + 1e-12) and result.iterations == 300
        assert np.linalg.norm(result.theta) <= radius * (1 + 1e-12)
    # certify() of the returned point with its weights gives the same bound.
    again = taskrobust.certify(problem, result.theta, result.weights)
    assert again.lower_bound <= result.max_loss


def test_certify_any_point():
    a, c, b = quadratic_tasks(2)
    problem = taskrobust.Problem.quadratic(a, c, b)
    exact = taskrobust.solve(problem, method="exact")
    at_opt = taskrobust.certify(problem, exact.theta, exact.weights)
    assert at_opt.gap <= 1e-6 * max(1, abs(exact.max_loss))
    anywhere = taskrobust.certify(problem, np.ones(3))
    assert anywhere.lower_bound <= exact.max_loss + exact.certificate.error_bound
    assert anywhere.max_loss >= exact.lower_bound


def test_errors_in_a_python_method_reach_the_caller():
    xs, ys = data_tasks(1)
    problem = taskrobust.Problem.least_squares(xs, ys)

    class Broken:
        def step(self, problem, theta, iteration):
            if iteration == 3:
                raise ZeroDivisionError("my bug")
            return theta, np.ones(problem.num_tasks)

    with pytest.raises(ZeroDivisionError, match="my bug"):
        taskrobust.run_method(problem, Broken(), iters=10)

    class WrongShape:
        def step(self, problem, theta, iteration):
            return theta[:2], np.ones(problem.num_tasks)

    with pytest.raises(ValueError, match="step returned a bad theta: theta: has 2 entries"):
        taskrobust.run_method(problem, WrongShape(), iters=10)
    with pytest.raises(TypeError, match="method: must have a step"):
        taskrobust.run_method(problem, object(), iters=10)


def test_weights_are_divided_by_their_sum():
    a, c, b = quadratic_tasks(2)
    problem = taskrobust.Problem.quadratic(a, c, b)
    theta = np.array([0.3, -0.2, 0.1])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    once = taskrobust.certify(problem, theta, w)
    scaled = taskrobust.certify(problem, theta, 3 * w)
    # The same up to the rounding of w / sum(w).
    assert scaled.lower_bound == pytest.approx(once.lower_bound, rel=1e-14)
    np.testing.assert_allclose(scaled.weights, once.weights, rtol=1e-15)
    losses, gradient = problem.evaluate(theta, 3 * w)
    _, reference = problem.evaluate(theta, w)
    np.testing.assert_allclose(gradient, reference, rtol=1e-14)
