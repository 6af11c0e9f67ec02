//! Files written whole or not at all (checkpoints, reports). Atomic file output: write to a temporary file in the target's directory,
//! flush it to disk, then rename it over the target. A reader (or a crash)
//! sees either the old file or the complete new one, never half of it.

use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hidden temp name next to `path`, unique per process and call.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = format!(
        ".{}.{}.{unique}.tmp",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(temp))
}

/// Streams the file's content through `fill`, then renames it into place.
/// On any error the temp file is removed and `path` is left untouched.
pub fn write_atomic_with<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let temp = temp_path(path)?;
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        // Data must be on disk before the rename makes it visible.
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    match result {
        Ok(()) => {
            sync_parent(path);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", path.display()),
            ))
        }
    }
}

/// Best effort: persist the rename itself (directory entry). Not all
/// platforms allow opening a directory, so failures are ignored.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `text` to `path` atomically.
pub fn write_text_atomic(path: &Path, text: &str) -> io::Result<()> {
    write_atomic(path, text.as_bytes())
}

/// Writes `value` as pretty-printed JSON (with a final newline) atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_text_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_dir::TestDir;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = TestDir::new("atomic-ok");
        let path = dir.path().join("out.txt");
        write_text_atomic(&path, "first").unwrap();
        write_text_atomic(&path, "second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn failed_write_keeps_old_file_and_removes_temp() {
        let dir = TestDir::new("atomic-fail");
        let path = dir.path().join("out.txt");
        write_text_atomic(&path, "old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"half of the new con")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn missing_directory_is_an_error_not_a_panic() {
        let dir = TestDir::new("atomic-nodir");
        let path = dir.path().join("no/such/dir/out.json");
        assert!(write_json_atomic(&path, &serde_json::json!({"a": 1})).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn json_round_trip() {
        let dir = TestDir::new("atomic-json");
        let path = dir.path().join("v.json");
        let value = serde_json::json!({"gap": 1.5e-9, "weights": [0.25, 0.75]});
        write_json_atomic(&path, &value).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}

/// Test support shared by the workspace's crates (not part of the API).
#[doc(hidden)]
pub mod test_dir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TestDir(PathBuf);

    impl TestDir {
        /// Creates `taskrobust-<tag>-<pid>-<n>` under the temp dir.
        ///
        /// # Panics
        /// If the directory cannot be created (a test cannot go on without it).
        pub fn new(tag: &str) -> Self {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("taskrobust-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create test dir");
            Self(path)
        }

        /// The directory.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
