//! End-to-end runs of the clock, slow-net and lossy-net faults against
//! real `dcf-node` clusters: a short run of each is valid, has its
//! start/stop operations in the history and its periods shaded in the
//! report, and leaves nothing behind (no process, namespace, rule or
//! timestamp file); a leader with a read lease and a slow clock is caught;
//! the deployment puts and removes the rules, proxies and files it says.
//!
//! They need root, `ip`, `iptables` and libfaketime (`apt-get install
//! faketime`); without them each says "skipped" and returns.

mod common;

use common::{
    assert_no_network_resources, harness_test, history_lines as history, node_binary, results,
    stdout_of as text, Run, HARNESS,
};
use harness::deploy::local::namespace_prerequisites;
use harness::deploy::*;
use nemesis::{Capability, ClockSkew, ClusterControl, LinkDelay};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// True when namespaces and libfaketime are there; else says why.
fn can_run() -> bool {
    let missing = namespace_prerequisites()
        .err()
        .or_else(|| harness::deploy::clock::libfaketime().err());
    match missing {
        None => true,
        Some(why) => {
            println!("skipped: {why}");
            false
        }
    }
}

/// Nothing of the run is left: no node process, namespace, link, host
/// rule or libfaketime file of its deployment.
fn assert_nothing_left(dir: &Path) {
    assert_nothing_left_in(&dir.join("nodes"));
}

/// [`assert_nothing_left`] for a deployment whose base folder is `nodes`.
fn assert_nothing_left_in(nodes: &Path) {
    let d = nodes.to_string_lossy().to_string();
    assert!(
        text(&["pgrep", "-f", &d]).trim().is_empty(),
        "node processes of {d} are still running"
    );
    let files: Vec<String> = std::fs::read_dir(nodes)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("faketime"))
                .collect()
        })
        .unwrap_or_default();
    assert!(files.is_empty(), "timestamp files left: {files:?}");
    let registry: Value = std::fs::read(nodes.join("deploy-resources.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    for field in ["pids", "netns", "links", "host_rules", "ns_rules", "files"] {
        let left = &registry[field];
        assert!(
            left.is_null() || left.as_array().is_some_and(|a| a.is_empty()),
            "{field} still recorded: {left}"
        );
    }
    if let Some(tag) = registry["tag"].as_str() {
        assert_no_network_resources(tag);
    }
}

/// A short valid run: `f`'s start and stop operations are in the history
/// with `key` in their values, and its colour shades the report.
fn check_valid_run(
    kind: &str,
    schedule: &str,
    params: &[&str],
    key: &str,
) -> (tempfile::TempDir, Run) {
    let store = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--nodes",
        "3",
        "--workload",
        "register",
        "--nemesis",
        kind,
        "--schedule",
        schedule,
        "--time-limit",
        "14",
        "--rate",
        "100",
        "--concurrency",
        "5",
        "--seed",
        "7",
    ];
    args.extend_from_slice(params);
    let run = harness_test(store.path(), &args);
    assert_eq!(
        run.code, 0,
        "{kind} run must be valid; stderr:\n{}",
        run.stderr
    );
    assert_eq!(results(&run)["valid"], Value::Bool(true));
    let h = history(&run);
    let ok = h
        .iter()
        .filter(|o| o["type"] == "ok" && o["process"] != "nemesis")
        .count();
    assert!(ok > 100, "only {ok} ok operations");
    for f in [format!("start-{kind}"), format!("stop-{kind}")] {
        let info = h
            .iter()
            .find(|o| o["process"] == "nemesis" && o["f"] == f && o["type"] == "info")
            .unwrap_or_else(|| panic!("no {f} in the history"));
        assert!(info["error"].is_null(), "{f} failed: {info}");
        let recorded = if f.starts_with("start-") {
            &info["value"][key]
        } else {
            &info["value"]
        };
        assert!(!recorded.is_null(), "{f} records {key}: {info}");
    }
    let style = nemesis::style_of(kind).unwrap();
    let (r, g, b) = style.colour;
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(
        report.contains(&format!("#{r:02x}{g:02x}{b:02x}")) && report.contains(style.label),
        "the report shades {kind} periods"
    );
    assert_nothing_left(&run.dir);
    (store, run)
}

/// Each mode of clock skew, on correct nodes: valid, and each skew is
/// recorded per node.
#[test]
fn register_with_clock_skew_is_valid() {
    if !can_run() {
        return;
    }
    let (_store, run) = check_valid_run(
        "clock",
        "1:clock:bump-all-2s,4:reset-clock,5:clock:strobe-one-1s,8:clock:rate-majority-4x,\
         10:reset-clock,11:clock:slow-leader-4x,13:reset-clock",
        &[],
        "clocks",
    );
    let skews: Vec<Value> = history(&run)
        .into_iter()
        .filter(|o| o["f"] == "start-clock" && o["type"] == "info")
        .map(|o| o["value"]["clocks"].clone())
        .collect();
    assert_eq!(skews.len(), 4, "{skews:?}");
    assert_eq!(skews[0].as_object().unwrap().len(), 3, "every node bumped");
    assert!(skews[3]
        .as_object()
        .unwrap()
        .values()
        .all(|s| s["rate"] == 0.25));
}

/// Delays and stalls through the link proxies are valid; a stalled
/// leader is replaced (so the proxies really carry the traffic).
#[test]
fn register_with_slow_links_is_valid_and_a_stalled_leader_is_replaced() {
    if !can_run() {
        return;
    }
    let (_store, run) = check_valid_run(
        "slow-net",
        "1:slow-net:all-delay,3:heal-slow-net,4:slow-net:leader-stall,9:heal-slow-net,\
         10:slow-net:link,12:heal-slow-net",
        &[
            "--param",
            "ELECTION_TIMEOUT=1000",
            "--param",
            "HEARTBEAT_INTERVAL=200",
        ],
        "links",
    );
    let leaderships: usize = (1..=3)
        .map(|n| {
            let log = run.dir.join(format!("nodes/n{n}/data/dcf-node.log"));
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("role changed") && l.contains("role=LEADER"))
                .count()
        })
        .sum();
    assert!(leaderships >= 2, "the stalled leader was not replaced");
}

#[test]
fn register_with_lossy_links_is_valid() {
    if !can_run() {
        return;
    }
    check_valid_run(
        "lossy-net",
        "1:lossy-net:all-30%,5:heal-lossy-net,6:lossy-net:leader-60%,10:heal-lossy-net,\
         11:lossy-net:link-90%,13:heal-lossy-net",
        &[],
        "loss",
    );
}

/// PLANTED BUG read-lease: a leader that serves reads on a lease it times
/// by its own clock, slowed 10x and cut off, keeps serving reads after the
/// others elected a new leader: the run is invalid.
#[test]
fn a_read_lease_on_a_slow_clock_is_caught() {
    if !can_run() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = harness_test(
        store.path(),
        &[
            "--nodes",
            "5",
            "--nemesis",
            "clock,partition",
            "--planted-bug",
            "read-lease",
            "--schedule",
            "3:clock:slow-leader-10x,4:partition:leader,16:heal,17:reset-clock",
            "--time-limit",
            "22",
            "--seed",
            "11",
        ],
    );
    assert_eq!(run.code, 1, "must be invalid; stderr:\n{}", run.stderr);
    let r = results(&run);
    let failing = &r["checker"]["explanation"]["failing_op"];
    assert!(
        failing["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("read"),
        "a stale read: {failing}"
    );
    assert_nothing_left(&run.dir);
}

/// The deployment's side: a timestamp file per node that follows
/// `set_clock`, a redirect rule per link, loss rules that come and go, and
/// nothing of it left after teardown.
#[test]
fn the_deployment_puts_and_removes_files_rules_and_proxies() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(3, node_binary(), dir.path())
        .param("ELECTION_TIMEOUT", 1000)
        .param("HEARTBEAT_INTERVAL", 100);
    spec.prepare = [Capability::Clock, Capability::SlowNet, Capability::LossyNet].into();
    let d = LocalDeployment::new(spec, LocalOptions::default());
    d.setup().unwrap();
    let leader = wait_for_leader(&d, Duration::from_secs(20)).expect("a leader");
    for c in [Capability::Clock, Capability::SlowNet, Capability::LossyNet] {
        assert_eq!(d.supports(c), Ok(()), "{c:?}");
    }
    let file = dir.path().join("faketime-n2");
    let offset = |f: &Path| -> f64 {
        let t = std::fs::read_to_string(f).unwrap();
        t.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = offset(&file);
    d.set_clock(
        2,
        ClockSkew {
            offset_ms: 5000,
            ..ClockSkew::NONE
        },
    )
    .unwrap();
    assert!(
        (offset(&file) - before - 5.0).abs() < 0.1,
        "the file moves by 5 s"
    );
    let ns = |n| d.netns_of(n).unwrap();
    let nat = text(&["ip", "netns", "exec", &ns(1), "iptables", "-t", "nat", "-S"]);
    assert_eq!(
        nat.matches("DNAT").count(),
        2,
        "one redirect per link: {nat}"
    );
    d.drop_packets(&[((1, 2), 500)]).unwrap();
    let mangle = || {
        text(&[
            "ip",
            "netns",
            "exec",
            &ns(2),
            "iptables",
            "-t",
            "mangle",
            "-S",
        ])
    };
    assert_eq!(
        mangle().matches("statistic").count(),
        2,
        "node 1 and its proxy: {}",
        mangle()
    );
    d.drop_packets(&[]).unwrap();
    assert!(!mangle().contains("statistic"), "{}", mangle());
    // A stalled leader cannot reach anyone through the proxies.
    let links: Vec<_> = (1..=3u32)
        .filter(|&n| n != leader)
        .flat_map(|n| [((leader, n), stall()), ((n, leader), stall())])
        .collect();
    d.shape_links(&links).unwrap();
    let start = Instant::now();
    let moved = loop {
        match d.leader() {
            Some(l) if l != leader => break true,
            _ if start.elapsed() > Duration::from_secs(20) => break false,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    d.shape_links(&[]).unwrap();
    assert!(moved, "another node leads once node {leader}'s links stall");
    d.teardown().unwrap();
    assert!(!file.exists(), "timestamp file removed");
    assert_nothing_left_in(dir.path());
    drop(d);
}

fn stall() -> LinkDelay {
    LinkDelay {
        stalled: true,
        ..LinkDelay::default()
    }
}

/// A SIGKILLed harness leaves files and rules; `dcf-harness cleanup`
/// removes them.
#[test]
fn cleanup_after_a_killed_harness_removes_clock_files_and_rules() {
    if !can_run() {
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
            "clock,slow-net,lossy-net",
            "--schedule",
            "0.5:clock:strobe-all-1s,1:lossy-net:all-10%,1.5:slow-net:all-delay",
            "--time-limit",
            "60",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let history = store.path().join("latest").join("history.jsonl");
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        let t = std::fs::read_to_string(&history).unwrap_or_default();
        if t.contains("start-slow-net") && t.lines().count() > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let run_dir = std::fs::canonicalize(store.path().join("latest")).unwrap();
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("nodes").join("deploy-resources.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        recorded["files"].as_array().map(Vec::len),
        Some(3),
        "{recorded}"
    );
    assert!(recorded["ns_rules"]
        .as_array()
        .is_some_and(|r| r.len() >= 6));
    let out = Command::new(HARNESS)
        .arg("cleanup")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_left(&run_dir);
}

/// Without namespaces slow and lossy links are refused with the fix, while
/// clocks still work; a capability the run did not ask for is refused
/// with how to ask for it.
#[test]
fn unprepared_or_impossible_faults_are_unsupported_with_the_fix() {
    if harness::deploy::clock::libfaketime().is_err() {
        println!("skipped: no libfaketime");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(3, node_binary(), dir.path());
    spec.prepare = [Capability::Clock, Capability::SlowNet, Capability::LossyNet].into();
    let d = LocalDeployment::new(
        spec,
        LocalOptions {
            mode: LocalMode::Loopback,
            ..LocalOptions::default()
        },
    );
    d.setup().unwrap();
    assert_eq!(d.supports(Capability::Clock), Ok(()));
    d.set_clock(1, ClockSkew::NONE).unwrap();
    for c in [Capability::SlowNet, Capability::LossyNet] {
        let why = d.supports(c).unwrap_err();
        assert!(why.contains("apt-get install iptables"), "{c:?}: {why}");
    }
    let e = d.drop_packets(&[]).unwrap_err().to_string();
    assert!(e.starts_with("unsupported"), "{e}");
    d.teardown().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = LocalDeployment::new(
        ClusterSpec::new(1, node_binary(), dir.path()),
        LocalOptions {
            mode: LocalMode::Loopback,
            ..LocalOptions::default()
        },
    );
    d.setup().unwrap();
    let why = d.supports(Capability::Clock).unwrap_err();
    assert!(why.contains("--nemesis"), "{why}");
    assert!(d.set_clock(1, ClockSkew::NONE).is_err());
    d.teardown().unwrap();
    assert_nothing_left_in(dir.path());
}
