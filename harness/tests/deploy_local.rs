//! Local deployment against the real `dcf-node`: namespace cluster with a
//! real partition, kill/restart, pause/resume, and complete cleanup; the
//! loopback fallback; teardown on panic; cleanup of a forgotten run.
//!
//! The namespace tests need root, `ip` and `iptables`; without them they
//! print "skipped: needs root and iptables" and return.
//!
//! `dcf-node` is not a binary of this crate, so `CARGO_BIN_EXE_dcf-node` is
//! not available. The tests use `$DCF_NODE_BIN` if set, else the
//! `dcf-node` cargo put in this test executable's `target/<profile>/`, and
//! if that is missing they build it with
//! `cargo build -p dcf --bin dcf-node` for the same profile.

use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use harness::deploy::local::namespace_prerequisites;
use harness::deploy::status::statuses;
use harness::deploy::*;
use nemesis::topology::isolate;
use nemesis::{ClusterControl, FaultError, NodeId};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn node_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DCF_NODE_BIN") {
            return PathBuf::from(p);
        }
        if let Some(p) = find_node_binary() {
            return p;
        }
        // target/<profile>/deps/<test exe>: build for <profile>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["build", "-p", "dcf", "--bin", "dcf-node"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile != "debug" {
            c.args(["--profile", &profile]);
        }
        let status = c.status().expect("cannot run cargo to build dcf-node");
        assert!(status.success(), "building dcf-node failed");
        let p = profile_dir.join("dcf-node");
        assert!(p.is_file(), "{} missing after build", p.display());
        p
    })
    .clone()
}

fn spec(n: u32, dir: &Path) -> ClusterSpec {
    ClusterSpec::new(n, node_binary(), dir)
        .param("ELECTION_TIMEOUT", 1000)
        .param("HEARTBEAT_INTERVAL", 100)
}

fn can_use_namespaces() -> bool {
    match namespace_prerequisites() {
        Ok(()) => true,
        Err(why) => {
            println!("skipped: needs root and iptables ({why})");
            false
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes through the leader, retrying until it succeeds or `within` passes.
fn put(d: &dyn Deployment, key: &str, value: i64, within: Duration) {
    let rt = rt();
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        let mut c = KvClient::new(d.client_endpoints(), Duration::from_secs(2));
        let r = rt.block_on(c.call(
            RequestBody::Put {
                key: key.into(),
                value: json!(value),
            },
            true,
        ));
        if r.outcome == Outcome::Ok {
            return;
        }
        last = Some(r);
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("write {key}={value} did not succeed within {within:?}: {last:?}");
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn endpoints(d: &dyn Deployment) -> Vec<(NodeId, String)> {
    d.nodes()
        .iter()
        .map(|n| (n.id, n.client_addr.to_string()))
        .collect()
}

fn output(program: &str, args: &[&str]) -> String {
    let o = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing of the run is left: processes, namespaces, links, host rules.
fn assert_clean(tag: &str, base_dir: &Path) {
    let procs = output("pgrep", &["-f", &base_dir.display().to_string()]);
    assert!(procs.trim().is_empty(), "node processes left: {procs}");
    if !tag.is_empty() {
        let ns = output("ip", &["netns", "list"]);
        assert!(!ns.contains(tag), "namespaces left: {ns}");
        let links = output("ip", &["-o", "link"]);
        assert!(!links.contains(tag), "links left: {links}");
        let rules = output("iptables", &["-w", "-S"]);
        assert!(!rules.contains(tag), "iptables rules left: {rules}");
    }
}

#[test]
fn namespace_cluster_with_real_faults_cleans_up() {
    if !can_use_namespaces() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run");
    let d = LocalDeployment::new(
        spec(3, &base),
        LocalOptions {
            mode: LocalMode::Namespaces,
            ..LocalOptions::default()
        },
    );
    let tag = d.tag().to_string();
    d.setup().unwrap();
    assert!(d.uses_namespaces());
    assert!(d.partitions_supported().is_ok());
    let bridge = d.bridge().unwrap();
    assert!(bridge.contains(&tag));
    assert!(d.describe().contains("namespaces"), "{}", d.describe());
    let cfg: serde_json::Value = serde_json::from_str(&d.config_json()).unwrap();
    assert_eq!(cfg.as_array().unwrap().len(), 3);
    assert!(cfg[0]["ip"].as_str().unwrap().starts_with("198.1"), "{cfg}");

    let leader = wait_for_leader(&d, Duration::from_secs(10)).expect("no leader");
    put(&d, "k", 1, Duration::from_secs(10));

    // Isolate the leader: a kernel drop in every receiving namespace.
    let nodes = d.node_ids();
    d.partition(&isolate(&nodes, leader)).unwrap();
    let rules = d
        .run_command(leader, &["iptables".into(), "-S".into(), "INPUT".into()])
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert_eq!(rules.matches("-j DROP").count(), 2, "{rules}");
    if Path::new("/bin/bash").exists() {
        // A TCP connect from the isolated leader to a peer's port times out.
        let peer = d.nodes().into_iter().find(|n| n.id != leader).unwrap();
        let probe = format!(
            "timeout 2 bash -c '</dev/tcp/{}/{}' && echo reached || echo blocked",
            peer.peer_addr.ip(),
            peer.peer_addr.port()
        );
        let o = d
            .run_command(leader, &["bash".into(), "-c".into(), probe])
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "blocked");
    }
    // The majority elects a new leader, and the harness still reaches all.
    wait_until(
        "a new leader in the majority",
        Duration::from_secs(12),
        || d.leader().is_some_and(|l| l != leader),
    );
    let st = statuses(&endpoints(&d), Duration::from_millis(800));
    assert!(
        st.iter().all(|(_, s)| s.is_some()),
        "harness cannot reach every node: {st:?}"
    );
    put(&d, "k", 2, Duration::from_secs(10));

    d.heal().unwrap();
    let rules = d
        .run_command(leader, &["iptables".into(), "-S".into(), "INPUT".into()])
        .unwrap();
    assert!(!String::from_utf8_lossy(&rules.stdout).contains("DROP"));

    // Kill and restart a node.
    let victim = 2;
    let before = d.pid_of(victim).unwrap();
    d.kill(victim).unwrap();
    assert_eq!(d.pid_of(victim), None);
    assert!(
        !Path::new(&format!("/proc/{before}")).exists(),
        "killed process not reaped"
    );
    d.kill(victim).unwrap(); // no-op when not running
    d.start(victim).unwrap();
    let after = d.pid_of(victim).unwrap();
    assert_ne!(before, after);
    wait_until(
        "the restarted node to answer",
        Duration::from_secs(10),
        || {
            statuses(&endpoints(&d), Duration::from_millis(500))[victim as usize - 1]
                .1
                .is_some()
        },
    );

    // Pause and resume a node: it stops answering, then answers again.
    let paused = 3;
    d.pause(paused).unwrap();
    let state =
        std::fs::read_to_string(format!("/proc/{}/stat", d.pid_of(paused).unwrap())).unwrap();
    assert!(
        state.split_whitespace().nth(2) == Some("T"),
        "not stopped: {state}"
    );
    let st = statuses(&endpoints(&d), Duration::from_millis(400));
    assert!(st[paused as usize - 1].1.is_none(), "paused node answered");
    d.resume(paused).unwrap();
    wait_until("the resumed node to answer", Duration::from_secs(5), || {
        statuses(&endpoints(&d), Duration::from_millis(500))[paused as usize - 1]
            .1
            .is_some()
    });
    put(&d, "k", 3, Duration::from_secs(10));

    // Collect and run commands.
    let dest = dir.path().join("collected/n1");
    d.collect(1, &dest).unwrap();
    assert!(dest.join("stderr.log").is_file());
    assert!(dest.join("data/dcf-node.log").is_file());

    // Pause one node again so teardown has to kill a stopped process.
    d.pause(1).unwrap();
    d.partition(&isolate(&nodes, 2)).unwrap();
    d.teardown().unwrap();
    assert_clean(&tag, &base);
    d.teardown().unwrap(); // idempotent
    let reg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.registry_path()).unwrap()).unwrap();
    for key in ["pids", "netns", "links", "host_rules"] {
        assert_eq!(reg[key], json!([]), "{key} still recorded: {reg}");
    }
    drop(d);
    assert_clean(&tag, &base);
}

#[test]
fn loopback_fallback_runs_without_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run");
    let d = Arc::new(LocalDeployment::new(
        spec(3, &base),
        LocalOptions {
            mode: LocalMode::Loopback,
            ..LocalOptions::default()
        },
    ));
    d.setup().unwrap();
    assert!(!d.uses_namespaces());
    assert!(d.nodes().iter().all(|n| n.client_addr.ip().is_loopback()));
    let why = d.partitions_supported().unwrap_err();
    assert!(why.contains("apt-get install iptables iproute2"), "{why}");
    let control = d.clone().control();
    match control.partition(&isolate(&[1, 2, 3], 1)) {
        Err(FaultError::Unsupported(m)) => assert!(m.contains("root")),
        other => panic!("expected unsupported, got {other:?}"),
    }
    control.heal().unwrap();
    wait_for_leader(&*d, Duration::from_secs(10)).expect("no leader on loopback");
    put(&*d, "k", 1, Duration::from_secs(10));
    d.kill(1).unwrap();
    d.start(1).unwrap();
    d.stop_all();
    assert_eq!(d.pid_of(1), None);
    d.start_all().unwrap();
    assert!(d.pid_of(2).is_some());
    d.teardown().unwrap();
    assert_clean("", &base);
}

#[test]
fn a_panic_after_setup_still_tears_everything_down() {
    if !can_use_namespaces() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run");
    let tag = Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let d = LocalDeployment::new(spec(3, &base), LocalOptions::default());
        *tag.lock().unwrap() = d.tag().to_string();
        d.setup().unwrap();
        assert!(d.uses_namespaces());
        d.partition(&isolate(&d.node_ids(), 1)).unwrap();
        d.pause(2).unwrap();
        panic!("test body fails in the middle");
    });
    assert!(result.is_err());
    let tag = tag.into_inner().unwrap();
    assert!(!tag.is_empty());
    assert_clean(&tag, &base);
}

#[test]
fn cleanup_leftovers_removes_a_forgotten_run() {
    if !can_use_namespaces() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run");
    let d = LocalDeployment::new(spec(3, &base), LocalOptions::default());
    let tag = d.tag().to_string();
    d.setup().unwrap();
    // As if the harness were killed: nothing runs teardown.
    std::mem::forget(d);
    assert!(output("ip", &["netns", "list"]).contains(&tag));
    let pids = Registry::load(&base.join(RESOURCES_FILE)).unwrap().pids;
    assert_eq!(pids.len(), 3);
    let report = cleanup_leftovers(&base).unwrap();
    assert!(
        report.removed.iter().any(|r| r.starts_with("netns")),
        "{report:?}"
    );
    // The forgotten nodes are still this process's children: reap them so
    // no zombie outlives the test.
    for pid in pids {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        assert_eq!(r, pid, "node {pid} was not killed");
    }
    assert_clean(&tag, &base);
    let again = cleanup_leftovers(&base).unwrap();
    assert!(again.removed.is_empty(), "{again:?}");
}

#[test]
fn nemesis_schedule_runs_against_real_namespaces() {
    if !can_use_namespaces() {
        return;
    }
    use nemesis::{parse_schedule, FaultKind, Nemesis, Phase, Schedule};
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run");
    let d = Arc::new(LocalDeployment::new(
        spec(3, &base),
        LocalOptions::default(),
    ));
    let tag = d.tag().to_string();
    d.setup().unwrap();
    wait_for_leader(&*d, Duration::from_secs(10)).expect("no leader");
    let steps =
        parse_schedule("0:partition:leader,1:heal,1.2:pause:one,2:resume,2.2:kill:minority")
            .unwrap();
    let nem = Nemesis::new(
        d.clone().control(),
        FaultKind::ALL.to_vec(),
        Schedule::Explicit(steps),
        7,
    );
    let mut events = Vec::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    nem.run(Instant::now() + Duration::from_secs(10), &stop, &mut |e| {
        events.push(e)
    });
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");
    assert_eq!(events.iter().filter(|e| e.phase == Phase::Info).count(), 5);
    let killed = nem.active().killed;
    assert_eq!(killed.len(), 1);
    let k = *killed.iter().next().unwrap();
    assert_eq!(d.pid_of(k), None);
    nem.heal_all(&mut |e| events.push(e));
    assert!(nem.active().is_empty());
    assert!(d.pid_of(k).is_some());
    put(&*d, "k", 1, Duration::from_secs(10));
    drop(nem);
    d.teardown().unwrap();
    assert_clean(&tag, &base);
}
