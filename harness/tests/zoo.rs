//! A short zoo of two planted bugs and a control, so the zoo's machinery
//! (recipes, child runs, verdicts, time to detect, zoo.json, zoo.html,
//! exit status) cannot break unnoticed. Needs root (network namespaces).
//! The full zoo: `dcf-harness zoo --seeds 10 --time-limit 120`.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_short_zoo_catches_two_planted_bugs_and_keeps_the_control_valid() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    node_binary();
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(HARNESS)
        .args([
            "zoo",
            "--bug",
            "local-reads",
            "--bug",
            "minority-without-term-bump",
            "--seeds",
            "1",
            "--time-limit",
            "25",
            "--jobs",
            "2",
            "--store",
        ])
        .arg(store.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("zoo passed"), "{stdout}");
    assert!(stderr.contains("[3/3]"), "progress per run: {stderr}");

    let zoo = store.path().join("zoo-latest");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(zoo.join("zoo.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true);
    let lines = summary["lines"].as_array().unwrap();
    let names: Vec<&str> = lines.iter().map(|l| l["entry"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["local-reads", "minority-without-term-bump", "control"]
    );
    for l in lines {
        assert_eq!(
            (l["met"].as_u64(), l["runs"].as_u64()),
            (Some(1), Some(1)),
            "{l}"
        );
    }
    // A caught bug has a time to detect inside the run.
    let detect = lines[0]["median_detect_s"]
        .as_f64()
        .expect("local-reads detect time");
    assert!(detect > 0.0 && detect < 25.0, "{detect}");
    // Bug runs end once caught (--stop-on-invalid); the control runs on.
    for run in summary["runs"].as_array().unwrap() {
        let dir = run["outcome"]["run_dir"].as_str().unwrap();
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(std::path::Path::new(dir).join("results.json")).unwrap(),
        )
        .unwrap();
        let stopped = results["stopped_on_invalid_ms"].as_u64();
        match run["entry"].as_str().unwrap() {
            "control" => assert_eq!(stopped, None, "{results}"),
            // The minority checker may allow what the plain one refutes,
            // so minority runs watch only node alarms.
            "minority-without-term-bump" => {}
            _ => assert!(stopped.is_some_and(|ms| ms < 25_000), "{results}"),
        }
    }
    let page = std::fs::read_to_string(zoo.join("zoo.html")).unwrap();
    assert!(
        page.contains("caught 1/1") && page.contains("valid 1/1"),
        "{page}"
    );
    // Every run is linked, and its report is where the link says.
    let links: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(links.len(), 3, "{page}");
    for l in links {
        assert!(zoo.join(l).is_file(), "{l}");
    }
    let left = Command::new("pgrep")
        .arg("-f")
        .arg(store.path())
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
