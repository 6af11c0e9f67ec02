#!/usr/bin/env python3
"""JAX (CPU) softmax-gd: a second peer, in place of PyTorch (whose PyPI wheel
is the CUDA build, too heavy to install here).

Same problem files, iteration and output as softmax_gd.py: the data form,

    p = softmax(f(theta) / mu);  theta <- theta - step * sum_i p_i grad f_i(theta)

T times from theta = 0, the whole loop jit-compiled (lax.fori_loop over
tasks stacked into one M x n x d array: the generated tasks have equal n).
--dtype f64 turns on jax_enable_x64; --dtype f32 keeps float32 arrays and
arithmetic (JAX's default). Timed from before np.load to the final losses,
jit compilation included (as a user running it once sees it); the compile
time is also reported alone.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem")
    parser.add_argument("--mu", type=float, required=True)
    parser.add_argument("--step", type=float, required=True)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--form", choices=["data"], default="data")
    parser.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_platforms", "cpu")
    if args.dtype == "f64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    dtype = np.float32 if args.dtype == "f32" else np.float64
    start = time.perf_counter()
    with open(args.problem) as f:
        problem = json.load(f)
    kind = problem["kind"]
    if kind not in ("least_squares", "logistic") or problem.get("radius") is not None:
        sys.exit(f"{args.problem}: an unconstrained data problem is needed")
    base = os.path.dirname(os.path.abspath(args.problem))
    xs = [np.load(os.path.join(base, t["x_path"])).astype(dtype, copy=False) for t in problem["tasks"]]
    ys = [np.load(os.path.join(base, t["y_path"])).astype(dtype, copy=False) for t in problem["tasks"]]
    if len({len(y) for y in ys}) != 1:
        sys.exit(f"{args.problem}: the JAX peer needs equal sample counts")
    x = jnp.asarray(np.stack(xs))
    y = jnp.asarray(np.stack(ys))
    del xs, ys
    n = x.shape[1]
    l2 = dtype(problem.get("l2") or 0.0)
    mu, step = dtype(args.mu), dtype(args.step)
    loaded = time.perf_counter()

    def losses_and_slopes(theta):
        z = jnp.einsum("mnd,d->mn", x, theta)
        if kind == "least_squares":
            r = z - y
            return 0.5 * jnp.mean(r * r, axis=1), r / n
        margin = y * z
        losses = jnp.mean(jnp.logaddexp(0.0, -margin), axis=1) + 0.5 * l2 * (theta @ theta)
        return losses, -y * jnp.exp(-jnp.logaddexp(0.0, margin)) / n

    def body(_, theta):
        losses, slopes = losses_and_slopes(theta)
        p = jax.nn.softmax(losses / mu)
        gradient = jnp.einsum("mn,mnd->d", p[:, None] * slopes, x) + l2 * theta
        return theta - step * gradient

    @jax.jit
    def solve(theta):
        theta = lax.fori_loop(0, args.iters, body, theta)
        return theta, losses_and_slopes(theta)[0]

    theta0 = jnp.zeros(x.shape[2], dtype=dtype)
    compiled = solve.lower(theta0).compile()
    compile_done = time.perf_counter()
    theta, losses = compiled(theta0)
    losses = np.asarray(losses.block_until_ready())
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "kind": kind,
                "form": "data",
                "dtype": args.dtype,
                "iterations": args.iters,
                "max_loss": float(losses.max()),
                "losses": losses.tolist(),
                "seconds_load": loaded - start,
                "seconds_compile": compile_done - loaded,
                "seconds_solve": done - compile_done,
                "seconds": done - start,
                "jax": jax.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
