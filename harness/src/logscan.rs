//! Scans collected node logs for safety alarms, panics and errors, so a run
//! in which a node raised an alarm or panicked is never reported silently
//! valid.

use reports::run_folder::{LogFinding, ResultsFile};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A log line worth a reader's attention.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Finding {
    pub node: String,
    pub file: String,
    pub line: usize,
    pub kind: &'static str,
    pub text: String,
}

/// Classifies one log line: `safety-alarm`, `panic`, `error`, or nothing
/// (the report's rule, so the verdict and the page agree).
pub use reports::logs::classify;

impl From<Finding> for LogFinding {
    fn from(f: Finding) -> LogFinding {
        LogFinding {
            node: f.node,
            file: f.file,
            line: f.line,
            kind: f.kind.to_string(),
            text: f.text,
        }
    }
}

/// Most findings of one kind listed per log file.
pub const PER_FILE: usize = 50;

/// Scans the node logs into `results.json`'s fields: the panic count and
/// every finding (at most [`PER_FILE`] of a kind per file).
pub fn record(results: &mut ResultsFile, nodes_dir: &Path) {
    let findings = scan(nodes_dir, PER_FILE);
    results.node_panics = Some(findings.iter().filter(|f| f.kind == "panic").count() as u64);
    results.log_findings = Some(findings.into_iter().map(LogFinding::from).collect());
}

/// Every finding in the `*.log` / `*.stderr` files under `nodes_dir/<node>/`
/// (at most `limit` of each kind per file), then the violations of the
/// rules [`crate::log_audit`] checks across them (at most `limit`).
pub fn scan(nodes_dir: &Path, limit: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for node_dir in reports::logs::node_dirs(nodes_dir) {
        let node = node_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        // The node's own logs and the dcf-node.log under its data folder.
        let mut files: Vec<PathBuf> = [node_dir.clone(), node_dir.join("data")]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "log" || e == "stderr")
            })
            .collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            // Counted per kind, so a flood of errors cannot hide an alarm.
            let mut per_kind: std::collections::HashMap<&str, usize> = Default::default();
            for (i, l) in text.lines().enumerate() {
                if let Some(kind) = classify(l) {
                    let n = per_kind.entry(kind).or_default();
                    if *n >= limit {
                        continue;
                    }
                    *n += 1;
                    out.push(Finding {
                        node: node.clone(),
                        file: f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or("?")
                            .to_string(),
                        line: i + 1,
                        kind,
                        text: l.chars().take(500).collect(),
                    });
                }
            }
        }
    }
    // Rules across the logs (election safety, durable votes).
    out.extend(crate::log_audit::audit(nodes_dir).into_iter().take(limit));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_panics_and_errors_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = dir.path().join("n1");
        std::fs::create_dir_all(&n1).unwrap();
        std::fs::write(
            n1.join("node.stderr"),
            "ok line\nthread 'main' panicked at src/x.rs:1:1:\n2026 ERROR dcf: disk full\n",
        )
        .unwrap();
        let f = scan(dir.path(), 10);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].kind, f[0].line), ("panic", 2));
        assert_eq!((f[1].kind, f[1].line), ("error", 3));
        assert_eq!(f[0].node, "n1");
    }
}
