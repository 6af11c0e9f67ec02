//! Adversarial inputs through the real binary (issue 11): overflow in the
//! data, checkpoints of another problem or edited by hand, requests too large
//! to allocate, special files, malformed parameter files and merge parts.
//!
//! Every bad input must end with exit status 2 and exactly one line on stderr
//! naming the file and the field; every valid extreme input must end with exit
//! status 0 and finite max_loss, gap, losses and theta. Each case runs under a
//! time limit, so a hang fails the test instead of stalling CI. The corpus is
//! written by the test itself (small files; special files are links).

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than any case needs on a loaded 2-core machine, far below 60 s.
const CASE_LIMIT: Duration = Duration::from_secs(30);

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
}

fn run(args: &[&str]) -> Ran {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn taskrobust");
    // Drain both pipes on threads: a full pipe must not look like a hang.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    assert!(
        status.is_some(),
        "taskrobust {args:?} ran over {CASE_LIMIT:?} (a hang)"
    );
    Ran {
        code: status.unwrap().code(),
        stdout,
        stderr,
        seconds,
    }
}

/// Exit 2, one line on stderr, and that line names every one of `names`.
#[track_caller]
fn assert_bad(args: &[&str], names: &[&str]) -> String {
    let ran = run(args);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(
        ran.code,
        Some(2),
        "taskrobust {args:?}: expected exit 2, got {:?}; stderr: {}; stdout: {}",
        ran.code,
        ran.stderr,
        &ran.stdout[..ran.stdout.len().min(400)]
    );
    assert_eq!(
        lines.len(),
        1,
        "taskrobust {args:?}: expected one stderr line, got {lines:?}"
    );
    for name in names {
        assert!(
            lines[0].contains(name),
            "taskrobust {args:?}: the error line does not name '{name}': {}",
            lines[0]
        );
    }
    assert!(
        ran.seconds < 20.0,
        "taskrobust {args:?}: took {:.1} s to refuse bad input",
        ran.seconds
    );
    lines[0].to_string()
}

/// Exit 0 and a solve JSON whose required fields are all finite numbers.
#[track_caller]
fn assert_valid_solve(args: &[&str]) -> Value {
    let ran = run(args);
    assert_eq!(
        ran.code,
        Some(0),
        "taskrobust {args:?}: expected exit 0, got {:?}; stderr: {}",
        ran.code,
        ran.stderr
    );
    let value: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("taskrobust {args:?}: not JSON ({e}): {}", ran.stdout));
    for field in ["max_loss", "gap", "lower_bound"] {
        assert!(
            value[field].as_f64().is_some_and(f64::is_finite),
            "taskrobust {args:?}: {field} is {} (must be a finite number)",
            value[field]
        );
    }
    for field in ["losses", "theta", "weights"] {
        let items = value[field].as_array().unwrap_or_else(|| {
            panic!("taskrobust {args:?}: {field} is {}", value[field]);
        });
        assert!(
            !items.is_empty() && items.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)),
            "taskrobust {args:?}: {field} holds a non-finite entry: {}",
            value[field]
        );
    }
    value
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskrobust-adv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A little-endian f64 `.npy` file of the given shape.
fn write_npy(dir: &Path, name: &str, shape: &[usize], values: &[f64]) -> String {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// Three unit-Hessian quadratic tasks with the given linear terms.
fn quadratic(c: [[f64; 2]; 3], b: f64) -> String {
    let tasks: Vec<String> = c
        .iter()
        .map(|c| {
            format!(
                r#"{{"a": [[1, 0], [0, 1]], "c": [{:e}, {:e}], "b": {b:e}}}"#,
                c[0], c[1]
            )
        })
        .collect();
    format!(
        r#"{{"kind": "quadratic", "tasks": [{}]}}"#,
        tasks.join(", ")
    )
}

// ---------------------------------------------------------------- overflow

#[test]
fn overflow_in_the_data_is_refused_with_the_field_and_a_rescaling_hint() {
    let dir = scratch("overflow");
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        // c = (+-1e200, 0): the gradient's square and the optimum overflow.
        (
            quadratic([[1e200, 0.0], [-1e200, 0.0], [0.0, 1.0]], 0.0),
            "q_c.json",
            vec!["tasks[0].c"],
        ),
        (
            quadratic([[0.0, 1.0], [1.0, 0.0], [3e170, -2e170]], 0.0),
            "q_c2.json",
            vec!["tasks[2].c"],
        ),
        // A constant that is finite but whose loss is not.
        (
            quadratic([[1e154, 0.0], [0.0, 1.0], [1.0, 1.0]], 1.7e308),
            "q_b.json",
            vec!["tasks[0]"],
        ),
        // Least squares with huge responses: the loss at theta = 0 overflows.
        (
            r#"{"kind": "least_squares", "tasks": [{"x": [[1, 0], [0, 1], [1, 1]], "y": [1, 0, 1]},
               {"x": [[1, 0], [0, 1], [1, 1]], "y": [1e200, 0, 1]}]}"#
                .into(),
            "ls_y.json",
            vec!["tasks[1].y"],
        ),
    ];
    for (text, name, fields) in &cases {
        let path = write(&dir, name, text);
        for method in ["softmax-gd", "average", "exact"] {
            let line = assert_bad(
                &["solve", &path, "--method", method, "--format", "json"],
                &[name],
            );
            for field in fields {
                assert!(line.contains(field), "{name} ({method}): {line}");
            }
            assert!(line.contains("rescal"), "{name} ({method}): {line}");
        }
    }
    // The same through a data file: the line names the JSON field and the file.
    let x = write_npy(&dir, "x.npy", &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let y = write_npy(&dir, "y.npy", &[3], &[1e300, 0.0, -1e300]);
    let _ = (x, y);
    let path = write(
        &dir,
        "ls_files.json",
        r#"{"kind": "least_squares", "tasks": [{"x_path": "x.npy", "y_path": "y.npy"}]}"#,
    );
    assert_bad(
        &["solve", &path, "--format", "json"],
        &["ls_files.json", "tasks[0].y", "rescal"],
    );
}

#[test]
fn a_start_point_where_the_loss_overflows_names_init() {
    let dir = scratch("init");
    let path = write(
        &dir,
        "q.json",
        &quadratic([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], 0.0),
    );
    let init = write_npy(&dir, "init.npy", &[2], &[1e200, 0.0]);
    let _ = init;
    let init = dir.join("init.npy");
    assert_bad(
        &[
            "solve",
            &path,
            "--init",
            init.to_str().unwrap(),
            "--format",
            "json",
        ],
        &["--init", "rescal"],
    );
}

#[test]
fn large_but_representable_data_still_solves() {
    // Overflow checks must not refuse data that f64 handles: c = 1e100 has
    // |c|^2 = 1e200 and an optimum of 1e200.
    let dir = scratch("large-ok");
    let path = write(
        &dir,
        "q.json",
        &quadratic([[1e100, 0.0], [-1e100, 0.0], [0.0, 1e100]], 0.0),
    );
    for method in ["softmax-gd", "average", "subgradient", "exact"] {
        assert_valid_solve(&[
            "solve",
            &path,
            "--method",
            method,
            "--format",
            "json",
            "--iters",
            "50",
            "--distance",
            "2e100",
        ]);
    }
}

#[test]
fn a_hessian_or_features_beyond_f64_squared_solve_in_internal_units() {
    // Once refused (their smoothness overflows f64); the loader's power-of-two
    // rescaling makes them representable, so they solve, finitely and soundly.
    let dir = scratch("rescued");
    let cases = [
        (
            "q_a.json",
            r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, 1]], "c": [1, 0]},
               {"a": [[1e308, 1e308], [1e308, 1e308]], "c": [0, 1]}]}"#,
        ),
        (
            "lg_x.json",
            r#"{"kind": "logistic", "l2": 0.1, "tasks": [{"x": [[1e300, 0], [0, 1], [1, 1]], "y": [1, -1, 1]}]}"#,
        ),
    ];
    for (name, text) in cases {
        let path = write(&dir, name, text);
        for method in ["softmax-gd", "average", "exact"] {
            let v = assert_valid_solve(&["solve", &path, "--method", method, "--format", "json"]);
            assert!(
                number(&v, "lower_bound") <= number(&v, "max_loss"),
                "{name} {method}: {v}"
            );
            let exponent = |key: &str| v["scaling"][key].as_i64().unwrap_or(0);
            assert!(
                exponent("theta_exp") != 0 || exponent("loss_exp") != 0,
                "{name} {method}: solved without rescaling: {v}"
            );
        }
    }
}

/// A least-squares problem (3 tasks, 6 x 3 each) with X times 2^kx and y
/// times 2^ky: the same problem in other units (powers of two are exact).
fn scaled_least_squares(kx: i32, ky: i32) -> String {
    let tasks: Vec<String> = (0..3)
        .map(|t| {
            let rows: Vec<String> = (0..6)
                .map(|i| {
                    let row: Vec<String> = (0..3)
                        .map(|j| {
                            let v = ((i * 7 + j * 3 + t * 5) % 9) as f64 - 4.0 + 0.5 * j as f64;
                            format!("{:e}", v * 2f64.powi(kx))
                        })
                        .collect();
                    format!("[{}]", row.join(", "))
                })
                .collect();
            let y: Vec<String> = (0..6)
                .map(|i| {
                    format!(
                        "{:e}",
                        ((i * 5 + t * 3) % 7) as f64 * 2f64.powi(ky) - 3.0 * 2f64.powi(ky)
                    )
                })
                .collect();
            format!(r#"{{"x": [{}], "y": [{}]}}"#, rows.join(", "), y.join(", "))
        })
        .collect();
    format!(
        r#"{{"kind": "least_squares", "tasks": [{}]}}"#,
        tasks.join(", ")
    )
}

fn number(value: &Value, field: &str) -> f64 {
    value[field].as_f64().unwrap()
}

#[test]
fn data_from_1e_minus_200_to_1e200_solve_like_the_same_problem_at_scale_one() {
    let dir = scratch("scales");
    let methods = [
        "softmax-gd",
        "accelerated",
        "stochastic",
        "descent-ascent",
        "subgradient",
        "average",
        "exact",
    ];
    let base_path = write(&dir, "base.json", &scaled_least_squares(0, 0));
    let solve = |path: &str, method: &str| {
        assert_valid_solve(&["solve", path, "--method", method, "--format", "json"])
    };
    let base: Vec<Value> = methods.iter().map(|m| solve(&base_path, m)).collect();
    // OPT lies in [best base lower bound, best base max_loss]; exact pins it.
    let opt_low = base
        .iter()
        .map(|v| number(v, "lower_bound"))
        .fold(f64::MIN, f64::max);
    let opt_high = base
        .iter()
        .map(|v| number(v, "max_loss"))
        .fold(f64::MAX, f64::min);
    assert!(
        opt_high - opt_low < 1e-9 * opt_high,
        "base: [{opt_low}, {opt_high}]"
    );
    // X near 1e-200, 1e-160, 1e154, 1e200; y near 1e-150 and 1e90 (losses near
    // 1e-300 and 1e180; below 1e-308 they are not representable).
    for (kx, ky) in [
        (-664, 0),
        (-531, 0),
        (512, 0),
        (665, 0),
        (0, -500),
        (300, 300),
    ] {
        let name = format!("ls_{kx}_{ky}.json");
        let path = write(&dir, &name, &scaled_least_squares(kx, ky));
        let unit = 2f64.powi(2 * ky);
        for (method, at_one) in methods.iter().zip(&base) {
            let v = solve(&path, method);
            let (lower, max_loss) = (
                number(&v, "lower_bound") / unit,
                number(&v, "max_loss") / unit,
            );
            // Sound: never above OPT. Tight: as good as at scale one.
            assert!(
                lower <= opt_high,
                "{name} {method}: bound {lower:e} > OPT <= {opt_high:e}"
            );
            let tolerance = 1e-9 * opt_high;
            assert!(
                lower >= number(at_one, "lower_bound") - tolerance,
                "{name} {method}: bound {lower:e}, at scale one {}",
                at_one["lower_bound"]
            );
            if !matches!(*method, "stochastic" | "descent-ascent") {
                assert!(
                    (max_loss - number(at_one, "max_loss")).abs() <= tolerance,
                    "{name} {method}: max_loss {max_loss:e}, at scale one {}",
                    at_one["max_loss"]
                );
            }
        }
    }
}

#[test]
fn a_radius_beyond_the_internal_units_is_unconstrained_or_refused_by_name() {
    let dir = scratch("radius-units");
    let with_radius =
        |text: String, radius: &str| text.replacen('{', &format!(r#"{{"radius": {radius}, "#), 1);
    // X near 1e200: theta is measured in units of 2^-665, so a radius of
    // 1e300 is beyond f64 there: every representable theta is inside.
    let wide = write(
        &dir,
        "wide.json",
        &with_radius(scaled_least_squares(665, 0), "1e300"),
    );
    let open = write(&dir, "open.json", &scaled_least_squares(665, 0));
    let a = assert_valid_solve(&["solve", &wide, "--method", "exact", "--format", "json"]);
    let b = assert_valid_solve(&["solve", &open, "--method", "exact", "--format", "json"]);
    assert_eq!(a["max_loss"], b["max_loss"]);
    // X near 1e-200: theta is measured in units of 2^664, where a radius of
    // 1e-300 underflows: refused by name, not solved on the point {0}.
    let tiny = write(
        &dir,
        "tiny.json",
        &with_radius(scaled_least_squares(-664, 0), "1e-300"),
    );
    assert_bad(
        &["solve", &tiny, "--format", "json"],
        &["tiny.json", "radius"],
    );
}

#[test]
fn quadratics_with_extreme_hessians_and_centres_solve_in_internal_units() {
    let dir = scratch("quadratic-scales");
    let problem = |a_scale: f64, c_scale: f64| {
        format!(
            r#"{{"kind": "quadratic", "tasks": [
                {{"a": [[{a2:e}, {ah:e}], [{ah:e}, {a1:e}]], "c": [{c:e}, 0], "b": 0}},
                {{"a": [[{a1:e}, 0], [0, {a3:e}]], "c": [0, {c:e}], "b": 0}}]}}"#,
            a1 = a_scale,
            a2 = 2.0 * a_scale,
            a3 = 3.0 * a_scale,
            ah = 0.5 * a_scale,
            c = c_scale
        )
    };
    let base = write(&dir, "base.json", &problem(1.0, 1.0));
    let reference = assert_valid_solve(&["solve", &base, "--method", "exact", "--format", "json"]);
    let opt = number(&reference, "max_loss");
    // (A scale, c scale): f scales by A c^2.
    for (ka, kc) in [(-664, 0), (665, 0), (0, -500), (600, -300), (-300, 150)] {
        let path = write(
            &dir,
            &format!("q_{ka}_{kc}.json"),
            &problem(2f64.powi(ka), 2f64.powi(kc)),
        );
        let unit = 2f64.powi(ka + 2 * kc);
        for method in [
            "softmax-gd",
            "accelerated",
            "subgradient",
            "descent-ascent",
            "average",
            "exact",
        ] {
            let v = assert_valid_solve(&["solve", &path, "--method", method, "--format", "json"]);
            let lower = number(&v, "lower_bound") / unit;
            assert!(
                lower <= opt * (1.0 + 1e-12),
                "A 2^{ka}, c 2^{kc}, {method}: {lower:e} > {opt:e}"
            );
            assert!(
                lower >= 0.9 * opt,
                "A 2^{ka}, c 2^{kc}, {method}: bound {lower:e} is trivial (OPT {opt:e})"
            );
        }
    }
}

/// Three least-squares tasks with `x = [u, u + offset v, w]` (n = 50) and
/// responses that need the nearly collinear direction.
fn collinear_problem(dir: &Path, offset: f64) -> String {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(13);
    let mut uniform = move || rand::Rng::random_range(&mut rng, -0.5..0.5);
    let tasks: Vec<String> = (0..3)
        .map(|t| {
            let (mut rows, mut y) = (Vec::new(), Vec::new());
            for _ in 0..50 {
                let (u, v, w) = (2.0 * uniform(), 2.0 * uniform(), 2.0 * uniform());
                rows.push(format!("[{u:e}, {:e}, {w:e}]", u + offset * v));
                y.push(format!("{:e}", uniform() + (t + 1) as f64 * v));
            }
            format!(r#"{{"x": [{}], "y": [{}]}}"#, rows.join(", "), y.join(", "))
        })
        .collect();
    write(
        dir,
        &format!("collinear-{offset:e}.json"),
        &format!(
            r#"{{"kind": "least_squares", "tasks": [{}]}}"#,
            tasks.join(", ")
        ),
    )
}

#[test]
fn nearly_collinear_least_squares_get_sound_certificates_and_a_tight_one_from_exact() {
    // At offsets 1e-6 to 1e-11 the Gram matrices certify little or no
    // curvature; no method's certificate may exceed a point another reaches.
    let dir = scratch("collinear-exact");
    for offset in [1e-6, 1e-9, 1e-11] {
        let path = collinear_problem(&dir, offset);
        let exact = assert_valid_solve(&["solve", &path, "--method", "exact", "--format", "json"]);
        let (f, lower) = (number(&exact, "max_loss"), number(&exact, "lower_bound"));
        // At 1e-6 the Gram route still certifies curvature, but its rounding
        // allowance would be most of the gap: the residual route must make
        // exact's point tight. Below that, Clarabel's own weights (and
        // status) are what limit exact, and it says so; the certificate then
        // only has to be sound (its power there is tested against exact
        // rationals in tests/certificate_soundness.rs).
        if offset == 1e-6 {
            assert!(
                f - lower <= 1e-4 * f && exact["certificate"]["kind"] == "residual",
                "offset {offset:e}: exact's certified gap {} at F = {f} ({})",
                f - lower,
                exact["certificate"]
            );
        }
        for method in ["softmax-gd", "accelerated", "subgradient"] {
            let v = assert_valid_solve(&["solve", &path, "--method", method, "--format", "json"]);
            assert!(
                number(&v, "lower_bound") <= f,
                "offset {offset:e}: {method}'s bound {} above exact's F = {f}",
                number(&v, "lower_bound")
            );
            assert!(number(&exact, "lower_bound") <= number(&v, "max_loss"));
        }
    }
}

#[test]
fn descent_ascent_runs_without_a_radius_on_tasks_that_are_not_strongly_convex() {
    // Nearly collinear columns: no useful strong convexity, no radius given.
    let dir = scratch("da-default");
    let tasks: Vec<String> = (0..3)
        .map(|t| {
            let rows: Vec<String> = (0..20)
                .map(|i| {
                    let u = ((i * 7 + t) % 11) as f64 - 5.0;
                    let w = ((i * 3 + 2 * t) % 5) as f64 - 2.0;
                    format!("[{u:e}, {:e}, {w:e}]", u + 1e-9 * (i % 3) as f64)
                })
                .collect();
            // Responses mostly in the well-conditioned span of (u, w), so
            // that progress is possible at moderate theta.
            let tf = t as f64;
            let y: Vec<String> = (0..20)
                .map(|i| {
                    let u = ((i * 7 + t) % 11) as f64 - 5.0;
                    let w = ((i * 3 + 2 * t) % 5) as f64 - 2.0;
                    let noise = 0.1 * (((i * 5) % 3) as f64 - 1.0);
                    format!("{:e}", (2.0 + 0.3 * tf) * u + (1.0 - 0.2 * tf) * w + noise)
                })
                .collect();
            format!(r#"{{"x": [{}], "y": [{}]}}"#, rows.join(", "), y.join(", "))
        })
        .collect();
    let path = write(
        &dir,
        "collinear.json",
        &format!(
            r#"{{"kind": "least_squares", "tasks": [{}]}}"#,
            tasks.join(", ")
        ),
    );
    let start = assert_valid_solve(&[
        "solve", &path, "--method", "average", "--iters", "1", "--step", "1e-300", "--format",
        "json",
    ]);
    let v = assert_valid_solve(&[
        "solve",
        &path,
        "--method",
        "descent-ascent",
        "--format",
        "json",
    ]);
    let (f0, f) = (number(&start, "max_loss"), number(&v, "max_loss"));
    assert!(
        f < 0.9 * f0,
        "descent-ascent made no progress: F(theta_0) = {f0}, F = {f}"
    );
}

// ---------------------------------------------------------------- checkpoints

/// A small generated least-squares problem in `dir/name.json`.
fn generate(dir: &Path, name: &str, seed: &str) -> String {
    let ran = run(&[
        "generate",
        "--kind",
        "least_squares",
        "--tasks",
        "3",
        "--dim",
        "4",
        "--samples",
        "30",
        "--seed",
        seed,
        "--out",
        dir.to_str().unwrap(),
        "--name",
        name,
    ]);
    assert_eq!(ran.code, Some(0), "generate: {}", ran.stderr);
    dir.join(format!("{name}.json"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Writes a checkpoint of `problem` after 20 of 40 iterations.
fn checkpoint_of(problem: &str, checkpoint: &Path) {
    let _ = std::fs::remove_file(checkpoint);
    let ran = run(&args(&resume(problem, checkpoint)));
    assert_eq!(ran.code, Some(0), "checkpointed solve: {}", ran.stderr);
    assert!(checkpoint.exists());
}

/// The solve that writes the checkpoint, and resumes from it when it exists
/// (same problem and options, so the fingerprint matches).
fn resume(problem: &str, checkpoint: &Path) -> Vec<String> {
    [
        "solve",
        problem,
        "--iters",
        "20",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--checkpoint-every",
        "10",
        "--format",
        "json",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Replaces the first line of the TOML checkpoint for which `edit` returns Some.
fn edit_checkpoint(checkpoint: &Path, edit: impl Fn(&str, &str) -> Option<String>) {
    let text = std::fs::read_to_string(checkpoint).unwrap();
    let mut section = String::new();
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_string();
            }
            if !done {
                if let Some(new) = edit(&section, line) {
                    done = true;
                    return new;
                }
            }
            line.to_string()
        })
        .collect();
    assert!(done, "no line to edit in {}", checkpoint.display());
    std::fs::write(checkpoint, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_checkpoint_of_another_problem_is_refused() {
    let dir = scratch("ckpt-other");
    let first = generate(&dir, "first", "1");
    let second = generate(&dir, "second", "2");
    let checkpoint = dir.join("run.toml");
    checkpoint_of(&first, &checkpoint);
    // Same shape, same options, other data.
    assert_bad(
        &args(&resume(&second, &checkpoint)),
        &["run.toml", "problem"],
    );
    // The same problem file with one data value changed.
    let npy = dir.join("first_t1_y.npy");
    let mut bytes = std::fs::read(&npy).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&npy, bytes).unwrap();
    assert_bad(
        &args(&resume(&first, &checkpoint)),
        &["run.toml", "problem"],
    );
}

#[test]
fn an_honest_resume_reports_a_bound_below_its_own_max_loss() {
    let dir = scratch("ckpt-ok");
    let problem = generate(&dir, "p", "4");
    let checkpoint = dir.join("run.toml");
    checkpoint_of(&problem, &checkpoint);
    let again = resume(&problem, &checkpoint);
    let value = assert_valid_solve(&args(&again));
    let lower = value["lower_bound"].as_f64().unwrap();
    let max_loss = value["max_loss"].as_f64().unwrap();
    assert!(lower <= max_loss, "{lower} > {max_loss}");
    assert_eq!(value["iterations"].as_u64(), Some(20));
}

#[test]
fn edited_checkpoints_are_refused_naming_the_field() {
    let dir = scratch("ckpt-edit");
    let problem = generate(&dir, "p", "5");
    let checkpoint = dir.join("run.toml");
    type Edit = Box<dyn Fn(&str, &str) -> Option<String>>;
    let replace = |key: &'static str, value: &'static str| -> Edit {
        Box::new(move |_: &str, line: &str| {
            line.starts_with(&format!("{key} = "))
                .then(|| format!("{key} = {value}"))
        })
    };
    let cases: Vec<(Edit, &str)> = vec![
        (replace("best_lower_bound", "1e300"), "best_lower_bound"),
        (replace("iter", "9000000000000000000"), "iter"),
        (replace("iter", "25"), "iter"),
        (replace("param", "[0.0, 0.0, 0.0, 0.0, 0.0]"), "param"),
        (replace("param", "[nan, 0.0, 0.0, 0.0]"), "param"),
        (replace("best_param", "[0.0, inf, 0.0, 0.0]"), "best_param"),
        (replace("cost", "-1e300"), "cost"),
        (
            Box::new(|_: &str, line: &str| {
                line.starts_with("format = ")
                    .then(|| format!("{line}\nformat = 1"))
            }),
            "format",
        ),
    ];
    for (edit, field) in cases {
        checkpoint_of(&problem, &checkpoint);
        edit_checkpoint(&checkpoint, edit);
        assert_bad(&args(&resume(&problem, &checkpoint)), &["run.toml", field]);
    }
    // Any other number in the solver's state, and the weights too.
    for key in ["mu", "smallest_step", "gradient_bound"] {
        checkpoint_of(&problem, &checkpoint);
        let text = std::fs::read_to_string(&checkpoint).unwrap();
        if !text.lines().any(|l| l.starts_with(&format!("{key} = "))) {
            continue;
        }
        edit_checkpoint(&checkpoint, |_, line| {
            line.starts_with(&format!("{key} = "))
                .then(|| format!("{key} = 123.5"))
        });
        assert_bad(&args(&resume(&problem, &checkpoint)), &["run.toml", key]);
    }
}

#[test]
fn checkpoint_paths_that_cannot_work_are_named() {
    let dir = scratch("ckpt-path");
    let problem = generate(&dir, "p", "6");
    let missing = dir.join("no/such/folder/run.toml");
    assert_bad(
        &args(&resume(&problem, &missing)),
        &["--checkpoint", "no/such/folder"],
    );
    // A folder, a special file, a file that is not a checkpoint.
    for path in [dir.clone(), PathBuf::from("/dev/zero")] {
        assert_bad(&args(&resume(&problem, &path)), &["--checkpoint"]);
    }
    let junk = dir.join("junk.toml");
    std::fs::write(&junk, "this is = not [a checkpoint").unwrap();
    assert_bad(&args(&resume(&problem, &junk)), &["junk.toml"]);
}

// ---------------------------------------------------------------- sizes

#[test]
fn requests_too_large_to_allocate_name_the_option_and_the_size() {
    let dir = scratch("sizes");
    let out = dir.join("gen");
    let out = out.to_str().unwrap();
    for (extra, option) in [
        (vec!["--kind", "quadratic", "--dim", "100000"], "--dim"),
        (
            vec!["--kind", "quadratic", "--dim", "18446744073709551615"],
            "--dim",
        ),
        (
            vec![
                "--kind",
                "quadratic",
                "--dim",
                "3",
                "--tasks",
                "18446744073709551615",
            ],
            "--tasks",
        ),
        (
            vec![
                "--kind",
                "least_squares",
                "--dim",
                "4",
                "--samples",
                "100000000000000",
            ],
            "--samples",
        ),
        (
            vec![
                "--kind",
                "logistic",
                "--dim",
                "40000000",
                "--samples",
                "1000000",
            ],
            "--",
        ),
    ] {
        let mut a = vec!["generate", "--out", out];
        a.extend(extra);
        let line = assert_bad(&a, &[option]);
        if !line.contains("usize") && !line.contains("overflow") {
            assert!(line.contains("GB"), "{line}");
        }
    }
    assert!(!Path::new(out).join("problem.json").exists());
}

#[test]
fn a_batch_larger_than_the_data_is_capped_or_refused() {
    let dir = scratch("batch");
    let problem = generate(&dir, "p", "7");
    let a = [
        "solve",
        problem.as_str(),
        "--method",
        "stochastic",
        "--batch-size",
        "1000000000000",
        "--iters",
        "20",
        "--format",
        "json",
    ];
    let ran = run(&a);
    match ran.code {
        Some(0) => {
            assert_valid_solve(&a);
        }
        _ => {
            assert_bad(&a, &["--batch-size"]);
        }
    }
}

#[cfg(unix)]
#[test]
fn special_and_oversized_files_are_refused_without_reading_them() {
    let dir = scratch("special");
    assert_bad(&["solve", "/dev/zero"], &["/dev/zero"]);
    assert_bad(&["solve", dir.to_str().unwrap()], &[dir.to_str().unwrap()]);
    for name in ["z.npy", "z.csv"] {
        let link = dir.join(name);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for key in ["x_path", "y_path"] {
            let text = if key == "x_path" {
                format!(
                    r#"{{"kind": "least_squares", "tasks": [{{"x_path": "{name}", "y": [1]}}]}}"#
                )
            } else {
                format!(
                    r#"{{"kind": "least_squares", "tasks": [{{"x": [[1]], "y_path": "{name}"}}]}}"#
                )
            };
            let path = write(&dir, "p.json", &text);
            assert_bad(&["solve", &path], &["p.json", key, name]);
        }
        let q = write(
            &dir,
            "q.json",
            &quadratic([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], 0.0),
        );
        assert_bad(
            &["solve", &q, "--init", link.to_str().unwrap()],
            &["--init"],
        );
    }
    // A problem file far larger than any sensible problem (sparse: no disk used).
    let huge = dir.join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(64 << 30).unwrap();
    drop(file);
    assert_bad(&["solve", huge.to_str().unwrap()], &["huge.json"]);
    // A .npy header promising more than the file holds, or more than usize.
    for (shape, name) in [
        (vec![1usize << 40, 1 << 20], "big.npy"),
        (vec![usize::MAX, 3], "max.npy"),
    ] {
        write_npy(&dir, name, &shape, &[1.0, 2.0]);
        let path = write(
            &dir,
            "p.json",
            &format!(r#"{{"kind": "least_squares", "tasks": [{{"x_path": "{name}", "y": [1]}}]}}"#),
        );
        assert_bad(&["solve", &path], &["p.json", "x_path", name]);
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn duplicate_json_keys_are_refused() {
    let dir = scratch("dup");
    for (text, key) in [
        (
            r#"{"kind": "quadratic", "radius": 1, "radius": 100, "tasks": [{"a": [[1]], "c": [0]}]}"#,
            "radius",
        ),
        (
            r#"{"kind": "quadratic", "tasks": [{"a": [[1]], "c": [0], "c": [5]}]}"#,
            "c",
        ),
        (
            r#"{"kind": "least_squares", "kind": "quadratic", "tasks": [{"a": [[1]], "c": [0]}]}"#,
            "kind",
        ),
    ] {
        let path = write(&dir, "p.json", text);
        assert_bad(&["solve", &path], &["p.json", key, "duplicate"]);
    }
}

#[test]
fn option_errors_name_the_option() {
    let dir = scratch("options");
    let q = write(
        &dir,
        "q.json",
        &quadratic([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], 0.0),
    );
    for (a, option) in [
        (vec!["solve", q.as_str(), "--seed", "-1"], "--seed"),
        (
            vec!["solve", q.as_str(), "--batch-size", "-3"],
            "--batch-size",
        ),
        (
            vec!["solve", q.as_str(), "--certify-every", "-1"],
            "--certify-every",
        ),
        (vec!["solve", q.as_str(), "--iters", "abc"], "--iters"),
        (vec!["solve", q.as_str(), "--format", "xml"], "--format"),
        (
            vec!["generate", "--kind", "quadratic", "--dim", "-5"],
            "--dim",
        ),
        (vec!["generate", "--kind", "cubic"], "--kind"),
        (
            vec!["generate", "--kind", "quadratic", "--seed", "1.5"],
            "--seed",
        ),
    ] {
        assert_bad(&a, &[option]);
    }
}

#[test]
fn generate_out_onto_a_file_names_out() {
    let dir = scratch("gen-out");
    let file = write(&dir, "taken", "not a folder");
    assert_bad(
        &["generate", "--kind", "quadratic", "--out", &file],
        &["--out", "taken"],
    );
    let nested = dir.join("taken/below");
    assert_bad(
        &[
            "generate",
            "--kind",
            "least_squares",
            "--out",
            nested.to_str().unwrap(),
        ],
        &["--out"],
    );
}

#[test]
fn params_files_name_the_toml_and_the_key() {
    let dir = scratch("params");
    let params = dir.join("experiments");
    std::fs::create_dir_all(&params).unwrap();
    let original = include_str!("../experiments/rate_fixed_mu.toml");
    let out = dir.join("out");
    let reproduce = |text: &str| {
        std::fs::write(params.join("rate_fixed_mu.toml"), text).unwrap();
        vec![
            "reproduce".to_string(),
            "--quick".into(),
            "--only".into(),
            "rate_fixed_mu".into(),
            "--params".into(),
            params.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let set = |key: &str, value: &str| -> String {
        let mut done = false;
        let text: Vec<String> = original
            .lines()
            .map(|l| {
                if !done && l.starts_with(&format!("{key} = ")) {
                    done = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(done, "rate_fixed_mu.toml has no top-level {key}");
        text.join("\n")
    };
    for (text, key) in [
        (set("seeds", "[]"), "seeds"),
        (set("families", "[]"), "families"),
        (set("mu", "-0.2"), "mu"),
        (set("mu", "nan"), "mu"),
        (format!("{original}\nunknown_key = 3\n"), "unknown_key"),
        (original.replace("dim = 10", "dim = 100000000"), "dim"),
        (
            original.replace("tasks = 8", "tasks = 1000000000000"),
            "tasks",
        ),
        (
            original.replace("samples = 120", "samples = 100000000000"),
            "samples",
        ),
    ] {
        assert_bad(&args(&reproduce(&text)), &["rate_fixed_mu.toml", key]);
    }
}

#[test]
fn merge_parts_with_wrong_fields_name_the_part() {
    let dir = scratch("merge");
    for (name, text) in [
        ("wrong.json", r#"{"quick": true, "rows": []}"#),
        ("notjson.json", "part of nothing"),
        (
            "dup.json",
            r#"{"quick": true, "quick": false, "results": []}"#,
        ),
        ("array.json", "[1, 2, 3]"),
    ] {
        let part = write(&dir, name, text);
        assert_bad(
            &[
                "merge",
                &part,
                "--quick",
                "--only",
                "rate_fixed_mu",
                "--out",
                dir.join("out").to_str().unwrap(),
            ],
            &[name],
        );
    }
    assert_bad(
        &[
            "merge",
            dir.join("missing.json").to_str().unwrap(),
            "--quick",
        ],
        &["missing.json"],
    );
    // A real part whose rows lost their fields.
    let out = dir.join("shard");
    let ran = run(&[
        "reproduce",
        "--quick",
        "--only",
        "rate_fixed_mu",
        "--shard",
        "0/1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(0), "shard: {}", ran.stderr);
    let part = out.join("parts/part-0-of-1.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&part).unwrap()).unwrap();
    for result in value["results"].as_array_mut().unwrap() {
        for row in result["rows"].as_array_mut().unwrap() {
            *row = serde_json::json!({"unexpected": 1});
        }
    }
    let broken = write(&dir, "broken-part.json", &value.to_string());
    assert_bad(
        &[
            "merge",
            &broken,
            "--quick",
            "--only",
            "rate_fixed_mu",
            "--out",
            dir.join("merged").to_str().unwrap(),
        ],
        &["broken-part.json"],
    );
}
