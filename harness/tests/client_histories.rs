//! Histories written by the real workload client against a real one-node
//! `dcf-node` (loopback), checked as recorded and after one deliberate
//! change each: what the checker says must follow what the client wrote,
//! not what hand-made histories happen to spell.
//!
//! `dcf-node` comes from `$DCF_NODE_BIN`, or next to this test executable,
//! or is built with `cargo build -p dcf --bin dcf-node` for this profile.

use checker::list_append::{check, ListAppendOptions};
use checker::{History, Validity};
use harness::deploy::{
    find_node_binary, wait_for_leader, ClusterSpec, Deployment, LocalDeployment, LocalMode,
    LocalOptions,
};
use harness::interpreter::{perform, Counters};
use harness::recorder::Recorder;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use workloads::client::WorkloadClient;
use workloads::Invocation;

fn node_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DCF_NODE_BIN") {
            return PathBuf::from(p);
        }
        if let Some(p) = find_node_binary() {
            return p;
        }
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
        assert!(c.status().unwrap().success(), "building dcf-node failed");
        profile_dir.join("dcf-node")
    })
    .clone()
}

/// A running one-node loopback cluster; torn down when dropped.
fn cluster(base: &Path) -> LocalDeployment {
    let spec = ClusterSpec::new(1, node_binary(), base)
        .param("ELECTION_TIMEOUT", 1000)
        .param("HEARTBEAT_INTERVAL", 100);
    let d = LocalDeployment::new(
        spec,
        LocalOptions {
            mode: LocalMode::Loopback,
            ..LocalOptions::default()
        },
    );
    d.setup().expect("deploy");
    wait_for_leader(&d, Duration::from_secs(20)).expect("a leader");
    d
}

fn txn(mops: Value) -> Invocation {
    Invocation {
        f: "txn".into(),
        key: None,
        value: mops,
    }
}

/// Runs `ops` of `workload` one after another (process i runs the i-th)
/// through the workload client and the recorder, as `dcf-harness test`
/// does.
fn record(workload: &str, endpoints: Vec<String>, path: &Path, ops: &[Invocation]) {
    let codec = workloads::by_name(workload).unwrap().codec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorder = Recorder::create(path).unwrap();
    let counters = Counters::default();
    rt.block_on(async {
        let mut client = WorkloadClient::new(codec, endpoints, Duration::from_secs(3), 0);
        for (p, inv) in ops.iter().enumerate() {
            perform(&mut client, &recorder, p as u64, inv, &counters).await;
        }
    });
    assert!(recorder.take_error().is_none());
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn history(lines: &[Value]) -> History {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    History::read_jsonl(text.join("\n").as_bytes()).unwrap()
}

fn anomalies(lines: &[Value]) -> (Validity, Vec<String>) {
    let r = check(&history(lines), &ListAppendOptions::default()).unwrap();
    (r.valid, r.list_append.unwrap().anomaly_types)
}

/// The completion line of process `p`.
fn completion(lines: &mut [Value], p: u64) -> &mut Value {
    lines
        .iter_mut()
        .find(|l| l["process"] == json!(p) && l["type"] != "invoke")
        .unwrap()
}

#[test]
fn list_append_histories_from_the_real_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = cluster(&dir.path().join("nodes"));
    let path = dir.path().join("history.jsonl");
    record(
        "list-append",
        d.client_endpoints(),
        &path,
        &[
            txn(json!([["r", 5, null]])),
            txn(json!([["append", 5, 1]])),
            txn(json!([["r", 5, null]])),
            txn(json!([["append", 7, 1]])),
            txn(json!([["append", 7, 2]])),
            txn(json!([["r", 7, null]])),
        ],
    );
    d.teardown().unwrap();
    let recorded = lines(&path);
    assert!(
        recorded
            .iter()
            .filter(|l| l["type"] != "invoke")
            .all(|l| l["type"] == "ok"),
        "every operation succeeded: {recorded:?}"
    );
    // What the client wrote for a key that held nothing.
    let mut ls = recorded.clone();
    assert_eq!(completion(&mut ls, 0)["value"], json!([["r", 5, []]]));
    assert_eq!(completion(&mut ls, 5)["value"], json!([["r", 7, [1, 2]]]));
    assert_eq!(anomalies(&recorded), (Validity::Valid, vec![]));

    // Stale read: the empty read of key 5 moved after the acknowledged append.
    let mut stale = recorded.clone();
    let read: Vec<Value> = stale.drain(0..2).collect();
    stale.splice(2..2, read);
    let (valid, found) = anomalies(&stale);
    assert_eq!(valid, Validity::Invalid);
    assert!(found.contains(&"lost-append".to_string()), "{found:?}");

    // Lost append, phantom element, duplicate element in the final read.
    for (final_read, kind) in [
        (json!([2]), "lost-append"),
        (json!([1, 2, 99]), "garbage-read"),
        (json!([1, 2, 2]), "duplicate-elements"),
    ] {
        let mut broken = recorded.clone();
        completion(&mut broken, 5)["value"] = json!([["r", 7, final_read]]);
        let (valid, found) = anomalies(&broken);
        assert_eq!(valid, Validity::Invalid, "{final_read}");
        assert!(found.contains(&kind.to_string()), "{final_read}: {found:?}");
    }
}

#[test]
fn a_register_history_in_which_every_operation_failed_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = cluster(&dir.path().join("nodes"));
    let endpoints = d.client_endpoints();
    // The cluster is gone: every call fails before reaching a node.
    d.teardown().unwrap();
    let path = dir.path().join("history.jsonl");
    let reg = |f: &str, value: Value| Invocation {
        f: f.into(),
        key: Some(json!(1)),
        value,
    };
    record(
        "register",
        endpoints,
        &path,
        &[
            reg("write", json!(3)),
            reg("read", Value::Null),
            reg("cas", json!([3, 4])),
        ],
    );
    let recorded = lines(&path);
    assert!(
        recorded
            .iter()
            .filter(|l| l["type"] != "invoke")
            .all(|l| l["type"] == "fail" && l["error"][0] == "unexecuted"),
        "{recorded:?}"
    );
    let r = checker::check_history(&history(&recorded), &checker::CheckOptions::default()).unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.rule.as_deref(), Some("no-operation-succeeded"));
}

#[test]
fn a_cas_mismatch_is_recorded_from_the_nodes_code_and_checked_as_an_observation() {
    let dir = tempfile::tempdir().unwrap();
    let d = cluster(&dir.path().join("nodes"));
    let path = dir.path().join("history.jsonl");
    let reg = |f: &str, value: Value| Invocation {
        f: f.into(),
        key: Some(json!(2)),
        value,
    };
    record(
        "register",
        d.client_endpoints(),
        &path,
        &[
            reg("write", json!(3)),
            reg("cas", json!([1, 2])),
            reg("cas", json!([3, 4])),
            reg("read", Value::Null),
        ],
    );
    d.teardown().unwrap();
    let mut recorded = lines(&path);
    let failed = completion(&mut recorded, 1).clone();
    assert_eq!(failed["type"], "fail", "{failed}");
    assert_eq!(failed["error"][0], "cas-mismatch", "{failed}");
    assert_eq!(
        failed["error"][2], "cas-mismatch",
        "the node's code: {failed}"
    );
    assert_eq!(completion(&mut recorded, 3)["value"], json!(4));
    let check = |ls: &[Value]| {
        checker::check_history(&history(ls), &checker::CheckOptions::default())
            .unwrap()
            .valid
    };
    assert_eq!(check(&recorded), Validity::Valid);
    // Claim the mismatching cas expected 3, the value the register held:
    // as an observation that is impossible.
    let mut broken = recorded.clone();
    for l in broken.iter_mut().filter(|l| l["process"] == json!(1)) {
        l["value"] = json!([3, 2]);
    }
    assert_eq!(check(&broken), Validity::Invalid);
}
