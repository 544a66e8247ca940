//! What the end-to-end test files share: the harness and node binaries, a
//! `dcf-harness test` run and its run folder's files. Each test file uses
//! a part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HARNESS: &str = env!("CARGO_BIN_EXE_dcf-harness");

/// The `dcf-node` beside the harness binary, built if it is not there
/// (`cargo test -p harness` alone does not build dcf's binaries).
pub fn node_binary() -> PathBuf {
    let harness = PathBuf::from(HARNESS);
    let dir = harness.parent().unwrap();
    let node = dir.join("dcf-node");
    if !node.is_file() {
        let profile = if dir.ends_with("release") {
            vec!["--release"]
        } else {
            vec![]
        };
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "dcf", "--bin", "dcf-node"])
            .args(profile)
            .status()
            .unwrap();
        assert!(st.success(), "building dcf-node failed");
    }
    node
}

/// A finished `dcf-harness test`.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    /// The run folder (`store/latest` resolved).
    pub dir: PathBuf,
}

/// Runs `dcf-harness test` with `args` into `store` and waits for it.
pub fn harness_test(store: &Path, args: &[&str]) -> Run {
    let node = node_binary();
    let mut all = vec!["--node-binary", node.to_str().unwrap()];
    all.extend_from_slice(args);
    harness_run(store, &all)
}

/// Runs `dcf-harness test` with exactly `args` (no node binary: for
/// another system under test) into `store` and waits for it.
pub fn harness_run(store: &Path, args: &[&str]) -> Run {
    let out = Command::new(HARNESS)
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        dir: std::fs::canonicalize(store.join("latest")).unwrap_or_default(),
    }
}

/// The run's `results.json`.
pub fn results(run: &Run) -> Value {
    serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap()
}

/// The run's `history.jsonl`, one value per line.
pub fn history_lines(run: &Run) -> Vec<Value> {
    std::fs::read_to_string(run.dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What `cmd` prints on stdout (empty if it cannot run).
pub fn stdout_of(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// No network namespace, link or iptables rule (any table) whose name
/// holds the deployment's run-unique `tag` is left.
pub fn assert_no_network_resources(tag: &str) {
    assert!(
        !stdout_of(&["ip", "netns", "list"]).contains(tag),
        "a namespace of {tag} is left"
    );
    assert!(
        !stdout_of(&["ip", "-o", "link"]).contains(tag),
        "a link of {tag} is left"
    );
    assert!(
        !stdout_of(&["iptables-save"]).contains(tag),
        "a rule of {tag} is left"
    );
}
