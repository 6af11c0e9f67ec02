#!/usr/bin/env python3
"""Plain NumPy softmax-gd: the peer that `taskrobust solve` is compared with.

Reads a taskrobust problem file (least_squares or logistic, data in .npy
files, no radius) and runs exactly the iteration of cli-contract.md:

    p = softmax(f(theta) / mu);  theta <- theta - step * sum_i p_i grad f_i(theta)

T times from theta = 0, then prints one JSON line with the final losses,
max_loss and the time taken (load and solve separately; interpreter start-up
and `import numpy` are not counted, which favours NumPy).

--dtype f32 runs NumPy's float32 best form: the arrays stay float32 (as
loaded from '<f4' files, or cast once where the files are '<f8'), theta and
every product are float32 (sgemv/ssyrk, float32 accumulation: NumPy's
default for float32 arrays). The final losses are then float32 values too.

Forms (least squares):
  data: two BLAS-2 passes over every X_i per iteration (X theta, then X^T r).
  gram: G_i = X_i^T X_i / n_i once (BLAS-3; NumPy calls syrk for X.T @ X),
        then one batched GEMV over the M d x d Gram matrices per iteration.
Logistic regression has only the data form (two passes per iteration).
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def load(path, dtype):
    with open(path) as f:
        problem = json.load(f)
    kind = problem["kind"]
    if kind not in ("least_squares", "logistic"):
        sys.exit(f"{path}: kind {kind!r} is not a data problem")
    if problem.get("radius") is not None:
        sys.exit(f"{path}: the peer handles unconstrained problems only")
    base = os.path.dirname(os.path.abspath(path))
    xs, ys = [], []
    for task in problem["tasks"]:
        x = np.load(os.path.join(base, task["x_path"]))
        y = np.load(os.path.join(base, task["y_path"]))
        # No copy where the file already has the type.
        xs.append(x.astype(dtype, copy=False))
        ys.append(y.astype(dtype, copy=False))
    return kind, problem.get("l2"), xs, ys


def softmax(losses, mu):
    z = (losses - losses.max()) / mu
    e = np.exp(z)
    return e / e.sum()


def least_squares_data(xs, ys, theta, mu, step, iters):
    m = len(xs)
    dtype = theta.dtype
    inv_n = np.array([1.0 / len(y) for y in ys], dtype=dtype)
    residuals = [None] * m
    losses = np.empty(m, dtype=dtype)
    for _ in range(iters):
        for i in range(m):
            r = xs[i] @ theta - ys[i]
            residuals[i] = r
            losses[i] = 0.5 * (r @ r) * inv_n[i]
        p = softmax(losses, mu)
        gradient = np.zeros_like(theta)
        for i in range(m):
            gradient += (p[i] * inv_n[i]) * (residuals[i] @ xs[i])
        theta = theta - step * gradient
    return theta


def gram_set_up(xs, ys):
    dtype = xs[0].dtype
    grams = np.stack([(x.T @ x) / dtype.type(len(y)) for x, y in zip(xs, ys)])
    linear = np.stack([(y @ x) / dtype.type(len(y)) for x, y in zip(xs, ys)])
    constants = np.array([(y @ y) / dtype.type(2.0 * len(y)) for y in ys], dtype=dtype)
    return grams, linear, constants


def least_squares_gram(grams, linear, constants, theta, mu, step, iters):
    for _ in range(iters):
        q = grams @ theta  # (M, d): one batched GEMV
        gradients = q - linear
        losses = 0.5 * (q @ theta) - linear @ theta + constants
        p = softmax(losses, mu)
        theta = theta - step * (p @ gradients)
    return theta


def least_squares_losses(xs, ys, theta):
    return np.array([0.5 * np.mean((x @ theta - y) ** 2) for x, y in zip(xs, ys)])


def logistic_data(xs, ys, l2, theta, mu, step, iters):
    m = len(xs)
    dtype = theta.dtype
    l2 = dtype.type(l2)
    inv_n = np.array([1.0 / len(y) for y in ys], dtype=dtype)
    slopes = [None] * m
    losses = np.empty(m, dtype=dtype)
    for _ in range(iters):
        for i in range(m):
            margin = ys[i] * (xs[i] @ theta)
            losses[i] = np.logaddexp(dtype.type(0.0), -margin).mean()
            # d/dz softplus(-y z) = -y sigmoid(-y z)
            slopes[i] = -ys[i] * np.exp(-np.logaddexp(dtype.type(0.0), margin))
        losses += dtype.type(0.5) * l2 * (theta @ theta)
        p = softmax(losses, mu)
        gradient = l2 * theta
        for i in range(m):
            gradient = gradient + (p[i] * inv_n[i]) * (slopes[i] @ xs[i])
        theta = theta - step * gradient
    return theta


def logistic_losses(xs, ys, l2, theta):
    return np.array(
        [np.logaddexp(0.0, -y * (x @ theta)).mean() for x, y in zip(xs, ys)]
    ) + 0.5 * l2 * (theta @ theta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem")
    parser.add_argument("--mu", type=float, required=True)
    parser.add_argument("--step", type=float, required=True)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--form", choices=["data", "gram"], default="data")
    parser.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    args = parser.parse_args()
    dtype = np.dtype(np.float32 if args.dtype == "f32" else np.float64)

    start = time.perf_counter()
    kind, l2, xs, ys = load(args.problem, dtype)
    loaded = time.perf_counter()
    theta = np.zeros(xs[0].shape[1], dtype=dtype)
    mu, step = dtype.type(args.mu), dtype.type(args.step)
    if kind == "logistic":
        form = "data"
        theta = logistic_data(xs, ys, l2, theta, mu, step, args.iters)
        losses = logistic_losses(xs, ys, l2, theta)
    elif args.form == "gram":
        form = "gram"
        grams, linear, constants = gram_set_up(xs, ys)
        theta = least_squares_gram(grams, linear, constants, theta, mu, step, args.iters)
        losses = least_squares_losses(xs, ys, theta)
    else:
        form = "data"
        theta = least_squares_data(xs, ys, theta, mu, step, args.iters)
        losses = least_squares_losses(xs, ys, theta)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "kind": kind,
                "form": form,
                "dtype": args.dtype,
                "iterations": args.iters,
                "max_loss": float(losses.max()),
                "losses": losses.tolist(),
                "seconds_load": loaded - start,
                "seconds_solve": done - loaded,
                "seconds": done - start,
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
