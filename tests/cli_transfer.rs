//! `taskrobust transfer` on bad and extreme scenarios (issue 11, items 4, 6
//! and 7): every bad scenario exits 2 with one line naming the file and the
//! field; every valid extreme one exits 0 with finite numbers and a
//! certified bound that is below what the representations achieve.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a deadline (a hang fails the test instead of stalling it).
fn run(args: &[&str]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn taskrobust");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            return Outcome {
                status: status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into(),
                stderr: String::from_utf8_lossy(&output.stderr).into(),
            };
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("taskrobust {args:?} ran over {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file in this test binary's scratch folder (one per process and test thread).
fn scratch(name: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let dir = std::env::temp_dir().join(format!(
        "taskrobust-cli-transfer-{}-{thread}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The shipped balanced scenario with a small simulation.
fn balanced() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/transfer/balanced.json");
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s["replicates"] = json!(20);
    s["n_grid"] = json!([10, 20, 40, 80]);
    s
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Exit 2 and one stderr line naming the file and `field`.
fn assert_rejected(path: &Path, field: &str, also: &str) {
    let file = path.display().to_string();
    let out = run(&["transfer", &file]);
    assert_eq!(out.status, 2, "{file}: stderr {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {}", out.stderr);
    assert!(lines[0].contains(&file), "names the file: {}", lines[0]);
    assert!(lines[0].contains(field), "names {field}: {}", lines[0]);
    assert!(lines[0].contains(also), "mentions {also}: {}", lines[0]);
    assert!(
        !lines[0].contains("--"),
        "names no solver flag: {}",
        lines[0]
    );
    assert!(out.stdout.is_empty());
}

fn scale_tasks(s: &mut Value, key: &str, factor: f64) {
    for task in s[key].as_array_mut().unwrap() {
        for v in task.as_array_mut().unwrap() {
            *v = json!(v.as_f64().unwrap() * factor);
        }
    }
}

#[test]
fn bad_scenarios_exit_2_naming_file_and_field() {
    // Wrong type deep inside.
    let mut s = balanced();
    s["upstream"][3][7] = json!("x");
    assert_rejected(
        &write("type.json", &s.to_string()),
        "upstream[3][7]",
        "string",
    );
    // Duplicate key.
    let text = balanced()
        .to_string()
        .replacen("\"d\":50", "\"d\":50,\"d\":50", 1);
    assert!(text.contains("\"d\":50,\"d\":50"));
    assert_rejected(&write("dup.json", &text), "duplicate field `d`", "");
    // Unknown key.
    let mut s = balanced();
    s["sigmaa"] = json!(1.0);
    assert_rejected(&write("unknown.json", &s.to_string()), "sigmaa", "");
    // sigma whose square overflows.
    let mut s = balanced();
    s["sigma"] = json!(1e200);
    assert_rejected(&write("sigma.json", &s.to_string()), "sigma", "rescale");
    // Huge task entries (the solver used to complain about --mu).
    let mut s = balanced();
    scale_tasks(&mut s, "upstream", 1e200);
    assert_rejected(
        &write("huge.json", &s.to_string()),
        "upstream[0]",
        "rescale",
    );
    // Every upstream task zero (the solver used to complain about --init).
    let mut s = balanced();
    scale_tasks(&mut s, "upstream", 0.0);
    assert_rejected(&write("zero.json", &s.to_string()), "upstream", "zero");
    // Everything so small that the risks underflow.
    let mut s = balanced();
    scale_tasks(&mut s, "upstream", 1e-200);
    scale_tasks(&mut s, "downstream", 1e-200);
    s["sigma"] = json!(1e-200);
    assert_rejected(&write("tiny.json", &s.to_string()), "upstream", "underflow");
}

#[test]
fn oversized_scenarios_are_refused_before_allocating() {
    let mut s = balanced();
    s["n_grid"] = json!([10, 20, 1_000_000_000_000u64]);
    assert_rejected(&write("grid.json", &s.to_string()), "n_grid[2]", "GB");
    let mut s = balanced();
    s["replicates"] = json!(1_000_000_000_000u64);
    assert_rejected(&write("reps.json", &s.to_string()), "replicates", "GB");
    let mut s = balanced();
    s["n_up"] = json!(1_000_000_000_000u64);
    assert_rejected(&write("nup.json", &s.to_string()), "n_up", "operations");
    let d = 200_000;
    let task: Vec<f64> = (0..d).map(|i| if i < 3 { 0.5 } else { 0.0 }).collect();
    let s = json!({"d": d, "k": 4, "sigma": 0.5, "epsilon": 0.3, "upstream": [task],
                   "n_grid": [10, 20], "replicates": 20, "seed": 1});
    assert_rejected(&write("wide.json", &s.to_string()), "d", "GB");
    // Special files are not read without bound.
    if Path::new("/dev/zero").exists() {
        let out = run(&["transfer", "/dev/zero"]);
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(out.stderr.contains("/dev/zero") && out.stderr.contains("regular file"));
    }
    let out = run(&["transfer", "/nonexistent/scenario.json"]);
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("/nonexistent/scenario.json"));
}

/// Runs a valid scenario and returns its JSON (every number finite).
fn run_json(s: &Value, name: &str) -> Value {
    let path = write(name, &s.to_string());
    let out = run(&["transfer", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status, 0, "{name}: {}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let finite = |v: &Value| v.as_f64().is_some_and(f64::is_finite);
    assert!(finite(&report["fantope_lower_bound"]), "{name}");
    for key in [
        "rank_k_worst_residual",
        "distance",
        "fantope_primal_worst_residual",
        "fantope_solver_gap",
    ] {
        assert!(
            finite(&report["certificate"][key]),
            "{name}: certificate.{key}"
        );
    }
    for m in ["average", "minimax"] {
        assert!(report["methods"][m]["worst_bias"]
            .as_f64()
            .is_some_and(f64::is_finite));
        for p in report["methods"][m]["curve"].as_array().unwrap() {
            for key in ["worst_mean", "worst_se", "predicted"] {
                assert!(
                    p[key].as_f64().is_some_and(f64::is_finite),
                    "{name}: {m} {key} {p}"
                );
            }
        }
    }
    report
}

/// The certified bound is below every representation's worst upstream residual
/// and, on the balanced scenario (where average is optimal, residual r = 0.05
/// times the scale), close to it, whatever sigma and the scale of beta.
#[test]
fn extreme_noise_and_scales_keep_the_bound_certified() {
    for (sigma, scale) in [
        (1e7, 1.0),
        (1e150, 1.0),
        (0.5, 1e150),
        (0.5e-140, 1e-140),
        (1e-3, 1.0),
    ] {
        let mut s = balanced();
        s["sigma"] = json!(sigma);
        scale_tasks(&mut s, "upstream", scale);
        scale_tasks(&mut s, "downstream", scale);
        let name = format!("extreme-{sigma:e}-{scale:e}.json");
        let report = run_json(&s, &name);
        let bound = report["fantope_lower_bound"].as_f64().unwrap();
        let optimum = 0.05 * scale * scale;
        for c in report["certificate"]["rank_k_candidates"]
            .as_array()
            .unwrap()
        {
            let worst = c["worst_residual"].as_f64().unwrap();
            assert!(bound <= worst, "{name}: bound {bound} above {c}");
        }
        assert!(
            bound <= optimum * (1.0 + 1e-12),
            "{name}: {bound} vs {optimum}"
        );
        assert!(
            bound >= optimum * (1.0 - 1e-3),
            "{name}: bound {bound} too loose"
        );
        assert_eq!(report["certificate"]["kind"], "ky-fan", "{name}");
        let error = report["certificate"]["error_bound"].as_f64().unwrap();
        assert!(
            error >= 0.0 && error < 1e-8 * optimum,
            "{name}: error bound {error}"
        );
    }
}
