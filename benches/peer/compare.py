#!/usr/bin/env python3
"""Runs taskrobust against its Python peers on the same problem files and
prints the time ratios (see benches/peer/README.md).

1. `taskrobust generate` writes the problems: least squares and logistic
   regression with M = 16 tasks, n_i = 8192 samples, d = 256 (.npy data), and
   a 20-task, d = 30 quadratic family.
2. softmax-gd, 200 iterations, fixed --mu and --step, from theta = 0:
   `taskrobust solve --format json` (end to end: process start, load, solve,
   certificate, output) against softmax_gd.py (NumPy; load + solve, without
   interpreter start-up and imports), in its data and Gram forms, with
   OpenBLAS's default threads and with one thread; NumPy's best is compared.
   The final max_loss must agree to 1e-9 relative.
   With f32 in --dtypes (default "f64,f32"), the same problems again as
   float32 files (`generate --dtype f32`): taskrobust keeps them f32 and sums
   in f64; NumPy runs its float32 best form (float32 arrays and arithmetic).
   NumPy's float32 accumulation moves max_loss by float32 rounding, so the
   agreement there must be 1e-4 relative (reported as measured).
3. `taskrobust solve --method exact` against exact_cvxpy.py (cvxpy + Clarabel,
   problem set-up included); OPT must agree to 1e-8 relative.

Runs alternate between the tools and each time is the median of --repeats
runs. NumPy runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
environment. Exit status 1 where an agreement check fails.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def run_timed(command, env=None):
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(map(str, command))}\n{out.stderr}")
    return wall, json.loads(out.stdout)


def numpy_env(threads):
    env = dict(os.environ)
    # Set on these machines; they slow a current NumPy (OpenBLAS) down.
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def write_json(path, value):
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(value, indent=2) + "\n")
    temp.replace(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "target" / "peer"), help="problem files and results")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "taskrobust"))
    parser.add_argument("--python", default=sys.executable, help="Python with numpy and cvxpy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--mu", type=float, default=0.05)
    parser.add_argument("--step", type=float, default=0.5)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument(
        "--numpy-threads",
        default="default,1",
        help="comma-separated OpenBLAS thread counts to try ('default' = unset)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: least_squares,logistic,exact")
    parser.add_argument("--dtypes", default="f64,f32", help="comma-separated data types of the data problems")
    parser.add_argument("--jax", choices=["auto", "yes", "no"], default="auto",
                        help="also run the JAX peer (softmax_gd_jax.py); auto: where --python imports jax")
    args = parser.parse_args()

    binary = Path(args.binary)
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "taskrobust"], cwd=ROOT, check=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    threads = [None if t == "default" else int(t) for t in args.numpy_threads.split(",")]
    results = {"settings": vars(args), "comparisons": []}
    use_jax = args.jax == "yes" or (
        args.jax == "auto"
        and subprocess.run([args.python, "-c", "import jax"], capture_output=True).returncode == 0
    )
    failed = False

    def generate(kind, extra, folder=None):
        _, info = run_timed(
            [binary, "generate", "--kind", kind, "--seed", "1", "--outliers", "2",
             "--out", out / (folder or kind), "--name", "problem", *extra]
        )
        return info["path"]

    sizes = ["--tasks", str(args.tasks), "--samples", str(args.samples), "--dim", str(args.dim)]
    cases = [(kind, dtype) for dtype in args.dtypes.split(",") for kind in ["least_squares", "logistic"]]
    for kind, dtype in cases:
        if kind in skip:
            continue
        path = generate(kind, sizes + ["--dtype", dtype], f"{kind}_{dtype}")
        value_bytes = 4 if dtype == "f32" else 8
        data_mb = args.tasks * args.samples * (value_bytes * args.dim + value_bytes) * 1e-6
        tolerance = 1e-4 if dtype == "f32" else 1e-9
        print(f"\n{kind} ({dtype}): M = {args.tasks}, n_i = {args.samples}, d = {args.dim} "
              f"({data_mb:.0f} MB of data), {args.iters} iterations, mu = {args.mu}, step = {args.step}")
        solve = [binary, "solve", path, "--mu", str(args.mu), "--step", str(args.step),
                 "--iters", str(args.iters), "--format", "json"]
        ours_variants = {"final certificate": ["--certify-every", str(args.iters)]}
        if kind == "least_squares":
            ours_variants["certificate every iteration"] = []
        forms = ["data", "gram"] if kind == "least_squares" else ["data"]
        peers = [(form, t) for form in forms for t in threads]
        ours_times = {name: [] for name in ours_variants}
        peer_times = {p: [] for p in peers}
        ours_loss = None
        peer_loss = {}
        for _ in range(args.repeats):
            for name, extra in ours_variants.items():
                wall, result = run_timed(solve + extra)
                ours_times[name].append(wall)
                ours_loss = result["max_loss"]
            for form, t in peers:
                _, result = run_timed(
                    [args.python, HERE / "softmax_gd.py", path, "--mu", str(args.mu),
                     "--step", str(args.step), "--iters", str(args.iters), "--form", form,
                     "--dtype", dtype],
                    env=numpy_env(t),
                )
                peer_times[(form, t)].append(result["seconds"])
                peer_loss[(form, t)] = result["max_loss"]
        ours = {name: statistics.median(v) for name, v in ours_times.items()}
        peer = {p: statistics.median(v) for p, v in peer_times.items()}
        best = min(peer, key=peer.get)
        for name, seconds in ours.items():
            print(f"  taskrobust ({name}): {seconds:.3f} s  (max_loss {ours_loss:.15g})")
        for (form, t), seconds in peer.items():
            agree = relative(peer_loss[(form, t)], ours_loss)
            ok = agree <= tolerance
            failed |= not ok
            print(f"  numpy {dtype} {form} form, OpenBLAS threads {t or 'default'}: {seconds:.3f} s  "
                  f"(max_loss {peer_loss[(form, t)]:.15g}, relative difference {agree:.1e} "
                  f"{'<=' if ok else '>'} {tolerance:.0e})")
        ratio = peer[best] / ours["final certificate"]
        print(f"  ratio: numpy best ({best[0]} form, threads {best[1] or 'default'}) / taskrobust = {ratio:.2f}x")
        jax_result = None
        if use_jax:
            jax_times, jax_loss, compile_times = [], None, []
            for _ in range(args.repeats):
                _, result = run_timed(
                    [args.python, HERE / "softmax_gd_jax.py", path, "--mu", str(args.mu),
                     "--step", str(args.step), "--iters", str(args.iters), "--dtype", dtype],
                    env=numpy_env(None),
                )
                jax_times.append(result["seconds"])
                compile_times.append(result["seconds_compile"])
                jax_loss = result["max_loss"]
            jax_s = statistics.median(jax_times)
            agree = relative(jax_loss, ours_loss)
            ok = agree <= tolerance
            failed |= not ok
            print(f"  jax {dtype} (jit, compile {statistics.median(compile_times):.3f} s included): {jax_s:.3f} s  "
                  f"(max_loss {jax_loss:.15g}, relative difference {agree:.1e} {'<=' if ok else '>'} {tolerance:.0e})")
            print(f"  ratio: jax / taskrobust = {jax_s / ours['final certificate']:.2f}x")
            jax_result = {"seconds": jax_s, "times": jax_times, "compile_seconds": compile_times,
                          "max_loss": jax_loss, "relative_difference": agree,
                          "ratio": jax_s / ours["final certificate"]}
        results["comparisons"].append({
            "kind": kind, "dtype": dtype, "taskrobust_seconds": ours,
            "numpy_seconds": {f"{f}/{t or 'default'}": s for (f, t), s in peer.items()},
            "numpy_best": f"{best[0]}/{best[1] or 'default'}", "ratio": ratio,
            "max_loss": ours_loss,
            "relative_difference": {f"{f}/{t or 'default'}": relative(l, ours_loss) for (f, t), l in peer_loss.items()},
            "times": {"taskrobust": ours_times, "numpy": {f"{f}/{t or 'default'}": v for (f, t), v in peer_times.items()}},
            "jax": jax_result,
        })

    if "exact" not in skip:
        path = generate("quadratic", ["--tasks", "20", "--dim", "30"])
        print("\nexact: quadratic, M = 20, d = 30")
        ours_times, peer_times = [], []
        for _ in range(max(args.repeats, 5)):
            wall, ours = run_timed([binary, "solve", path, "--method", "exact", "--format", "json"])
            ours_times.append(wall)
            _, peer = run_timed([args.python, HERE / "exact_cvxpy.py", path], env=numpy_env(None))
            peer_times.append(peer["seconds"])
        ours_s, peer_s = statistics.median(ours_times), statistics.median(peer_times)
        agree = relative(peer["opt"], ours["max_loss"])
        ok = agree <= 1e-8
        failed |= not ok
        print(f"  taskrobust exact: {ours_s:.4f} s  (OPT in [{ours['lower_bound']:.15g}, {ours['max_loss']:.15g}])")
        print(f"  cvxpy + Clarabel: {peer_s:.4f} s  (OPT {peer['opt']:.15g}, status {peer['status']}, "
              f"relative difference {agree:.1e} {'<=' if ok else '>'} 1e-8)")
        print(f"  ratio: cvxpy / taskrobust = {peer_s / ours_s:.2f}x")
        results["comparisons"].append({
            "kind": "exact", "taskrobust_seconds": ours_s, "cvxpy_seconds": peer_s,
            "ratio": peer_s / ours_s, "opt": ours["max_loss"], "lower_bound": ours["lower_bound"],
            "cvxpy_opt": peer["opt"], "relative_difference": agree,
            "times": {"taskrobust": ours_times, "cvxpy": peer_times},
        })

    write_json(out / "results.json", results)
    print(f"\nresults: {out / 'results.json'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
