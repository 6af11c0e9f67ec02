//! float32 data end to end (issue 15).
//!
//! f32 values are widened to f64 exactly wherever they are used and every sum
//! is the same f64 sum, so a problem stored as f32 and the same values stored
//! as f64 must give the same bits: losses, gradients, Gram forms,
//! certificates and whole solves, in the library and through the binary.
//! Bad f32 input ends with exit status 2 and one line naming file and field.

use nalgebra::{DMatrix, DVector};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use taskrobust::family::{
    Evaluation, GradientForm, LeastSquaresFamily, LogisticFamily, Samples, TaskData, TaskFamily,
};
use taskrobust::linalg::element::Dtype;
use taskrobust::problem::ball::FeasibleSet;
use taskrobust::solvers::{solve, Method, SolveOptions};

/// A reproducible value in [-1, 1) (xorshift).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// `m` tasks of `n` samples in `d` features, as f32 (d x n, one sample per
/// column) with targets (least squares) or +1/-1 labels (logistic) that are
/// f32 values too.
fn f32_tasks(
    m: usize,
    n: usize,
    d: usize,
    labels: bool,
    seed: u64,
) -> Vec<(DMatrix<f32>, DVector<f64>)> {
    let mut u = Uniform(seed);
    (0..m)
        .map(|t| {
            let xt = DMatrix::from_fn(d, n, |_, _| (u.next() * (1.0 + t as f64)) as f32);
            let y = DVector::from_fn(n, |_, _| {
                let v = u.next();
                if labels {
                    v.signum()
                } else {
                    f64::from((3.0 * v) as f32)
                }
            });
            (xt, y)
        })
        .collect()
}

/// The same tasks stored as f32 and as f64.
fn both(tasks: &[(DMatrix<f32>, DVector<f64>)]) -> (Vec<TaskData>, Vec<TaskData>) {
    let narrow = tasks
        .iter()
        .map(|(xt, y)| TaskData {
            xt: Samples::from_matrix_f32(xt),
            y: y.clone().into(),
        })
        .collect();
    let wide = tasks
        .iter()
        .map(|(xt, y)| TaskData::from_columns(&xt.map(f64::from), y.clone()))
        .collect();
    (narrow, wide)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Evaluation, certificate, per-task gradient and a short solve agree bit for bit.
fn assert_same_bits(f32_family: Arc<dyn TaskFamily>, f64_family: Arc<dyn TaskFamily>, what: &str) {
    let (m, d) = (f64_family.num_tasks(), f64_family.dim());
    let mut u = Uniform(17);
    let theta = DVector::from_fn(d, |_, _| 0.3 * u.next());
    let mut evals = [Evaluation::new(m, d), Evaluation::new(m, d)];
    for (family, eval) in [&f32_family, &f64_family].into_iter().zip(&mut evals) {
        family
            .evaluate(
                &theta,
                &mut |losses, w| {
                    let top = losses.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = losses.iter().map(|l| (l - top).exp()).collect();
                    let s: f64 = e.iter().sum();
                    for (wi, ei) in w.iter_mut().zip(&e) {
                        *wi = ei / s;
                    }
                },
                eval,
            )
            .unwrap();
    }
    assert_eq!(
        bits(&evals[0].losses),
        bits(&evals[1].losses),
        "{what}: losses"
    );
    assert_eq!(
        bits(evals[0].gradient.as_slice()),
        bits(evals[1].gradient.as_slice()),
        "{what}: gradient"
    );
    let mut only = [vec![0.0; m], vec![0.0; m]];
    f32_family.losses(&theta, &mut only[0]).unwrap();
    f64_family.losses(&theta, &mut only[1]).unwrap();
    assert_eq!(bits(&only[0]), bits(&only[1]), "{what}: losses()");
    let mut g = [DVector::zeros(d), DVector::zeros(d)];
    f32_family.task_gradient(m - 1, &theta, &mut g[0]).unwrap();
    f64_family.task_gradient(m - 1, &theta, &mut g[1]).unwrap();
    assert_eq!(
        bits(g[0].as_slice()),
        bits(g[1].as_slice()),
        "{what}: task gradient"
    );
    for set in [FeasibleSet::Unconstrained, FeasibleSet::with_radius(0.5)] {
        let c32 = f32_family.certify(&theta, &evals[0], &set);
        let c64 = f64_family.certify(&theta, &evals[1], &set);
        assert_eq!(c32.kind, c64.kind, "{what}: certificate kind");
        assert_eq!(
            c32.bound.to_bits(),
            c64.bound.to_bits(),
            "{what}: certificate {c32:?} vs {c64:?}"
        );
    }
    assert_eq!(
        f32_family.smoothness().to_bits(),
        f64_family.smoothness().to_bits(),
        "{what}: L"
    );
    let options = SolveOptions {
        method: Method::SoftmaxGd,
        iterations: 25,
        ..SolveOptions::default()
    };
    let a = solve(f32_family, FeasibleSet::Unconstrained, &options).unwrap();
    let b = solve(f64_family, FeasibleSet::Unconstrained, &options).unwrap();
    assert_eq!(
        a.max_loss.to_bits(),
        b.max_loss.to_bits(),
        "{what}: max_loss"
    );
    assert_eq!(
        a.lower_bound.to_bits(),
        b.lower_bound.to_bits(),
        "{what}: lower_bound"
    );
    assert_eq!(
        bits(a.theta.as_slice()),
        bits(b.theta.as_slice()),
        "{what}: theta"
    );
}

#[test]
fn f32_storage_gives_the_bits_of_the_same_values_stored_as_f64() {
    // Large enough for the parallel pass (>= 2^16 values) with ragged chunks
    // (n not a multiple of 1024) and SIMD tails (d not a multiple of 8); a
    // small case; and a wide one (n < d: no d x d matrix).
    for (m, n, d) in [(3, 1500, 37), (2, 9, 3), (2, 5, 20)] {
        let data = f32_tasks(m, n, d, false, 1 + n as u64);
        for form in [GradientForm::Data, GradientForm::Gram, GradientForm::Auto] {
            let (narrow, wide) = both(&data);
            assert!(narrow.iter().all(|t| t.xt.dtype() == Dtype::F32));
            let a = LeastSquaresFamily::new(narrow, form).unwrap();
            let b = LeastSquaresFamily::new(wide, form).unwrap();
            assert_eq!(a.uses_gram(), b.uses_gram());
            assert_eq!(a.data().data_bytes() * 2, b.data().data_bytes());
            assert_same_bits(
                Arc::new(a),
                Arc::new(b),
                &format!("least squares {form:?} {m}x{n}x{d}"),
            );
        }
        let labelled = f32_tasks(m, n, d, true, 7 + n as u64);
        let (narrow, wide) = both(&labelled);
        let a = LogisticFamily::new(narrow, 0.01).unwrap();
        let b = LogisticFamily::new(wide, 0.01).unwrap();
        assert_same_bits(Arc::new(a), Arc::new(b), &format!("logistic {m}x{n}x{d}"));
    }
}

#[test]
fn f32_samples_are_checked_for_nan_and_infinity_by_position() {
    let data = f32_tasks(2, 40, 5, false, 3);
    for form in [GradientForm::Data, GradientForm::Gram] {
        let (mut narrow, _) = both(&data);
        let mut xt = data[1].0.clone();
        xt[(2, 17)] = f32::INFINITY;
        narrow[1].xt = Samples::from_matrix_f32(&xt);
        let err = LeastSquaresFamily::new(narrow, form).unwrap_err();
        assert_eq!(err.field, "tasks[1].x", "{form:?}");
        assert!(
            err.message.contains("entry [17, 2] is inf"),
            "{form:?}: {err}"
        );
    }
}

// ------------------------------------------------------------ the binary

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskrobust-f32-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn taskrobust(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .args(args)
        .output()
        .expect("spawn taskrobust")
}

fn solve_json(problem: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "solve",
        problem.to_str().unwrap(),
        "--format",
        "json",
        "--iters",
        "40",
    ];
    args.extend_from_slice(extra);
    let out = taskrobust(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The header and payload of a `.npy` file: (descr, shape text, payload bytes).
fn npy_parts(path: &Path) -> (String, String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len])
        .unwrap()
        .to_string();
    let field = |key: &str, end: char| {
        let at = header.find(key).unwrap() + key.len();
        header[at..].split(end).next().unwrap().trim().to_string()
    };
    let descr = field("'descr': '", '\'');
    let shape = format!("{})", field("'shape': ", ')'));
    (descr, shape, bytes[10 + len..].to_vec())
}

fn raw_npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The f32 payload widened to an f64 payload.
fn widened(payload: &[u8]) -> Vec<u8> {
    payload
        .chunks_exact(4)
        .flat_map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
        .collect()
}

fn same_numbers(a: &Value, b: &Value, what: &str) {
    for field in [
        "max_loss",
        "lower_bound",
        "gap",
        "losses",
        "weights",
        "theta",
        "iterations",
    ] {
        assert_eq!(a[field], b[field], "{what}: {field}");
    }
}

#[test]
fn generated_f32_files_solve_like_the_same_values_in_f64_npy_and_csv() {
    for kind in ["least_squares", "logistic"] {
        let dir = scratch(kind);
        let out = taskrobust(&[
            "generate",
            "--kind",
            kind,
            "-m",
            "3",
            "-d",
            "9",
            "-n",
            "700",
            "--seed",
            "5",
            "--dtype",
            "f32",
            "--out",
            dir.to_str().unwrap(),
            "--name",
            "p",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["dtype"], "f32");
        let problem: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("p.json")).unwrap()).unwrap();
        assert_eq!(problem["dtype"], "f32");
        let f32_result = solve_json(&dir.join("p.json"), &[]);

        // The same values as '<f8' files, and as CSV text read with "dtype": "f32".
        let mut f64_tasks = Vec::new();
        let mut csv_tasks = Vec::new();
        for i in 0..3 {
            let mut names = Vec::new();
            let mut csv_names = Vec::new();
            for part in ["x", "y"] {
                let path = dir.join(format!("p_t{i}_{part}.npy"));
                let (descr, shape, payload) = npy_parts(&path);
                assert_eq!(descr, "<f4", "{}", path.display());
                let name = format!("w_t{i}_{part}.npy");
                std::fs::write(dir.join(&name), raw_npy("<f8", &shape, &widened(&payload)))
                    .unwrap();
                names.push(name);
                let values: Vec<f32> = payload
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                let cols = if part == "x" { 9 } else { 1 };
                // Shortest f32 text ("0.1"), and the f64 text of the same value.
                let text = |wide: bool| -> String {
                    values
                        .chunks(cols)
                        .map(|row| {
                            let cells: Vec<String> = row
                                .iter()
                                .map(|&v| {
                                    if wide {
                                        f64::from(v).to_string()
                                    } else {
                                        v.to_string()
                                    }
                                })
                                .collect();
                            cells.join(",") + "\n"
                        })
                        .collect()
                };
                std::fs::write(dir.join(format!("c_t{i}_{part}.csv")), text(false)).unwrap();
                std::fs::write(dir.join(format!("e_t{i}_{part}.csv")), text(true)).unwrap();
                csv_names.push(format!("t{i}_{part}.csv"));
            }
            f64_tasks.push(serde_json::json!({"x_path": names[0], "y_path": names[1]}));
            csv_tasks.push(csv_names);
        }
        let mut wide = problem.clone();
        wide.as_object_mut().unwrap().remove("dtype");
        wide["tasks"] = Value::Array(f64_tasks);
        std::fs::write(dir.join("w.json"), wide.to_string()).unwrap();
        same_numbers(&f32_result, &solve_json(&dir.join("w.json"), &[]), kind);
        // Every method reads the f32 data as the f64 data of the same values.
        let mut methods = vec![
            "accelerated",
            "stochastic",
            "descent-ascent",
            "subgradient",
            "average",
        ];
        if kind == "least_squares" {
            methods.push("exact");
        }
        for method in methods {
            let extra = ["--method", method, "--seed", "3"];
            same_numbers(
                &solve_json(&dir.join("p.json"), &extra),
                &solve_json(&dir.join("w.json"), &extra),
                &format!("{kind} {method}"),
            );
        }
        // CSV files: with "dtype": "f32" either text of the values reads back
        // as the same f32 problem; without it, CSV is f64, where only the f64
        // text of the values is the same problem ("0.1" is not the f32 0.1).
        for (stem, dtype, same) in [
            ("c", true, true),
            ("e", true, true),
            ("e", false, true),
            ("c", false, false),
        ] {
            let mut csv = problem.clone();
            if !dtype {
                csv.as_object_mut().unwrap().remove("dtype");
            }
            let entries = csv_tasks
                .iter()
                .map(|names| serde_json::json!({"x_path": format!("{stem}_{}", names[0]), "y_path": format!("{stem}_{}", names[1])}))
                .collect();
            csv["tasks"] = Value::Array(entries);
            let path = dir.join(format!("{stem}{dtype}.json"));
            std::fs::write(&path, csv.to_string()).unwrap();
            let result = solve_json(&path, &[]);
            if same {
                same_numbers(&f32_result, &result, &format!("{kind} csv {stem} {dtype}"));
            } else {
                assert_ne!(
                    f32_result["theta"], result["theta"],
                    "{kind}: shortest f32 text read as f64"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn inline_and_csv_numbers_are_rounded_to_f32_where_the_problem_says_so() {
    let dir = scratch("inline");
    // 0.1 is not an f32: with "dtype": "f32" the problem is its nearest f32.
    let tasks = r#"[{"x": [[0.1, 1], [2, 0.3], [1, 1]], "y": [0.7, -1, 0.2]}, {"x": [[1, 0.5], [0, 1], [0.25, 2]], "y": [1, 0.1, 0]}]"#;
    std::fs::write(
        dir.join("i32.json"),
        format!(r#"{{"kind": "least_squares", "dtype": "f32", "tasks": {tasks}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("i64.json"),
        format!(r#"{{"kind": "least_squares", "tasks": {tasks}}}"#),
    )
    .unwrap();
    let rounded = tasks
        .replace("0.1,", &format!("{},", f64::from(0.1f32)))
        .replace("0.3]", &format!("{}]", f64::from(0.3f32)))
        .replace("0.7,", &format!("{},", f64::from(0.7f32)))
        .replace("0.2]", &format!("{}]", f64::from(0.2f32)))
        .replace("0.1, 0]", &format!("{}, 0]", f64::from(0.1f32)));
    std::fs::write(
        dir.join("r64.json"),
        format!(r#"{{"kind": "least_squares", "tasks": {rounded}}}"#),
    )
    .unwrap();
    let a = solve_json(&dir.join("i32.json"), &[]);
    let b = solve_json(&dir.join("r64.json"), &[]);
    let c = solve_json(&dir.join("i64.json"), &[]);
    same_numbers(&a, &b, "inline f32");
    assert_ne!(
        a["max_loss"], c["max_loss"],
        "f32 rounding must change this problem"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exit 2 and one stderr line naming every one of `names`.
#[track_caller]
fn assert_refused(args: &[&str], names: &[&str]) {
    let out = taskrobust(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
    for name in names {
        assert!(
            lines[0].contains(name),
            "{args:?}: '{name}' not in: {}",
            lines[0]
        );
    }
}

#[test]
fn bad_dtypes_and_truncated_f32_files_exit_2_naming_file_and_field() {
    let dir = scratch("bad");
    let f32_bytes = |values: &[f32]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let x = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = f32_bytes(&[1.0, -1.0, 1.0]);
    std::fs::write(dir.join("x.npy"), raw_npy("<f4", "(3, 2)", &x)).unwrap();
    std::fs::write(dir.join("y.npy"), raw_npy("<f4", "(3,)", &y)).unwrap();
    std::fs::write(dir.join("short.npy"), raw_npy("<f4", "(3, 2)", &x[..22])).unwrap();
    std::fs::write(dir.join("half.npy"), raw_npy("<f2", "(3, 2)", &x[..12])).unwrap();
    std::fs::write(dir.join("big.npy"), raw_npy(">f4", "(3, 2)", &x)).unwrap();
    std::fs::write(dir.join("x8.npy"), raw_npy("<f8", "(3, 2)", &widened(&x))).unwrap();
    std::fs::write(dir.join("over.csv"), "1,2\n3,1e39\n5,6\n").unwrap();
    let problem = |name: &str, dtype: &str, x_path: &str| {
        let path = dir.join(name);
        let dtype = if dtype.is_empty() {
            String::new()
        } else {
            format!(r#""dtype": {dtype}, "#)
        };
        std::fs::write(
            &path,
            format!(r#"{{"kind": "logistic", "l2": 0.1, {dtype}"tasks": [{{"x_path": "{x_path}", "y_path": "y.npy"}}]}}"#),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    // The good file solves.
    let good = problem("good.json", "", "x.npy");
    assert_eq!(taskrobust(&["solve", &good]).status.code(), Some(0));
    let good32 = problem("good32.json", r#""f32""#, "x.npy");
    assert_eq!(taskrobust(&["solve", &good32]).status.code(), Some(0));
    let cases: [(&str, &str, &str, &[&str]); 7] = [
        (
            "short.json",
            "",
            "short.npy",
            &[
                "short.json",
                "tasks[0].x_path (short.npy)",
                "truncated",
                "'<f4'",
            ],
        ),
        (
            "half.json",
            "",
            "half.npy",
            &["half.json", "tasks[0].x_path (half.npy)", "dtype '<f2'"],
        ),
        (
            "big.json",
            "",
            "big.npy",
            &["tasks[0].x_path (big.npy)", "dtype '>f4'"],
        ),
        (
            "mismatch.json",
            r#""f32""#,
            "x8.npy",
            &["tasks[0].x_path (x8.npy)", "'<f8'", "\"dtype\""],
        ),
        (
            "over.json",
            r#""f32""#,
            "over.csv",
            &["tasks[0].x_path (over.csv)", "line 2, column 2", "f32"],
        ),
        (
            "f16.json",
            r#""f16""#,
            "x.npy",
            &["f16.json", "dtype", "\"f16\""],
        ),
        ("number.json", "32", "x.npy", &["number.json", "dtype"]),
    ];
    for (name, dtype, x_path, names) in cases {
        let path = problem(name, dtype, x_path);
        assert_refused(&["solve", &path], names);
    }
    // Inline numbers beyond f32's range, and y files of the other type.
    let inline = dir.join("inline.json");
    std::fs::write(
        &inline,
        r#"{"kind": "least_squares", "dtype": "f32", "tasks": [{"x": [[1, 2], [3, 1e39]], "y": [1, 2]}]}"#,
    )
    .unwrap();
    assert_refused(
        &["solve", inline.to_str().unwrap()],
        &["inline.json", "tasks[0].x[1][1]", "f32"],
    );
    let y_mismatch = dir.join("ym.json");
    std::fs::write(
        &y_mismatch,
        r#"{"kind": "least_squares", "dtype": "f64", "tasks": [{"x_path": "x8.npy", "y_path": "y.npy"}]}"#,
    )
    .unwrap();
    assert_refused(
        &["solve", y_mismatch.to_str().unwrap()],
        &["tasks[0].y_path (y.npy)", "'<f4'"],
    );
    assert_refused(
        &[
            "generate",
            "--kind",
            "logistic",
            "--dtype",
            "f16",
            "--out",
            dir.to_str().unwrap(),
        ],
        &["--dtype", "f16"],
    );
    assert_refused(
        &[
            "generate",
            "--kind",
            "quadratic",
            "--dtype",
            "f32",
            "--out",
            dir.to_str().unwrap(),
        ],
        &["--dtype"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
