"""taskrobust: task-robust (minimax) pre-training with certified duality gaps.

Solve min_theta max_i f_i(theta) over M convex task losses with the
softmax-weighted gradient descent of Wang, Chen, Xie, Fang and Lin (NeurIPS
2023) and its baselines; every result carries a lower bound on OPT that is
certified in floating point, and the gap F(theta) - OPT <= gap.

    import numpy as np, taskrobust
    problem = taskrobust.Problem.least_squares(xs, ys)     # lists of arrays
    result = taskrobust.solve(problem, method="softmax-gd", iters=200)
    print(result)                   # the command line's table
    result.gap, result.theta, result.history["max_loss"]

The numbers are those of `taskrobust solve --format json` on the same
problem. Arrays are NumPy arrays; C-contiguous float64 data are read in
place. Bad input raises ValueError (TypeError for wrong types) with the
command line's one-line message, naming the argument.

Contents: Problem, solve, certify, run_method (your own method in Python),
bounds (the convergence bounds), transfer, reproduce.
"""

from ._taskrobust import (
    Certificate,
    Problem,
    SolveResult,
    __version__,
    certify,
    reproduce,
    run_method,
    solve,
    transfer,
)
from . import bounds

METHODS = (
    "softmax-gd",
    "accelerated",
    "stochastic",
    "descent-ascent",
    "subgradient",
    "average",
    "exact",
)
"""The built-in methods, by the names solve(method=...) takes."""

__all__ = [
    "Certificate",
    "METHODS",
    "Problem",
    "SolveResult",
    "bounds",
    "certify",
    "reproduce",
    "run_method",
    "solve",
    "transfer",
    "__version__",
]
