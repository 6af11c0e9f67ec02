//! Computes the source digest that identifies the code in generated reports:
//! SHA-256 over the paths and contents of the crate's sources, experiment
//! parameters and lock file. Unlike a git revision, a rerun of the same code
//! reproduces it, so committed reports stay byte-identical.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const INPUTS: [&str; 7] = [
    "src",
    "core/src",
    "core/Cargo.toml",
    "experiments",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
];

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            collect(&entry.path(), files);
        }
    } else if path.is_file() {
        files.push(path.to_path_buf());
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
        collect(&root.join(input), &mut files);
    }
    let mut relative: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|f| {
            let name = f
                .strip_prefix(&root)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            (name, f)
        })
        .collect();
    relative.sort();
    let mut hasher = Sha256::new();
    for (name, path) in &relative {
        let bytes = std::fs::read(path).unwrap_or_default();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=TASKROBUST_SOURCE_DIGEST={}", &digest[..16]);
}
