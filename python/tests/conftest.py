"""Shared fixtures: the command-line binary (built by `cargo test --release`
or `cargo build --release`), and problems written both as NumPy arrays and as
problem files, so that Python's results can be compared with the CLI's."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_binary():
    path = pathlib.Path(os.environ.get("TASKROBUST_CLI", ROOT / "target/release/taskrobust"))
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "taskrobust"], cwd=ROOT, check=True
        )
    return path


@pytest.fixture(scope="session")
def cli():
    """Runs `taskrobust ARGS...`; returns (status, stdout, stderr)."""
    binary = cli_binary()

    def run(*args):
        done = subprocess.run(
            [str(binary), *map(str, args)], capture_output=True, text=True, timeout=600
        )
        return done.returncode, done.stdout, done.stderr

    return run


def data_tasks(seed, m=4, n=40, d=5, logistic=False):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(m):
        x = rng.normal(size=(n + 3 * i, d))
        beta = rng.normal(size=d) + i
        if logistic:
            y = np.where(x @ beta + 0.3 * rng.normal(size=len(x)) > 0, 1.0, -1.0)
        else:
            y = x @ beta + 0.1 * rng.normal(size=len(x))
        xs.append(np.ascontiguousarray(x))
        ys.append(y)
    return xs, ys


def quadratic_tasks(seed, m=4, d=3):
    rng = np.random.default_rng(seed)
    a, c = [], []
    for _ in range(m):
        q = rng.normal(size=(d, d))
        a.append(q @ q.T + 0.5 * np.eye(d))
        c.append(rng.normal(size=d))
    return np.array(a), np.array(c), rng.uniform(0, 1, size=m)


def write_problem(folder, kind, xs=None, ys=None, a=None, c=None, b=None, radius=None, l2=None):
    """The same problem as a file for `taskrobust solve` (data in .npy files)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    problem = {"kind": kind}
    if kind == "quadratic":
        problem["tasks"] = [
            {"a": ai.tolist(), "c": ci.tolist(), "b": float(bi)} for ai, ci, bi in zip(a, c, b)
        ]
    else:
        tasks = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            np.save(folder / f"t{i}_x.npy", x)
            np.save(folder / f"t{i}_y.npy", y)
            tasks.append({"x_path": f"t{i}_x.npy", "y_path": f"t{i}_y.npy"})
        problem["tasks"] = tasks
    if l2 is not None:
        problem["l2"] = l2
    if radius is not None:
        problem["radius"] = radius
    path = folder / "problem.json"
    path.write_text(json.dumps(problem))
    return path
