//! The planted bugs that live in the node around the consensus core
//! (`truncate-without-checkpoint`, `duplicate-apply`), each caught by a
//! real run: the default run holds one short reliable catch per bug; the
//! correct node on the same runs and the recipes for longer over
//! several seeds are `#[ignore]`d (run them with
//! `cargo test --release -p harness --test zoo_host -- --ignored`).

mod common;

use common::{harness_test, history_lines, results, Run};
use dcf::planted::PlantedBug;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The zoo's recipe of `bug` (its workload, faults and schedule) for
/// `time_limit` seconds with `seed`, without the bug.
fn recipe_args(bug: PlantedBug, time_limit: &'static str, seed: &'static str) -> Vec<&'static str> {
    let mut args = bug.zoo_recipe().args.to_vec();
    args.extend(["--time-limit", time_limit, "--seed", seed]);
    args
}

fn with_bug<'a>(bug: &'a str, args: Vec<&'a str>) -> Vec<&'a str> {
    let mut v = vec!["--planted-bug", bug];
    v.extend(args);
    v
}

/// No node process, namespace or iptables rule of the run is left.
fn assert_nothing_left(run: &Run) {
    let dir = run.dir.to_string_lossy().to_string();
    let ps = Command::new("pgrep").args(["-f", &dir]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "node processes of {dir} are still running"
    );
    let Some(tag) = std::fs::read(run.dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|r| r["deployment"]["tag"].as_str().map(str::to_string))
    else {
        return;
    };
    let out = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    };
    assert!(
        !out(&["ip", "netns", "list"]).contains(&tag),
        "a namespace of run {tag} is left"
    );
    assert!(
        !out(&["iptables-save"]).contains(&tag),
        "an iptables rule of run {tag} is left"
    );
}

/// The run is invalid by the checker's verdict (not by a harness error).
fn assert_caught(run: &Run) -> Value {
    assert_eq!(
        run.code, 1,
        "the defect must be caught (exit 1); stderr:\n{}",
        run.stderr
    );
    let r = results(run);
    assert_eq!(r["valid"], Value::Bool(false), "{r}");
    assert_eq!(r["decided_by"]["rule"], "checker", "{r}");
    r
}

/// The run is valid.
fn assert_valid(run: &Run) {
    assert_eq!(
        run.code, 0,
        "the correct node must stay valid; stderr:\n{}",
        run.stderr
    );
}

/// `truncate-without-checkpoint`: the cluster restarted after an
/// unprotected truncation reads lists without the appends before it.
/// (About 30 s.)
#[test]
fn truncate_without_checkpoint_is_caught() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &with_bug(
            "truncate-without-checkpoint",
            recipe_args(PlantedBug::TruncateWithoutCheckpoint, "16", "1"),
        ),
    );
    let r = assert_caught(&run);
    let kinds = r["checker"]["list_append"]["anomaly_types"].to_string();
    assert!(kinds.contains("lost-append"), "{kinds}");
    // The node logs say the defect ran: a restart skipped the dropped entries.
    let skipped = node_logs_contain(&run.dir, "PLANTED BUG: starting past entries");
    assert!(skipped, "no node started past a hole in its state");
    assert_nothing_left(&run);
}

/// `duplicate-apply`: a retried append applied twice shows as an element
/// twice in a list. (About 40 s.)
#[test]
fn duplicate_apply_is_caught() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &with_bug(
            "duplicate-apply",
            recipe_args(PlantedBug::DuplicateApply, "28", "1"),
        ),
    );
    let r = assert_caught(&run);
    let kinds = r["checker"]["list_append"]["anomaly_types"].to_string();
    assert!(kinds.contains("duplicate"), "{kinds}");
    assert_nothing_left(&run);
}

/// The correct node on the truncate recipe: checkpoints first, so
/// nothing is lost. `cargo test --release -p harness --test zoo_host --
/// --ignored correct_node_survives_the_truncate_recipe`
#[test]
#[ignore]
fn correct_node_survives_the_truncate_recipe() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &recipe_args(PlantedBug::TruncateWithoutCheckpoint, "16", "1"),
    );
    assert_valid(&run);
    assert_nothing_left(&run);
}

/// The correct node on the duplicate recipe: retries are answered from
/// the record, no element twice, and some writes were indeed retried into
/// a definite answer. `cargo test --release -p harness --test zoo_host --
/// --ignored correct_node_survives_the_duplicate_recipe`
#[test]
#[ignore]
fn correct_node_survives_the_duplicate_recipe() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &recipe_args(PlantedBug::DuplicateApply, "28", "1"),
    );
    assert_valid(&run);
    let infos = history_lines(&run)
        .iter()
        .filter(|o| o["type"] == "info" && o["process"].is_number())
        .count();
    eprintln!("indeterminate client operations: {infos}");
    assert_nothing_left(&run);
}

/// The zoo's recipe of each bug for 40 s over seeds 1..=3 (the bug caught, the
/// correct node valid). About 6 min.
/// `cargo test --release -p harness --test zoo_host -- --ignored zoo_recipes_catch_the_host_bugs`
#[test]
#[ignore]
fn zoo_recipes_catch_the_host_bugs() {
    for bug in [
        PlantedBug::TruncateWithoutCheckpoint,
        PlantedBug::DuplicateApply,
    ] {
        for seed in ["1", "2", "3"] {
            let args = recipe_args(bug, "40", seed);
            let store = tempfile::tempdir().unwrap();
            eprintln!("{bug} seed {seed}");
            let run = harness_test(store.path(), &with_bug(bug.name(), args.clone()));
            assert_caught(&run);
            assert_nothing_left(&run);
            let store = tempfile::tempdir().unwrap();
            let run = harness_test(store.path(), &args);
            assert_valid(&run);
            assert_nothing_left(&run);
        }
    }
}

/// True if any node's log in the run folder holds `needle`.
fn node_logs_contain(dir: &Path, needle: &str) -> bool {
    let Ok(nodes) = std::fs::read_dir(dir.join("nodes")) else {
        return false;
    };
    nodes.flatten().any(|n| {
        ["stderr.log", "data/dcf-node.log"]
            .iter()
            .any(|f| std::fs::read_to_string(n.path().join(f)).is_ok_and(|t| t.contains(needle)))
    })
}
