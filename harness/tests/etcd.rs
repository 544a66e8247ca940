//! etcd as the system under test (`dcf-harness test --system etcd`):
//!
//! - a short run with linearizable reads (etcd's default) under
//!   partitions and kills ends valid and leaves nothing behind;
//! - serializable reads are caught: a follower is cut off from the
//!   others, a value is written through the leader, and the follower's
//!   serializable read returns the old one, which the checker refutes
//!   (every step fixed, so the test cannot flake); a linearizable read
//!   of the same follower cannot be served;
//! - list-append transactions under pauses end valid;
//! - options and faults that do not apply to etcd are refused before
//!   anything is created;
//! - the loopback cluster and client other modules use (the benchmark)
//!   start, serve puts and gets, and go away.
//!
//! The runs need root, `ip`, `iptables` and etcd (`apt-get install
//! etcd-server`); without them they say "skipped" and return, except under
//! `CI=true`, where they fail (`.ci/install` installs etcd).

mod common;

use common::{assert_no_network_resources, harness_run, results, stdout_of, Run, HARNESS};
use harness::deploy::local::namespace_prerequisites;
use harness::deploy::{ClusterSpec, Deployment, LocalDeployment, LocalMode, LocalOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use workloads::etcd::{EtcdKv, ReadMode};

/// The etcd binary, or `None` (and why, printed) when it or what the runs
/// need is missing; under `CI=true` that is a failure.
fn etcd_or_skip(needs_namespaces: bool) -> Option<PathBuf> {
    let missing = harness::deploy::etcd::find_binary(None)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            if needs_namespaces {
                namespace_prerequisites().map(|_| p)
            } else {
                Ok(p)
            }
        });
    match missing {
        Ok(p) => Some(p),
        Err(why) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "required under CI=true: {why}"
            );
            println!("skipped: {why}");
            None
        }
    }
}

/// `dcf-harness test --system etcd` with `args`.
fn etcd_test(store: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--system", "etcd"];
    all.extend_from_slice(args);
    harness_run(store, &all)
}

/// No member process, namespace, link or rule of the run is left, and
/// the members' data directories are gone (their logs stay).
fn assert_nothing_left(run: &Run) {
    let nodes = run.dir.join("nodes");
    let d = nodes.to_string_lossy().to_string();
    assert!(
        stdout_of(&["pgrep", "-f", &d]).trim().is_empty(),
        "etcd members of {d} are still running"
    );
    let tag = results(run)["deployment"]["tag"]
        .as_str()
        .expect("the run records its deployment's tag")
        .to_string();
    assert_no_network_resources(&tag);
    for n in 1..=3 {
        let dir = nodes.join(format!("n{n}"));
        let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        assert!(log.contains("etcd"), "n{n} has no etcd log");
        assert!(!dir.join("data").exists(), "n{n}'s data directory was kept");
    }
}

fn client_ops(run: &Run) -> u64 {
    let ops = &results(run)["client_ops"];
    ops["ok"].as_u64().unwrap_or(0)
}

#[test]
fn linearizable_reads_stay_valid_under_partitions_and_kills() {
    if etcd_or_skip(true).is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = etcd_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "partition,kill",
            "--schedule",
            "2:partition:one,7:heal,9:kill:one,12:restart",
            "--time-limit",
            "14",
            "--seed",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "must be valid; stderr:\n{}", run.stderr);
    assert_eq!(results(&run)["valid"], Value::Bool(true));
    let ok = client_ops(&run);
    assert!(ok > 500, "only {ok} ok operations");
    assert_nothing_left(&run);
}

/// A follower cut off from the others keeps answering serializable reads
/// from its own state: written 1, partitioned away, 2 written through the
/// leader, a serializable read of the follower still says 1, and the
/// history of those operations is invalid to the checker. A linearizable
/// read of the same follower cannot be served (no read index without the
/// leader), so the same history with it is valid. Every step is fixed, so
/// the stale read is certain (a run with random clients can miss it when
/// the follower's clients move away after a write times out).
#[test]
fn serializable_reads_of_a_cut_off_member_are_caught() {
    let Some(etcd) = etcd_or_skip(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = LocalOptions {
        mode: LocalMode::Namespaces,
        ..LocalOptions::default()
    };
    let d = LocalDeployment::new(ClusterSpec::etcd(3, etcd, dir.path().join("nodes")), opts);
    d.setup().unwrap();
    let leader = harness::deploy::wait_for_leader(&d, Duration::from_secs(20)).expect("a leader");
    let ids: Vec<u32> = d.nodes().iter().map(|n| n.id).collect();
    let cut = *ids.iter().find(|&&id| id != leader).unwrap();
    let endpoint = |id: u32| {
        d.nodes()
            .into_iter()
            .find(|n| n.id == id)
            .unwrap()
            .client_addr
            .to_string()
    };
    let (leader_ep, cut_ep) = (endpoint(leader), endpoint(cut));
    let timeout = Duration::from_secs(3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut writer = rt.block_on(EtcdKv::connect(&leader_ep, timeout)).unwrap();
    rt.block_on(writer.put("r0", b"1")).unwrap();
    // The follower has applied 1 before it is cut off.
    let mut linear = rt.block_on(EtcdKv::connect(&cut_ep, timeout)).unwrap();
    assert_eq!(rt.block_on(linear.get("r0")).unwrap(), Some(b"1".to_vec()));
    let mut grudge = nemesis::Grudge::new();
    for &id in &ids {
        let others: std::collections::BTreeSet<u32> = if id == cut {
            ids.iter().copied().filter(|&o| o != cut).collect()
        } else {
            [cut].into()
        };
        grudge.insert(id, others);
    }
    nemesis::ClusterControl::partition(&d, &grudge).unwrap();
    rt.block_on(writer.put("r0", b"2")).unwrap();
    let mut serial = rt
        .block_on(EtcdKv::connect_with(
            &cut_ep,
            timeout,
            ReadMode::Serializable,
        ))
        .unwrap();
    let stale = rt.block_on(serial.get("r0")).unwrap();
    assert_eq!(
        stale,
        Some(b"1".to_vec()),
        "the cut-off follower answers from its own state"
    );
    let linear_read = rt.block_on(linear.get("r0"));
    assert!(
        linear_read.is_err(),
        "a linearizable read needs the leader: {linear_read:?}"
    );
    nemesis::ClusterControl::heal(&d).unwrap();
    d.teardown().unwrap();

    // The operations as a history: the stale read is caught, and with the
    // linearizable read (which failed) the history is valid.
    let op = |i: u64, p: u64, ty: &str, f: &str, v: Value| {
        serde_json::json!({"index": i, "time": i * 1000, "process": p, "type": ty,
                           "f": f, "key": 0, "value": v})
        .to_string()
    };
    let prefix = [
        op(0, 0, "invoke", "write", 1.into()),
        op(1, 0, "ok", "write", 1.into()),
        op(2, 0, "invoke", "write", 2.into()),
        op(3, 0, "ok", "write", 2.into()),
        op(4, 1, "invoke", "read", Value::Null),
    ];
    let check = |last: String| {
        let file = dir.path().join(format!("h{}.jsonl", last.len()));
        let mut lines = prefix.to_vec();
        lines.push(last);
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        Command::new(HARNESS)
            .arg("check")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        check(op(5, 1, "ok", "read", 1.into())),
        Some(1),
        "stale read not caught"
    );
    assert_eq!(
        check(op(5, 1, "fail", "read", Value::Null)),
        Some(0),
        "control"
    );
}

#[test]
fn list_append_transactions_stay_valid_under_pauses() {
    if etcd_or_skip(true).is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = etcd_test(
        store.path(),
        &[
            "--nodes",
            "3",
            "--workload",
            "list-append",
            "--nemesis",
            "pause",
            "--schedule",
            "2:pause:leader,6:resume",
            "--time-limit",
            "10",
            "--seed",
            "5",
        ],
    );
    assert_eq!(run.code, 0, "must be valid; stderr:\n{}", run.stderr);
    let ok = client_ops(&run);
    assert!(ok > 200, "only {ok} ok transactions");
    assert_nothing_left(&run);
}

/// Members are removed and added through etcd's member API: the removed
/// member is stopped, the added one starts with `--initial-cluster-state
/// existing` and joins, and the run stays valid.
#[test]
fn members_are_removed_and_added_through_the_member_api() {
    if etcd_or_skip(true).is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let run = etcd_test(
        store.path(),
        &[
            "--nodes",
            "4",
            "--nemesis",
            "none",
            // etcd refuses a removal until its members have been
            // connected for a few seconds ("unhealthy cluster").
            "--schedule",
            "8:member:remove,12:member:add",
            "--time-limit",
            "15",
            "--seed",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "must be valid; stderr:\n{}", run.stderr);
    let history = std::fs::read_to_string(run.dir.join("history.jsonl")).unwrap();
    let changes: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["f"] == "start-member" && o["type"] == "info")
        .map(|o| o["value"].clone())
        .collect();
    for change in ["remove", "add"] {
        assert!(
            changes
                .iter()
                .any(|v| v["change"] == change && v["ack"] == "ok"),
            "no acknowledged {change}: {changes:?}"
        );
    }
    let added = changes
        .iter()
        .find(|v| v["change"] == "add")
        .and_then(|v| v["node"].as_u64())
        .unwrap();
    let log = std::fs::read_to_string(run.dir.join(format!("nodes/n{added}/stderr.log")))
        .unwrap_or_default();
    assert!(
        log.contains("published local member to cluster"),
        "n{added} did not join"
    );
    assert_nothing_left(&run);
}

/// Options and faults that do not apply to etcd are usage errors: one
/// line naming the option, exit 64, no run folder.
#[test]
fn options_that_do_not_apply_to_etcd_are_refused_before_anything_is_created() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--system", "etcd", "--nemesis", "compact"],
            "--nemesis compact",
        ),
        (
            &["--system", "etcd", "--nemesis", "partition,minority"],
            "--nemesis minority",
        ),
        (
            &["--system", "etcd", "--nemesis", "corrupt"],
            "--nemesis corrupt",
        ),
        (
            &["--system", "etcd", "--nemesis", "member"],
            "--nemesis member",
        ),
        (
            &["--system", "etcd", "--nemesis", "member:promote"],
            "--nemesis member:promote",
        ),
        (
            &["--system", "etcd", "--schedule", "2:member:role"],
            "--schedule member:role",
        ),
        (&["--system", "etcd", "--nemesis", "clock"], "vDSO"),
        (
            &["--system", "etcd", "--schedule", "2:compact:one"],
            "--schedule compact",
        ),
        (
            &["--system", "etcd", "--planted-bug", "local-reads"],
            "--planted-bug",
        ),
        (
            &["--system", "etcd", "--unsafe-local-reads"],
            "--planted-bug",
        ),
        (
            &["--system", "etcd", "--write-retries", "3"],
            "--write-retries",
        ),
        (
            &["--system", "etcd", "--param", "ELECTION_TIMEOUT=500"],
            "--param",
        ),
        (
            &["--system", "etcd", "--node-binary", HARNESS],
            "--node-binary",
        ),
        (
            &[
                "--system",
                "etcd",
                "--deploy",
                "ssh",
                "--hosts",
                "root@127.0.0.1",
            ],
            "--deploy ssh",
        ),
        (&["--etcd-serializable-reads"], "--etcd-serializable-reads"),
        (
            &["--system", "dcf", "--etcd-binary", "/usr/bin/etcd"],
            "--etcd-binary",
        ),
        (&["--system", "zookeeper"], "zookeeper"),
    ];
    for (args, needle) in cases {
        let store = tempfile::tempdir().unwrap();
        let out = Command::new(HARNESS)
            .arg("test")
            .arg("--store")
            .arg(store.path().join("s"))
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, got {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err} should name {needle}");
        assert!(
            !store.path().join("s").exists(),
            "{args:?} created the store"
        );
    }
}

/// What other modules (the benchmark) use: a 3-member etcd cluster on
/// loopback, its client endpoints, puts and gets through [`EtcdKv`] from
/// several tasks, and a teardown that removes the members and their data.
#[test]
fn a_loopback_etcd_cluster_serves_puts_and_gets_and_goes_away() {
    let Some(etcd) = etcd_or_skip(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("nodes");
    let opts = LocalOptions {
        mode: LocalMode::Loopback,
        ..LocalOptions::default()
    };
    let d = LocalDeployment::new(ClusterSpec::etcd(3, etcd, &base), opts);
    d.setup().unwrap();
    let endpoints = d.client_endpoints();
    assert_eq!(endpoints.len(), 3);
    assert!(
        endpoints.iter().all(|e| e.starts_with("127.0.0.1:")),
        "{endpoints:?}"
    );
    assert!(
        harness::deploy::wait_for_leader(&d, Duration::from_secs(20)).is_some(),
        "no leader"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kv = EtcdKv::connect(&endpoints[0], Duration::from_secs(5))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let mut kv = kv.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    kv.put(&key, format!("v{i}").as_bytes()).await.unwrap();
                    kv.get(&key).await.unwrap()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Some(format!("v{i}").into_bytes()));
        }
        // Another member sees them (linearizable reads).
        let mut other = EtcdKv::connect(&endpoints[2], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(other.get("k3").await.unwrap(), Some(b"v3".to_vec()));
        assert_eq!(other.get("none").await.unwrap(), None);
    });
    d.teardown().unwrap();
    let b = base.to_string_lossy().to_string();
    assert!(
        stdout_of(&["pgrep", "-f", &b]).trim().is_empty(),
        "members left running"
    );
    for n in 1..=3 {
        assert!(!base.join(format!("n{n}/data")).exists(), "n{n} data kept");
    }
}
