"""Quickstart: build a task-robust problem in NumPy, solve it with two
methods, and print the certified gaps.

    pip install ./python        # once, in a virtual environment
    python examples/python/quickstart.py
"""

import numpy as np

import taskrobust

# Twelve least-squares tasks in d = 20: nine similar ones and three outliers.
rng = np.random.default_rng(0)
d, n = 20, 500
shared = rng.normal(size=d)
xs, ys = [], []
for i in range(12):
    x = rng.normal(size=(n, d))
    beta = shared + (3.0 if i >= 9 else 0.3) * rng.normal(size=d)
    xs.append(x)  # C-contiguous float64: read in place, not copied
    ys.append(x @ beta + 0.1 * rng.normal(size=n))

problem = taskrobust.Problem.least_squares(xs, ys)
print(problem)

for method in ["average", "softmax-gd"]:
    result = taskrobust.solve(problem, method=method, iters=300)
    print(
        f"{method:>11}: worst-task loss {result.max_loss:.6f}, certified OPT >= "
        f"{result.lower_bound:.6f}, gap {result.gap:.2e} ({result.certificate.kind} certificate)"
    )

# The full report, as `taskrobust solve` prints it:
print()
print(result)

# A bound from the theory, next to the measurement.
print(
    "smoothing bias mu ln M at the final temperature:",
    taskrobust.bounds.smoothing_bias(result.mu, problem.num_tasks),
)
