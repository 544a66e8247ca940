//! End-to-end runs of `dcf-harness test` against real `dcf-node` clusters:
//! one short register test per fault kind (each must be valid and leave
//! nothing behind), a broken node option that must be caught, and a
//! harness killed mid-run whose history can still be analysed.
//!
//! These need root, `ip` and `iptables` for namespaces; without them the
//! partition test reports itself skipped and the others run on loopback.

mod common;

use common::{harness_test, history_lines, node_binary, results, Run, HARNESS};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn namespaces_available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip").arg("-V").output().is_ok();
    let ipt = Command::new("iptables").arg("--version").output().is_ok();
    root && ip && ipt
}

/// Nothing of the run is left: no node process using its folder, no
/// namespace, link or host filter rule named after its deployment tag.
fn assert_nothing_left(run: &Run) {
    let dir = run.dir.to_string_lossy().to_string();
    let ps = Command::new("pgrep").args(["-f", &dir]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "node processes of {dir} are still running"
    );
    let tag = std::fs::read(run.dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|r| r["deployment"]["tag"].as_str().map(str::to_string))
        .or_else(|| {
            // A killed harness wrote no results; its resource registry names the tag.
            std::fs::read(run.dir.join("nodes").join("deploy-resources.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|r| r["tag"].as_str().map(str::to_string))
        });
    let Some(tag) = tag else {
        return;
    };
    let text = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    };
    assert!(
        !text(&["ip", "netns", "list"]).contains(&tag),
        "a namespace of run {tag} is left"
    );
    assert!(
        !text(&["ip", "-o", "link"]).contains(&tag),
        "a link of run {tag} is left"
    );
    assert!(
        !text(&["iptables", "-S"]).contains(&tag),
        "a filter rule of run {tag} is left"
    );
}

/// Starts `dcf-harness test ARGS` in the background and waits until its
/// history holds more than `ops` lines; returns the child and how many
/// lines there were.
fn spawn_and_wait_for_history(
    store: &Path,
    args: &[&str],
    ops: usize,
) -> (std::process::Child, usize) {
    let child = Command::new(HARNESS)
        .arg("test")
        .arg("--store")
        .arg(store)
        .arg("--node-binary")
        .arg(node_binary())
        .args(args)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let history = store.join("latest").join("history.jsonl");
    let end = Instant::now() + Duration::from_secs(40);
    let mut n = 0;
    while Instant::now() < end && n <= ops {
        std::thread::sleep(Duration::from_millis(500));
        n = std::fs::read_to_string(&history)
            .map(|t| t.lines().count())
            .unwrap_or(0);
    }
    (child, n)
}

/// Runs `dcf-harness analyze DIR`; returns its exit code and stdout.
fn analyze(dir: &Path) -> (i32, String) {
    let out = Command::new(HARNESS)
        .arg("analyze")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn short_run(nemesis: &str, schedule: &str) -> (tempfile::TempDir, Run) {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            nemesis,
            "--schedule",
            schedule,
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
    (store, run)
}

fn check_valid_run(nemesis: &str, schedule: &str, expect_f: &str) {
    let (_store, run) = short_run(nemesis, schedule);
    assert_eq!(
        run.code, 0,
        "{nemesis} run must be valid; stderr:\n{}",
        run.stderr
    );
    let r = results(&run);
    assert_eq!(r["valid"], Value::Bool(true), "{r}");
    let h = history_lines(&run);
    let client_ok = h
        .iter()
        .filter(|o| o["type"] == "ok" && o["process"] != "nemesis")
        .count();
    assert!(client_ok > 100, "only {client_ok} ok operations");
    assert!(
        h.iter()
            .any(|o| o["process"] == "nemesis" && o["f"] == expect_f),
        "no {expect_f} nemesis op in the history"
    );
    // The collected node logs are there (and not emptied by collection).
    let n1 = run.dir.join("nodes").join("n1");
    let stderr = std::fs::metadata(n1.join("stderr.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    let log = std::fs::metadata(n1.join("data").join("dcf-node.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        stderr > 0 && log > 0,
        "node 1's logs were collected ({stderr} and {log} bytes)"
    );
    assert_nothing_left(&run);
}

#[test]
fn register_with_partitions_is_valid() {
    if !namespaces_available() {
        eprintln!(
            "skipped: partitions need root, ip and iptables (apt-get install iproute2 iptables)"
        );
        return;
    }
    check_valid_run(
        "partition",
        "2:partition:leader,6:heal,7:partition:halves,10:heal",
        "start-partition",
    );
}

#[test]
fn register_with_kills_is_valid() {
    check_valid_run(
        "kill",
        "2:kill:leader,5:restart,7:kill:minority,10:restart",
        "start-kill",
    );
}

/// Compaction on every node, then kills and restarts: the restarted nodes
/// come back from their checkpoints, and lagging ones get the leader's.
#[test]
fn register_with_compaction_and_kills_is_valid() {
    check_valid_run(
        "compact,kill",
        "1.5:compact:all,3:kill:minority,5:restart,6:compact:leader,7:kill:leader,9:restart",
        "start-compact",
    );
}

#[test]
fn register_with_pauses_is_valid() {
    check_valid_run(
        "pause",
        "2:pause:leader,5:resume,7:pause:one,10:resume",
        "start-pause",
    );
}

#[test]
fn list_append_with_pauses_is_valid() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--workload",
            "list-append",
            "--nemesis",
            "pause",
            "--schedule",
            "2:pause:leader,5:resume",
            "--time-limit",
            "8",
            "--rate",
            "100",
            "--concurrency",
            "4",
            "--seed",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_nothing_left(&run);
}

/// A node that serves reads from local state without confirming
/// leadership must be caught under partitions.
#[test]
fn unsafe_local_reads_are_caught() {
    if !namespaces_available() {
        eprintln!(
            "skipped: partitions need root, ip and iptables (apt-get install iproute2 iptables)"
        );
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--planted-bug",
            "local-reads",
            "--schedule",
            "2:partition:leader,9:heal,11:partition:leader,18:heal",
            "--time-limit",
            "20",
            "--rate",
            "200",
            "--concurrency",
            "10",
            "--seed",
            "11",
        ],
    );
    assert_eq!(
        run.code, 1,
        "the broken node must be caught (exit 1); stderr:\n{}",
        run.stderr
    );
    let r = results(&run);
    assert_eq!(r["valid"], Value::Bool(false));
    // The failure names the node that served the failing operation and
    // what the nemesis was doing to it.
    let failing = &r["checker"]["explanation"]["failing_op"];
    assert!(
        failing["served_by"]
            .as_str()
            .is_some_and(|n| n.starts_with('n')),
        "{failing}"
    );
    assert!(failing["nemesis"].as_str().is_some(), "{failing}");
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(report.contains("what the nemesis was doing to that node"));
    assert_nothing_left(&run);
}

/// SIGKILL of the harness mid-run leaves a history that `analyze` can check;
/// `cleanup` removes what the killed harness left behind.
#[test]
fn killed_harness_leaves_an_analysable_history() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "3",
        "--nemesis",
        "none",
        "--time-limit",
        "60",
        "--rate",
        "100",
        "--seed",
        "5",
    ];
    let (mut child, ops) = spawn_and_wait_for_history(store.path(), &args, 200);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(ops > 200, "the run recorded operations before the kill");
    let latest = store.path().join("latest");
    let run_dir = std::fs::canonicalize(&latest).unwrap();
    let cleanup = Command::new(HARNESS)
        .arg("cleanup")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    let (code, stdout) = analyze(&run_dir);
    assert_eq!(code, 0, "analyze: {stdout}");
    assert!(run_dir.join("results.json").is_file());
    assert_nothing_left(&Run {
        code: 0,
        stderr: String::new(),
        dir: run_dir,
    });
}

/// `analyze` of a history altered by hand (one read value changed)
/// reports it invalid.
#[test]
fn altered_history_is_invalid() {
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "5",
            "--rate",
            "100",
            "--seed",
            "9",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A panic in a node log makes the run at least unknown, never valid.
    let log = run.dir.join("nodes").join("n2").join("stderr.log");
    let original = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::write(
        &log,
        format!("{original}thread 'main' panicked at src/x.rs:1:1:\nboom\n"),
    )
    .unwrap();
    let (code, stdout) = analyze(&run.dir);
    assert_eq!(code, 2, "{stdout}");
    // A node's own safety alarm makes it invalid, at whatever level it is logged.
    std::fs::write(
        &log,
        format!(
            "{original}2026 WARN dcf: DCF exception stream=1 exception=COMMITTED_ENTRY_CONFLICT\n"
        ),
    )
    .unwrap();
    let (code, stdout) = analyze(&run.dir);
    assert_eq!(code, 1, "{stdout}");
    let r: Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["decided_by"]["rule"], "safety-alarm", "{r}");
    std::fs::write(&log, original).unwrap();
    let text = std::fs::read_to_string(run.dir.join("history.jsonl")).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Change an ok read of a written value to a value nobody wrote.
    let pos = lines
        .iter()
        .position(|o| o["type"] == "ok" && o["f"] == "read" && o["value"].is_u64())
        .expect("an ok read of a value");
    lines[pos]["value"] = Value::from(4242);
    let altered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(run.dir.join("history.jsonl"), altered.join("\n") + "\n").unwrap();
    let (code, stdout) = analyze(&run.dir);
    assert_eq!(code, 1, "{stdout}");
    let r: Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["valid"], Value::Bool(false));
}

/// SIGTERM mid-run: the harness heals, tears everything down, still checks
/// what it recorded, and marks the run interrupted.
#[test]
fn sigterm_tears_down_and_checks() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "3",
        "--nemesis",
        "pause",
        "--schedule",
        "1:pause:one",
        "--time-limit",
        "60",
        "--seed",
        "13",
    ];
    let (mut child, _) = spawn_and_wait_for_history(store.path(), &args, 100);
    let latest = store.path().join("latest");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "an interrupted but valid run exits 0"
    );
    let run_dir = std::fs::canonicalize(&latest).unwrap();
    let r: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["interrupted"], Value::Bool(true));
    assert_eq!(r["valid"], Value::Bool(true));
    assert_nothing_left(&Run {
        code: 0,
        stderr: String::new(),
        dir: run_dir,
    });
}

/// Partitions asked for where they cannot be injected (loopback): the run
/// is unknown with the reason in results.json and the report, unless
/// `--accept-unsupported-faults` is given.
#[test]
fn uninjectable_partitions_make_the_run_unknown_unless_accepted() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "3",
        "--deploy",
        "loopback",
        "--nemesis",
        "partition",
        "--schedule",
        "1:partition:one,3:heal",
        "--time-limit",
        "4",
        "--rate",
        "100",
        "--seed",
        "17",
    ];
    let run = harness_test(store.path(), &args);
    assert_eq!(run.code, 2, "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("--accept-unsupported-faults"),
        "{}",
        run.stderr
    );
    let r = results(&run);
    assert_eq!(r["valid"], "unknown");
    assert_eq!(r["decided_by"]["rule"], "fault-not-injected", "{r}");
    let reason = r["decided_by"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("partition one"), "{reason}");
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(
        report.contains("could not be injected"),
        "the report shows why"
    );
    assert_nothing_left(&run);

    let mut accepted = args.to_vec();
    accepted.push("--accept-unsupported-faults");
    let run = harness_test(store.path(), &accepted);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let r = results(&run);
    assert_eq!(r["decided_by"]["rule"], "checker", "{r}");
    assert!(
        r["health"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("accepted"),
        "{r}"
    );
    assert_nothing_left(&run);
}

/// A node that dies while no fault stopped it makes the run unknown.
#[test]
fn a_node_that_exits_on_its_own_makes_the_run_unknown() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "3",
        "--deploy",
        "loopback",
        "--nemesis",
        "none",
        "--time-limit",
        "6",
        "--rate",
        "100",
        "--seed",
        "19",
    ];
    let (child, _) = spawn_and_wait_for_history(store.path(), &args, 50);
    // Kill node 3 behind the harness's back (not a nemesis fault).
    let run_dir = std::fs::canonicalize(store.path().join("latest")).unwrap();
    let pattern = run_dir.join("nodes").join("n3").join("data");
    let found = Command::new("pgrep")
        .args(["-f", &pattern.display().to_string()])
        .output()
        .unwrap();
    let pids: Vec<i32> = String::from_utf8_lossy(&found.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "node 3 runs as one process: {pids:?}");
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "the run is unknown");
    let run = Run {
        code: 2,
        stderr: String::new(),
        dir: run_dir,
    };
    let r = results(&run);
    assert_eq!(r["decided_by"]["rule"], "node-exited", "{r}");
    assert!(
        r["decided_by"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("n3 exited"),
        "{r}"
    );
    assert_nothing_left(&run);
}
