#!/usr/bin/env python3
"""cvxpy + Clarabel on a taskrobust quadratic problem file: the peer of
`taskrobust solve --method exact`.

Solves min_theta max_i 1/2 (theta - c_i)^T A_i (theta - c_i) + b_i as the
epigraph problem min t s.t. each task <= t (and ||theta|| <= radius), the way
a cvxpy user writes it, with Clarabel at the tolerances taskrobust uses
(1e-10). Prints one JSON line: OPT and the time from reading the file to the
solution (problem set-up included; interpreter start-up and `import cvxpy`
excluded, which favours cvxpy).
"""

import argparse
import json
import time

import cvxpy as cp
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem")
    args = parser.parse_args()

    start = time.perf_counter()
    with open(args.problem) as f:
        problem = json.load(f)
    if problem["kind"] != "quadratic":
        raise SystemExit(f"{args.problem}: kind {problem['kind']!r} is not quadratic")
    tasks = problem["tasks"]
    d = len(tasks[0]["c"])
    theta = cp.Variable(d)
    t = cp.Variable()
    constraints = []
    for task in tasks:
        a = np.array(task["a"], dtype=float)
        c = np.array(task["c"], dtype=float)
        constraints.append(0.5 * cp.quad_form(theta - c, a) + task.get("b", 0.0) <= t)
    if problem.get("radius") is not None:
        constraints.append(cp.norm(theta, 2) <= problem["radius"])
    prob = cp.Problem(cp.Minimize(t), constraints)
    set_up = time.perf_counter()
    prob.solve(
        solver=cp.CLARABEL,
        tol_gap_abs=1e-10,
        tol_gap_rel=1e-10,
        tol_feas=1e-10,
        max_iter=400,
    )
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "status": prob.status,
                "opt": float(prob.value),
                "seconds_set_up": set_up - start,
                "seconds_solve": done - set_up,
                "seconds": done - start,
                "cvxpy": cp.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
