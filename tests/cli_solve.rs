//! `taskrobust solve`: the contract's JSON fields, the table, and exit status 2
//! with one line naming the field for every bad-input class.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskrobust-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const QUADRATIC: &str = r#"{"kind": "quadratic", "tasks": [
  {"a": [[1, 0], [0, 1]], "c": [1, 0], "b": 0},
  {"a": [[1, 0], [0, 1]], "c": [-0.5, 0.8660254037844386], "b": 0},
  {"a": [[1, 0], [0, 1]], "c": [-0.5, -0.8660254037844386], "b": 0}]}"#;

#[test]
fn json_output_has_the_contract_fields() {
    let dir = scratch("json");
    let problem = write(&dir, "p.json", QUADRATIC);
    for method in [
        "softmax-gd",
        "accelerated",
        "descent-ascent",
        "subgradient",
        "average",
        "exact",
    ] {
        let (code, stdout, stderr) = run(&[
            "solve",
            &problem,
            "--method",
            method,
            "--format",
            "json",
            "--iters",
            "300",
            "--distance",
            "2",
        ]);
        assert_eq!(code, 0, "{method}: {stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        for field in [
            "method",
            "iterations",
            "max_loss",
            "lower_bound",
            "gap",
            "losses",
            "weights",
            "theta",
            "seconds",
        ] {
            assert!(!v[field].is_null(), "{method}: missing {field}");
        }
        assert_eq!(v["method"], method);
        let weights: Vec<f64> = serde_json::from_value(v["weights"].clone()).unwrap();
        assert!(
            (weights.iter().sum::<f64>() - 1.0).abs() < 1e-12 && weights.iter().all(|&w| w >= 0.0)
        );
        let (f, lb) = (
            v["max_loss"].as_f64().unwrap(),
            v["lower_bound"].as_f64().unwrap(),
        );
        assert!(
            lb <= 0.5 + 1e-12 && f >= 0.5 - 1e-12,
            "{method}: [{lb}, {f}] must contain OPT = 1/2"
        );
        assert!((v["gap"].as_f64().unwrap() - (f - lb)).abs() < 1e-15);
    }
}

#[test]
fn fixed_step_and_mu_make_softmax_gd_reproducible_by_hand() {
    // Two isotropic tasks in 1-D: f_1 = (x - 1)^2 / 2, f_2 = (x + 1)^2 / 2 + 0.1.
    let dir = scratch("manual");
    let problem = write(
        &dir,
        "p.json",
        r#"{"kind": "quadratic", "tasks": [
        {"a": [[1]], "c": [1], "b": 0}, {"a": [[1]], "c": [-1], "b": 0.1}]}"#,
    );
    let (code, stdout, _) = run(&[
        "solve", &problem, "--format", "json", "--mu", "0.2", "--step", "0.3", "--iters", "7",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let mut x: f64 = 0.0;
    for _ in 0..7 {
        let f = [(x - 1.0).powi(2) / 2.0, (x + 1.0).powi(2) / 2.0 + 0.1];
        let m = f[0].max(f[1]);
        let e = [((f[0] - m) / 0.2).exp(), ((f[1] - m) / 0.2).exp()];
        let p = [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])];
        x -= 0.3 * (p[0] * (x - 1.0) + p[1] * (x + 1.0));
    }
    let theta = v["theta"][0].as_f64().unwrap();
    assert!((theta - x).abs() <= 1e-14, "{theta} vs {x}");
}

#[test]
fn table_is_readable() {
    let dir = scratch("table");
    let problem = write(&dir, "p.json", QUADRATIC);
    let (code, stdout, _) = run(&["solve", &problem, "--method", "exact"]);
    assert_eq!(code, 0);
    for needle in ["worst loss", "lower bound", "gap", "task", "weight"] {
        assert!(stdout.contains(needle), "table lacks '{needle}':\n{stdout}");
    }
}

/// Every bad-input class: exit status 2, exactly one stderr line naming the field, no panic.
#[test]
fn bad_input_exits_with_status_2_and_one_line() {
    let dir = scratch("errors");
    let good = write(&dir, "good.json", QUADRATIC);
    let nan_npy = {
        // 2 x 2 '<f8' array with a NaN.
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for v in [1.0f64, f64::NAN, 0.0, 1.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(dir.join("nan.npy"), bytes).unwrap();
        write(&dir, "y.csv", "1\n-1\n");
        write(
            &dir,
            "nan.json",
            r#"{"kind": "least_squares", "tasks": [{"x_path": "nan.npy", "y_path": "y.csv"}]}"#,
        )
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "solve".into(),
                dir.join("missing.json").to_str().unwrap().into(),
            ],
            "missing.json",
        ),
        (
            vec!["solve".into(), write(&dir, "malformed.json", "{\"kind\": ")],
            "malformed.json",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "notasks.json",
                    r#"{"kind": "quadratic", "tasks": []}"#,
                ),
            ],
            "tasks",
        ),
        (
            vec![
                "solve".into(),
                write(&dir, "kind.json", r#"{"kind": "cubic", "tasks": []}"#),
            ],
            "kind",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "shape.json",
                    r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, 1]], "c": [1, 0, 2], "b": 0}]}"#,
                ),
            ],
            "tasks[0]",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "ragged.json",
                    r#"{"kind": "least_squares", "tasks": [{"x": [[1, 2], [3]], "y": [1, 2]}]}"#,
                ),
            ],
            "tasks[0].x",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "ylen.json",
                    r#"{"kind": "least_squares", "tasks": [{"x": [[1, 2], [3, 4]], "y": [1]}]}"#,
                ),
            ],
            "tasks[0].y",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "asym.json",
                    r#"{"kind": "quadratic", "tasks": [{"a": [[1, 2], [0, 1]], "c": [0, 0], "b": 0}]}"#,
                ),
            ],
            "tasks[0].a",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "nonpsd.json",
                    r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, -1]], "c": [0, 0], "b": 0}]}"#,
                ),
            ],
            "tasks[0].a",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "labels.json",
                    r#"{"kind": "logistic", "l2": 0.1, "tasks": [{"x": [[1, 2], [3, 4]], "y": [1, 0]}]}"#,
                ),
            ],
            "tasks[0].y",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "null.json",
                    r#"{"kind": "quadratic", "tasks": [{"a": [[1, 0], [0, 1]], "c": [null, 0], "b": 0}]}"#,
                ),
            ],
            "tasks[0].c",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "radius.json",
                    r#"{"kind": "quadratic", "radius": -1, "tasks": [{"a": [[1]], "c": [0], "b": 0}]}"#,
                ),
            ],
            "radius",
        ),
        (
            vec![
                "solve".into(),
                write(
                    &dir,
                    "l2.json",
                    r#"{"kind": "logistic", "l2": 0, "tasks": [{"x": [[1]], "y": [1]}]}"#,
                ),
            ],
            "l2",
        ),
        (vec!["solve".into(), nan_npy], "nan.npy"),
        (
            vec!["solve".into(), good.clone(), "--mu".into(), "0".into()],
            "--mu",
        ),
        (
            vec!["solve".into(), good.clone(), "--mu".into(), "NaN".into()],
            "--mu",
        ),
        (
            vec!["solve".into(), good.clone(), "--step".into(), "-0.1".into()],
            "--step",
        ),
        (
            vec!["solve".into(), good.clone(), "--iters".into(), "0".into()],
            "--iters",
        ),
        (
            vec![
                "solve".into(),
                good.clone(),
                "--method".into(),
                "newton".into(),
            ],
            "--method",
        ),
        (
            vec![
                "solve".into(),
                good.clone(),
                "--method".into(),
                "stochastic".into(),
            ],
            "--method",
        ),
        (
            vec![
                "solve".into(),
                good.clone(),
                "--init".into(),
                write(&dir, "init.csv", "1\n2\n3\n"),
            ],
            "--init",
        ),
    ];
    for (args, field) in cases {
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: status {code}, stderr {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "{args:?}: '{stderr}' does not name {field}"
        );
        assert!(stdout.is_empty());
    }
}

#[test]
fn transfer_json_has_the_contract_fields_and_bad_scenarios_exit_2() {
    let dir = scratch("transfer");
    let scenario = write(
        &dir,
        "s.json",
        r#"{"d": 6, "k": 2, "sigma": 0.5, "epsilon": 0.4,
            "upstream": [[1,0,0,0,0,0],[0.9,0.1,0,0,0,0],[0,0,1,0,0,0]],
            "n_grid": [12, 20, 40], "replicates": 200, "seed": 3}"#,
    );
    let (code, stdout, stderr) = run(&["transfer", &scenario, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["fantope_lower_bound"].is_number());
    for method in ["none", "average", "minimax"] {
        let m = &v["methods"][method];
        for field in [
            "basis",
            "bias",
            "worst_bias",
            "n_star_predicted",
            "n_star_empirical",
            "curve",
        ] {
            assert!(m.get(field).is_some(), "{method}.{field} missing");
        }
        for point in m["curve"].as_array().unwrap() {
            for field in ["n", "worst_mean", "worst_se", "predicted"] {
                assert!(point.get(field).is_some(), "{method}.curve.{field} missing");
            }
        }
    }
    assert!(v["methods"]["none"]["basis"].is_null());
    let basis = v["methods"]["minimax"]["basis"].as_array().unwrap();
    assert_eq!(basis.len(), 6);
    assert!(basis.iter().all(|row| row.as_array().unwrap().len() == 2));
    // The Fantope bound lower-bounds every rank-k representation's worst upstream residual.
    let lb = v["fantope_lower_bound"].as_f64().unwrap();
    for method in ["average", "minimax"] {
        let worst: f64 = v["methods"][method]["bias"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(lb <= worst + 1e-12, "{method}: {lb} > {worst}");
    }

    for (text, field) in [
        (
            r#"{"d": 6, "k": 7, "sigma": 0.5, "epsilon": 0.4, "upstream": [[1,0,0,0,0,0]], "n_grid": [12], "replicates": 200, "seed": 1}"#,
            "k",
        ),
        (
            r#"{"d": 6, "k": 2, "sigma": -1, "epsilon": 0.4, "upstream": [[1,0,0,0,0,0]], "n_grid": [12], "replicates": 200, "seed": 1}"#,
            "sigma",
        ),
        (
            r#"{"d": 6, "k": 2, "sigma": 0.5, "epsilon": 0.4, "upstream": [[1,0,0]], "n_grid": [12], "replicates": 200, "seed": 1}"#,
            "upstream",
        ),
        (
            r#"{"d": 6, "k": 2, "sigma": 0.5, "epsilon": 0.4, "upstream": [], "n_grid": [12], "replicates": 200, "seed": 1}"#,
            "upstream",
        ),
        (r#"{"d": 6, "k": 2"#, "s.json"),
    ] {
        let path = write(&dir, "bad.json", text);
        let (code, _, stderr) = run(&["transfer", &path]);
        assert_eq!(code, 2, "{text}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(field) || stderr.contains("bad.json"),
            "{text}: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
    let (code, _, stderr) = run(&["transfer", "--scenario", "no-such"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn checkpointed_solve_matches_and_resumes() {
    let dir = scratch("checkpoint");
    let problem = write(&dir, "p.json", QUADRATIC);
    let checkpoint = dir.join("run.toml");
    let args = [
        "solve", &problem, "--mu", "0.1", "--step", "0.2", "--iters", "30", "--format", "json",
    ];
    let (status, plain, _) = run(&args);
    assert_eq!(status, 0);
    let mut with = args.to_vec();
    with.extend([
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--checkpoint-every",
        "7",
    ]);
    let (status, first, err) = run(&with);
    assert_eq!(status, 0, "{err}");
    assert!(checkpoint.exists());
    // A rerun resumes from iteration 28 and ends at the same point.
    let (status, second, err) = run(&with);
    assert_eq!(status, 0, "{err}");
    let field = |text: &str, key: &str| serde_json::from_str::<Value>(text).unwrap()[key].clone();
    for key in ["theta", "losses", "max_loss", "lower_bound", "iterations"] {
        assert_eq!(field(&plain, key), field(&first, key), "{key}");
    }
    for key in ["theta", "losses", "max_loss", "iterations"] {
        assert_eq!(field(&plain, key), field(&second, key), "{key}");
    }
    // The stored best bound is not trusted: the resumed run re-earns its
    // bound from its own certificates, a subset of the uninterrupted run's.
    let bound = |text: &str| field(text, "lower_bound").as_f64().unwrap();
    assert!(bound(&second) <= bound(&plain), "{second}");
    let other: Vec<&str> = with
        .iter()
        .map(|&a| if a == "0.1" { "0.3" } else { a })
        .collect();
    let (status, _, err) = run(&other);
    assert_eq!(status, 2, "{err}");
    assert!(
        err.contains("--checkpoint") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (status, _, err) = run(&[&args[..], &["--checkpoint-every", "0"]].concat());
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("--checkpoint-every"), "{err}");
}

#[test]
fn generate_writes_a_problem_that_solve_reads() {
    let dir = scratch("generate");
    let out = dir.to_str().unwrap();
    for (kind, extra) in [
        ("least_squares", vec!["--samples", "50"]),
        ("logistic", vec!["--samples", "50", "--l2", "0.1"]),
        ("quadratic", vec![]),
    ] {
        let mut args = vec![
            "generate", "--kind", kind, "--tasks", "3", "--dim", "4", "--seed", "5",
        ];
        args.extend(["--out", out, "--name", kind]);
        args.extend(extra);
        let (status, stdout, err) = run(&args);
        assert_eq!(status, 0, "{kind}: {err}");
        let path = serde_json::from_str::<Value>(&stdout).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, solved, err) = run(&["solve", &path, "--iters", "5", "--format", "json"]);
        assert_eq!(status, 0, "{kind}: {err}");
        let solved: Value = serde_json::from_str(&solved).unwrap();
        assert_eq!(solved["problem"]["kind"], kind);
        assert_eq!(solved["losses"].as_array().unwrap().len(), 3);
        // The same seed writes the same files.
        let first = std::fs::read(&path).unwrap();
        run(&args);
        assert_eq!(std::fs::read(&path).unwrap(), first, "{kind}");
    }
    let (status, _, err) = run(&["generate", "--kind", "logistic", "--l2", "-1", "--out", out]);
    assert_eq!(status, 2);
    assert!(err.contains("--l2"), "{err}");
    let (status, _, err) = run(&[
        "generate",
        "--kind",
        "quadratic",
        "--tasks",
        "0",
        "--out",
        out,
    ]);
    assert_eq!(status, 2);
    assert!(err.contains("--tasks"), "{err}");
}

#[test]
fn constants_are_reported_where_used_or_asked_for() {
    let dir = scratch("constants");
    let out = dir.to_str().unwrap();
    let (status, stdout, err) = run(&[
        "generate",
        "--kind",
        "least_squares",
        "--tasks",
        "3",
        "--dim",
        "4",
        "--samples",
        "40",
        "--seed",
        "2",
        "--out",
        out,
        "--name",
        "least_squares",
    ]);
    assert_eq!(status, 0, "{err}");
    let path = serde_json::from_str::<Value>(&stdout).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let solve = |extra: &[&str]| {
        let mut args = vec!["solve", &path, "--iters", "20", "--format", "json"];
        args.extend(extra);
        let (status, stdout, err) = run(&args);
        assert_eq!(status, 0, "{err}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    let fixed = ["--mu", "0.1", "--step", "0.5"];
    // Fixed mu and step, and an exact quadratic dual as certificate: neither L
    // nor lambda (the Gram spectra) is needed, so neither is computed.
    let lean = solve(&fixed);
    assert!(lean["constants"]["smoothness"].is_null(), "{lean}");
    assert!(lean["constants"]["strong_convexity"].is_null(), "{lean}");
    // --constants computes them; the run itself is unchanged.
    let full = solve(&[&fixed[..], &["--constants"]].concat());
    let l = full["constants"]["smoothness"].as_f64().unwrap();
    let lambda = full["constants"]["strong_convexity"].as_f64().unwrap();
    assert!(l >= lambda && lambda > 0.0, "{full}");
    assert_eq!(full["theta"], lean["theta"]);
    assert_eq!(full["lower_bound"], lean["lower_bound"]);
    // The default step needs L, and reports the one it used.
    let default = solve(&["--mu", "0.1"]);
    assert_eq!(default["constants"]["smoothness"].as_f64(), Some(l));
}
