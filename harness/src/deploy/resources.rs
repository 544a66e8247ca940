//! The resource file of a run: every deployment mirrors what it created
//! (processes, namespaces, rules, remote folders, ...) to
//! `<base_dir>/deploy-resources.json` after each change, so that
//! `dcf-harness cleanup` can remove what a killed harness left behind.
//!
//! The file is the deployment kind's own record plus a `kind` field naming
//! the kind; [`cleanup_leftovers`] reads that field and hands the file to
//! the kind's cleanup (see [`super::kinds`]). The record's layout is the
//! kind's business: only it knows how to undo what it lists.

use super::kinds;
use super::DeployError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The resource file's name inside the deployment's base folder.
pub const RESOURCES_FILE: &str = "deploy-resources.json";

/// The kind of files written before the `kind` field existed: only local
/// deployments wrote them.
const KIND_BEFORE_KINDS: &str = "local";

/// What a cleanup removed and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub removed: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    kind: &'a str,
    #[serde(flatten)]
    record: &'a T,
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(default)]
    kind: Option<String>,
}

/// Writes `record` of deployment kind `kind` to `path` atomically. Best
/// effort: a failed write must not abort a run, since the in-memory record
/// still drives teardown; it is logged.
pub fn save<T: Serialize>(path: &Path, kind: &str, record: &T) {
    let text = serde_json::to_string_pretty(&Envelope { kind, record }).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the resource file");
    }
}

/// Reads a kind's record from a resource file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, DeployError> {
    let value = read(path)?;
    serde_json::from_value(value)
        .map_err(|e| DeployError::Other(format!("{}: bad resource file: {e}", path.display())))
}

fn read(path: &Path) -> Result<Value, DeployError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DeployError::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| DeployError::Other(format!("{}: bad resource file: {e}", path.display())))
}

/// The deployment kind that wrote a resource file.
pub fn kind_of(path: &Path) -> Result<String, DeployError> {
    let k: KindOnly = serde_json::from_value(read(path)?)
        .map_err(|e| DeployError::Other(format!("{}: bad resource file: {e}", path.display())))?;
    Ok(k.kind.unwrap_or_else(|| KIND_BEFORE_KINDS.to_string()))
}

/// The resource file for `path`: the file itself, or the one inside it when
/// `path` is a folder.
pub fn file_at(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(RESOURCES_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Removes what a harness recorded in the resource file at `path` (or in
/// `path/deploy-resources.json` when `path` is a folder) but did not
/// remove, for example because it was killed, whatever deployment kind
/// wrote it. Safe to run any number of times.
pub fn cleanup_leftovers(path: &Path) -> Result<CleanupReport, DeployError> {
    let file = file_at(path);
    let name = kind_of(&file)?;
    let kind = kinds::by_name(&name).ok_or_else(|| {
        DeployError::Other(format!(
            "{}: written by a deployment kind this harness does not know: {name:?} (known: {})",
            file.display(),
            kinds::names().join(", ")
        ))
    })?;
    (kind.cleanup)(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Record {
        pids: Vec<i32>,
    }

    #[test]
    fn the_file_names_its_kind_beside_the_kinds_own_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESOURCES_FILE);
        save(&path, "some-kind", &Record { pids: vec![7] });
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(raw["kind"], "some-kind");
        assert_eq!(raw["pids"], serde_json::json!([7]));
        assert_eq!(kind_of(&path).unwrap(), "some-kind");
        assert_eq!(load::<Record>(&path).unwrap(), Record { pids: vec![7] });
        assert_eq!(file_at(dir.path()), path);
    }

    #[test]
    fn files_without_a_kind_are_local_and_unknown_kinds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESOURCES_FILE);
        std::fs::write(&path, r#"{"tag": "abc", "pids": []}"#).unwrap();
        assert_eq!(kind_of(&path).unwrap(), "local");
        std::fs::write(&path, r#"{"kind": "teleport"}"#).unwrap();
        let e = cleanup_leftovers(dir.path()).unwrap_err().to_string();
        assert!(e.contains("\"teleport\"") && e.contains("local"), "{e}");
    }
}
