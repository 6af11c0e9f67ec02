//! `taskrobust gpu-check` without a usable CUDA device: exit status 2 and one
//! line saying "no CUDA device", never a panic. (On a machine with a GPU and a
//! `--features gpu` build this test is skipped: the device check runs instead.)

use std::process::Command;

#[test]
fn gpu_check_without_a_device_exits_with_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_taskrobust"))
        .args(["gpu-check", "--scale", "small", "--out"])
        .arg(std::env::temp_dir().join(format!("taskrobust-gpu-{}", std::process::id())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(0) {
        eprintln!("skipped: a CUDA device is present and the check ran");
        return;
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("no CUDA device"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn gpu_check_at_f32_without_a_device_exits_with_status_2_and_bad_dtypes_are_named() {
    let dir = std::env::temp_dir().join(format!("taskrobust-gpu32-{}", std::process::id()));
    let run = |dtype: &str| {
        Command::new(env!("CARGO_BIN_EXE_taskrobust"))
            .args(["gpu-check", "--scale", "small", "--dtype", dtype, "--out"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = run("f32");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) {
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("no CUDA device"), "{stderr}");
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let out = run("f16");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--dtype") && stderr.contains("f16"),
        "{stderr}"
    );
}
