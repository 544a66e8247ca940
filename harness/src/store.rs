//! The store: `store/<test-name>/<timestamp>/` holding `test.json`,
//! `history.jsonl`, `results.json` and `nodes/<node>/`, with `store/latest`
//! pointing at the newest run. The JSON files are the typed structs of
//! [`reports::run_folder`], shared with the report.

use reports::run_folder::{self, ResultsFile, TestFile, HISTORY_FILE, NODES_DIR};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One run's folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `store/<name>/<timestamp>/` and points `store/latest` at it.
    pub fn create(store: &Path, name: &str) -> std::io::Result<RunDir> {
        let stamp = timestamp();
        let parent = store.join(name);
        std::fs::create_dir_all(&parent)?;
        // Claimed by an atomic mkdir: runs started in the same millisecond
        // (a zoo's or campaign's parallel jobs) never share a folder.
        let mut path = parent.join(&stamp);
        let mut n = 1;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    path = parent.join(format!("{stamp}-{n}"));
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
        std::fs::create_dir_all(path.join(NODES_DIR))?;
        let latest = store.join("latest");
        let _ = std::fs::remove_file(&latest);
        let rel = path.strip_prefix(store).unwrap_or(&path).to_path_buf();
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(&rel, &latest);
        Ok(RunDir { path })
    }

    /// An existing run folder (for `analyze`).
    pub fn open(path: &Path) -> std::io::Result<RunDir> {
        if !path.join(HISTORY_FILE).is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no history.jsonl", path.display()),
            ));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn history(&self) -> PathBuf {
        self.path.join(HISTORY_FILE)
    }

    pub fn nodes(&self) -> PathBuf {
        self.path.join(NODES_DIR)
    }

    /// Writes a JSON file atomically (temp file + rename).
    pub fn write_json<T: Serialize>(&self, name: &str, v: &T) -> std::io::Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, self.path.join(name))
    }

    /// Reads a JSON file; `None` if it is missing or is not a `T`.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        std::fs::read(self.path.join(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Writes `test.json`.
    pub fn write_test<O: Serialize>(&self, test: &TestFile<O>) -> std::io::Result<()> {
        self.write_json(run_folder::TEST_FILE, test)
    }

    /// `test.json` (all defaults when it is missing or unreadable).
    pub fn read_test(&self) -> TestFile {
        self.read_json(run_folder::TEST_FILE).unwrap_or_default()
    }

    /// Writes `results.json`.
    pub fn write_results(&self, results: &ResultsFile) -> std::io::Result<()> {
        self.write_json(run_folder::RESULTS_FILE, results)
    }

    /// `results.json`, if the run has one that can be read.
    pub fn read_results(&self) -> Option<ResultsFile> {
        self.read_json(run_folder::RESULTS_FILE)
    }
}

/// UTC time as `YYYYMMDDTHHMMSS.mmmZ`, sortable by name.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }

    #[test]
    fn run_dirs_and_latest() {
        let store = tempfile::tempdir().unwrap();
        let a = RunDir::create(store.path(), "t").unwrap();
        let b = RunDir::create(store.path(), "t").unwrap();
        assert_ne!(a.path, b.path);
        let latest = std::fs::read_link(store.path().join("latest")).unwrap();
        assert_eq!(store.path().join(latest), b.path);
        b.write_json("results.json", &serde_json::json!({"valid": true}))
            .unwrap();
        assert_eq!(
            b.read_json::<serde_json::Value>("results.json").unwrap()["valid"],
            true
        );
        assert_eq!(
            b.read_results().unwrap().valid,
            Some(checker::Validity::Valid)
        );
    }

    /// Two jobs of a zoo started in the same millisecond once shared a
    /// run folder, and one of them failed.
    #[test]
    fn runs_created_at_once_get_their_own_folders() {
        let store = tempfile::tempdir().unwrap();
        let paths: Vec<std::path::PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| RunDir::create(store.path(), "same").unwrap().path))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: std::collections::BTreeSet<_> = paths.iter().collect();
        assert_eq!(distinct.len(), paths.len(), "{paths:?}");
    }
}
