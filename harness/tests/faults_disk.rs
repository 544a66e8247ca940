//! End-to-end runs of the disk faults (`power-loss`, `corrupt`) against
//! real `dcf-node` clusters: each must be valid on correct nodes, record
//! what it did in the history, shade its periods in the report and leave
//! nothing behind (no process, namespace, link, rule or FUSE mount).
//!
//! `power-loss` needs FUSE (`/dev/fuse`, root or `fusermount3`); without
//! it those tests say they are skipped (under CI=true they fail).

mod common;

use common::{harness_test, history_lines, node_binary, results, Run, HARNESS};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether FUSE can be used; if not, says why (a failure under CI=true).
fn fuse_or_skip() -> bool {
    let Err(why) = powercut_fs::available() else {
        return true;
    };
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "FUSE is required under CI=true: {why}"
    );
    eprintln!("skipped: power-loss needs FUSE: {why} (apt-get install fuse3)");
    false
}

fn text_of(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// Nothing of the run is left: no node process using its folder, no
/// namespace, link or filter rule named after its tag, no mount under it.
fn assert_nothing_left(dir: &Path) {
    let d = dir.to_string_lossy().to_string();
    let ps = text_of(&["pgrep", "-f", &d]);
    assert!(ps.trim().is_empty(), "node processes of {d} still run");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&d)),
        "a mount under {d} is left:\n{mounts}"
    );
    let tag = std::fs::read(dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|r| r["deployment"]["tag"].as_str().map(str::to_string))
        .or_else(|| {
            std::fs::read(dir.join("nodes").join("deploy-resources.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|r| r["tag"].as_str().map(str::to_string))
        });
    let Some(tag) = tag else { return };
    assert!(
        !text_of(&["ip", "netns", "list"]).contains(&tag),
        "netns of {tag} left"
    );
    assert!(
        !text_of(&["ip", "-o", "link"]).contains(&tag),
        "link of {tag} left"
    );
    assert!(
        !text_of(&["iptables", "-S"]).contains(&tag),
        "rule of {tag} left"
    );
}

/// A valid run whose history holds the fault's start and stop, whose
/// report shades it, and that left nothing behind; returns the history.
fn check_valid(run: &Run, start: &str, stop: &str, label: &str) -> Vec<Value> {
    assert_eq!(
        run.code, 0,
        "the run must be valid; stderr:\n{}",
        run.stderr
    );
    let r = results(run);
    assert_eq!(r["valid"], Value::Bool(true), "{r}");
    let h = history_lines(run);
    let ok = h
        .iter()
        .filter(|o| o["type"] == "ok" && o["process"] != "nemesis")
        .count();
    assert!(ok > 100, "only {ok} ok operations");
    for f in [start, stop] {
        assert!(
            h.iter()
                .any(|o| o["process"] == "nemesis" && o["f"] == f && o["type"] == "info"),
            "no {f} in the history"
        );
    }
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(report.contains(label), "the report shows {label:?} periods");
    assert_nothing_left(&run.dir);
    h
}

/// Power cuts of every node, of a majority and of the leader: correct
/// nodes lose only what they never acknowledged, come back, and the run
/// keeps their data in its folder once the mounts are gone.
#[test]
fn power_loss_is_valid_and_leaves_no_mount() {
    if !fuse_or_skip() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "power-loss",
            "--schedule",
            "2:power-loss:all,4:power-on,6:power-loss:majority,8:power-on,10:power-loss:leader,12:power-on",
            "--time-limit",
            "14",
            "--rate",
            "100",
            "--concurrency",
            "5",
            "--seed",
            "7",
        ],
    );
    let h = check_valid(&run, "start-power-loss", "stop-power-loss", "power loss");
    let cuts: Vec<&Value> = h
        .iter()
        .filter(|o| o["f"] == "start-power-loss" && o["type"] == "info")
        .collect();
    assert_eq!(cuts.len(), 3, "{cuts:?}");
    for c in &cuts {
        assert!(c["error"].is_null(), "{c}");
        let targets = c["value"]["targets"].as_array().unwrap();
        let lost = c["value"]["lost"].as_object().unwrap();
        assert_eq!(lost.len(), targets.len(), "what each target lost: {c}");
    }
    assert_eq!(cuts[0]["value"]["targets"].as_array().unwrap().len(), 3);
    // The nodes' data outlived the unmount, in the run folder.
    for n in 1..=3 {
        let log = run.dir.join(format!("nodes/n{n}/data/stream_1"));
        assert!(log.is_dir(), "{} was kept", log.display());
    }
}

/// A harness SIGKILLed while its nodes' data directories are mounted
/// leaves dead mounts; `dcf-harness cleanup` removes them.
#[test]
fn cleanup_removes_the_mounts_of_a_killed_harness() {
    if !fuse_or_skip() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let mut child = Command::new(HARNESS)
        .arg("test")
        .arg("--store")
        .arg(store.path())
        .arg("--node-binary")
        .arg(node_binary())
        .args([
            "--nodes",
            "3",
            "--nemesis",
            "power-loss",
            "--schedule",
            "30:power-loss:one",
            "--time-limit",
            "60",
            "--seed",
            "5",
        ])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let latest = store.path().join("latest");
    let end = Instant::now() + Duration::from_secs(60);
    let mut ops = 0;
    while Instant::now() < end && ops < 50 {
        std::thread::sleep(Duration::from_millis(300));
        ops = std::fs::read_to_string(latest.join("history.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
    }
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(ops >= 50, "the run started ({ops} history lines)");
    let run_dir = std::fs::canonicalize(&latest).unwrap();
    let d = run_dir.display().to_string();
    let mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&d))
            .count()
    };
    assert_eq!(mounted(), 3, "the killed harness left its 3 mounts");
    let out = Command::new(HARNESS)
        .arg("cleanup")
        .arg(&run_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mounted(), 0, "cleanup unmounted them: {stdout}");
    assert_nothing_left(&run_dir);
}

/// Nodes that acknowledge writes before fsyncing them lose acknowledged
/// writes when the power of all of them goes at once: the run is invalid.
#[test]
fn power_loss_catches_ack_before_fsync() {
    if !fuse_or_skip() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "power-loss",
            "--planted-bug",
            "ack-before-fsync",
            "--schedule",
            "3:power-loss:all,4:power-on,7:power-loss:all,8:power-on,11:power-loss:all,12:power-on",
            "--time-limit",
            "15",
            "--rate",
            "300",
            "--seed",
            "1",
        ],
    );
    assert_eq!(
        run.code, 1,
        "the defect must be caught (exit 1); stderr:\n{}",
        run.stderr
    );
    let r = results(&run);
    assert_eq!(r["decided_by"]["rule"], "checker", "{r}");
    // The writes were lost on disk, not by some other failure: every cut
    // dropped data.
    let h = history_lines(&run);
    assert!(h
        .iter()
        .filter(|o| o["f"] == "start-power-loss" && o["type"] == "info")
        .all(|o| o["value"]["lost"].as_object().is_some_and(|l| l.len() == 3)));
    assert_nothing_left(&run.dir);
}

/// Damaged files on one node at a time: correct nodes repair a torn tail
/// or a bad copy, or refuse to start (then `repair` restores the file);
/// the run stays valid, and every damage is recorded exactly.
#[test]
fn corrupt_is_valid_and_records_each_damage() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "corrupt",
            "--schedule",
            "2:corrupt:one,3.5:repair,5:corrupt:leader,6.5:repair,8:corrupt:one,9.5:repair",
            "--time-limit",
            "12",
            "--rate",
            "100",
            "--concurrency",
            "5",
            "--seed",
            "7",
        ],
    );
    let h = check_valid(&run, "start-corrupt", "stop-corrupt", "corrupt");
    let starts: Vec<&Value> = h
        .iter()
        .filter(|o| o["f"] == "start-corrupt" && o["type"] == "info")
        .collect();
    assert_eq!(starts.len(), 3);
    for s in starts {
        assert!(s["error"].is_null(), "{s}");
        let nodes = s["value"]["nodes"].as_object().unwrap();
        assert_eq!(nodes.len(), 1, "{s}");
        for what in nodes.values() {
            for field in [
                "file", "kind", "mode", "region", "offset", "bytes", "refused",
            ] {
                assert!(!what[field].is_null(), "{field} recorded: {what}");
            }
        }
    }
    // Whatever refused was repaired: every node runs at the end (no node
    // exit in the results).
    let r = results(&run);
    assert_eq!(r["node_exits"], serde_json::json!([]), "{r}");
}

/// Nodes that accept log entries without checking their checksums apply
/// damaged commands: the run is invalid (a node's own alarm that its state
/// machine got a committed entry it cannot decode, or wrong reads).
#[test]
fn corrupt_catches_no_checksum() {
    let store = tempfile::tempdir().unwrap();
    let schedule: Vec<String> = (0..7)
        .map(|i| format!("{}:corrupt:one,{}:repair", 2 + 2 * i, 3 + 2 * i))
        .collect();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "corrupt",
            "--planted-bug",
            "no-checksum",
            "--schedule",
            &schedule.join(","),
            "--time-limit",
            "17",
            "--seed",
            "3",
        ],
    );
    assert_eq!(
        run.code, 1,
        "the defect must be caught (exit 1); stderr:\n{}",
        run.stderr
    );
    let r = results(&run);
    assert_eq!(r["valid"], Value::Bool(false), "{r}");
    assert_nothing_left(&run.dir);
}
