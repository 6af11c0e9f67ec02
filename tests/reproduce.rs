//! `taskrobust reproduce --quick` inside the test suite: every check passes,
//! every figure and table is written, and a sharded run merged back gives the
//! same report as a single run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "taskrobust-reproduce-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn taskrobust(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn quick_reproduce_passes_every_check_and_shards_merge_to_the_same_report() {
    let single = scratch("single");
    let out = single.to_str().unwrap();
    let (code, stdout, stderr) = taskrobust(&["reproduce", "--quick", "--out", out]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let whole = report(&single);
    let checks = whole["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for check in checks {
        assert_eq!(check["passed"], true, "failed: {check}");
        for key in ["name", "passed", "measured", "theory", "detail"] {
            assert!(check.get(key).is_some(), "check lacks {key}: {check}");
        }
        // Every bound check reports its slack (bound / measured).
        let detail = check["detail"].as_str().unwrap();
        if detail.starts_with("measured <= bound") {
            let slack = check["slack"].as_f64();
            assert!(
                slack.is_some_and(|s| s >= 1.0),
                "bound check without a slack: {check}"
            );
        }
    }
    let md = std::fs::read_to_string(single.join("REPORT.md")).unwrap();
    assert!(md.contains("| slack |"), "REPORT.md has no slack column");
    for figure in whole["figures"].as_array().unwrap() {
        for key in ["png", "svg", "csv"] {
            let path = single.join(figure[key].as_str().unwrap());
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 500, "{} is missing or tiny", path.display());
        }
    }
    assert!(single.join("REPORT.md").exists());

    let sharded = scratch("sharded");
    let dir = sharded.to_str().unwrap();
    for shard in ["0/3", "1/3", "2/3"] {
        let (code, _, stderr) =
            taskrobust(&["reproduce", "--quick", "--shard", shard, "--out", dir]);
        assert_eq!(code, 0, "{stderr}");
    }
    let parts: Vec<String> = (0..3)
        .map(|i| {
            sharded
                .join(format!("parts/part-{i}-of-3.json"))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut args = vec!["merge", "--quick", "--out", dir];
    args.extend(parts.iter().map(String::as_str));
    let (code, _, stderr) = taskrobust(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report(&sharded),
        whole,
        "merged shards differ from the single run"
    );
    // Every table is identical too, byte for byte.
    let mut tables = 0;
    for entry in std::fs::read_dir(&single).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            let name = path.file_name().unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(sharded.join(name)).unwrap(),
                "{}",
                path.display()
            );
            tables += 1;
        }
    }
    assert!(tables > 0);
    // A missing part is an input error, not a silent partial report.
    let (code, _, stderr) = taskrobust(&["merge", "--quick", "--out", dir, &parts[0]]);
    assert_eq!(code, 2, "{stderr}");
    let _ = std::fs::remove_dir_all(&single);
    let _ = std::fs::remove_dir_all(&sharded);
}

#[test]
fn bad_shard_and_unknown_experiment_are_input_errors() {
    for args in [
        vec!["reproduce", "--quick", "--shard", "3/3"],
        vec!["reproduce", "--quick", "--shard", "x"],
        vec!["reproduce", "--quick", "--only", "no_such_experiment"],
    ] {
        let (code, _, stderr) = taskrobust(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1);
    }
}

#[test]
fn a_failing_check_keeps_the_run_going_writes_the_report_and_exits_1() {
    // A "binding" radius at which the ball does not bind: the certificate
    // experiment's feasibility check must fail (its Lagrangian path would go
    // untested), the other checks still run, and the report is written.
    let params = scratch("params");
    std::fs::create_dir_all(&params).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/certificate_validity.toml"),
    )
    .unwrap()
    .replace("binding_radius = 0.3", "binding_radius = 50.0");
    std::fs::write(params.join("certificate_validity.toml"), text).unwrap();
    let out = scratch("failing");
    let (code, stdout, stderr) = taskrobust(&[
        "reproduce",
        "--quick",
        "--only",
        "certificate_validity",
        "--params",
        params.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let whole = report(&out);
    assert_eq!(whole["all_passed"], false);
    let checks = whole["checks"].as_array().unwrap();
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|n| n.contains("/binding: ") && n.contains("ball binds")),
        "{failed:?}"
    );
    assert!(checks.len() > failed.len());
    assert!(std::fs::read_to_string(out.join("REPORT.md"))
        .unwrap()
        .contains("FAIL"));
    assert!(stdout.contains("FAIL"), "{stdout}");
}
