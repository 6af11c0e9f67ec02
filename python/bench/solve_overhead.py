"""Benchmark (not a test): taskrobust.solve from Python against the core
crate's solve on the same arrays, M = 16 tasks, n_i = 8192, d = 256.

    python python/bench/solve_overhead.py [--rounds 3] [--block 7] [--iters 200]

Writes the arrays once (raw little-endian f64) for the Rust side
(bench/examples/solve_timing.rs, built here with cargo), then alternates:
`block` Python solves, then one Rust process timing `block` solves, `rounds`
times, so that load from other processes hits both alike; each side first runs one untimed solve. Building the problem and loading the files are
excluded on both sides. Prints the medians and their ratio as JSON.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

import taskrobust

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=7, help="solves per side in a row")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    m, n, d = args.tasks, args.samples, args.dim

    rng = np.random.default_rng(0)
    shared = rng.normal(size=d)
    xs, ys = [], []
    for i in range(m):
        x = rng.normal(size=(n, d))
        beta = shared + (1.0 + i / m) * rng.normal(size=d)
        xs.append(x)
        ys.append(x @ beta + 0.1 * rng.normal(size=n))

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "taskrobust-bench", "--example", "solve_timing"],
        cwd=ROOT,
        check=True,
    )
    binary = ROOT / "target/release/examples/solve_timing"
    python_seconds, rust_seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        for i, (x, y) in enumerate(zip(xs, ys)):
            x.astype("<f8").tofile(folder / f"x{i}.f64")
            y.astype("<f8").tofile(folder / f"y{i}.f64")
        (folder / "shape.txt").write_text(f"{m} {n} {d} {args.iters}")
        problem = taskrobust.Problem.least_squares(xs, ys)
        taskrobust.solve(problem, iters=args.iters)  # untimed, as on the Rust side
        # Blocks, not single solves: a Rust process that has just read and
        # freed 270 MB leaves the kernel compacting memory, which slowed the
        # next Python solve by up to 60% when the two sides alternated solve
        # by solve (measured on an idle 2-core machine).
        for _ in range(args.rounds):
            for _ in range(args.block):
                start = time.perf_counter()
                result = taskrobust.solve(problem, iters=args.iters)
                python_seconds.append(time.perf_counter() - start)
            out = subprocess.run(
                [binary, folder, str(args.block)], capture_output=True, text=True, check=True
            )
            rust = json.loads(out.stdout)
            rust_seconds.extend(rust["seconds"])
            assert rust["max_loss"] == result.max_loss, (rust["max_loss"], result.max_loss)
    python_median = statistics.median(python_seconds)
    rust_median = statistics.median(rust_seconds)
    print(
        json.dumps(
            {
                "shape": {"M": m, "n_i": n, "d": d, "iters": args.iters},
                "python_seconds": python_seconds,
                "core_seconds": rust_seconds,
                "python_median": python_median,
                "core_median": rust_median,
                "ratio": python_median / rust_median,
                # The least time of each side: less sensitive to other load.
                "python_min": min(python_seconds),
                "core_min": min(rust_seconds),
                "ratio_of_minima": min(python_seconds) / min(rust_seconds),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
