//! `dcf-harness check` on the histories a new user would try: our
//! `history.jsonl` with the issue's list-append and register cases, and
//! the same failed cas in Jepsen EDN and in the etcd log format. Each
//! verdict, exit code and named anomaly or reason is checked, and the
//! corrected history must be valid.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const HARNESS: &str = env!("CARGO_BIN_EXE_dcf-harness");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(dir: &Path, name: &str, text: &str, args: &[&str]) -> Out {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let o = Command::new(HARNESS)
        .arg("check")
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(o: &Out) -> Value {
    serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

const STALE: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["append",5,1]]}
{"process":0,"type":"ok","f":"txn","value":[["append",5,1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r",5,null]]}
{"process":1,"type":"ok","f":"txn","value":[["r",5,READ]]}
"#;

const LOST: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["append",7,1]]}
{"process":1,"type":"invoke","f":"txn","value":[["append",7,2]]}
{"process":0,"type":"ok","f":"txn","value":[["append",7,1]]}
{"process":1,"type":"ok","f":"txn","value":[["append",7,2]]}
{"process":2,"type":"invoke","f":"txn","value":[["r",7,null]]}
{"process":2,"type":"ok","f":"txn","value":[["r",7,READ]]}
"#;

const ALL_FAILED: &str = r#"{"process":0,"type":"invoke","f":"write","key":1,"value":3}
{"process":0,"type":"fail","f":"write","key":1,"value":3,"error":["unexecuted","no leader reachable"]}
{"process":1,"type":"invoke","f":"read","key":1,"value":null}
{"process":1,"type":"fail","f":"read","key":1,"value":null,"error":["unexecuted","no leader reachable"]}
{"process":2,"type":"invoke","f":"cas","key":1,"value":[3,4]}
{"process":2,"type":"fail","f":"cas","key":1,"value":[3,4],"error":["unexecuted","no leader reachable"]}
"#;

#[test]
fn the_issues_list_append_histories_are_invalid_and_their_fixes_valid() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, bad, goods) in [
        ("stale.jsonl", STALE, "null", &["[1]"][..]),
        ("lost.jsonl", LOST, "[2]", &["[1,2]", "[2,1]"][..]),
    ] {
        let o = check(dir.path(), name, &text.replace("READ", bad), &["--explain"]);
        assert_eq!(o.code, 1, "{name}: {} {}", o.stdout, o.stderr);
        assert!(o.stdout.contains(" invalid "), "{}", o.stdout);
        assert!(o.stdout.contains("lost-append:"), "{name}: {}", o.stdout);
        for good in goods {
            let o = check(dir.path(), name, &text.replace("READ", good), &[]);
            assert_eq!(o.code, 0, "{name} with {good}: {} {}", o.stdout, o.stderr);
        }
    }
}

#[test]
fn a_register_history_in_which_every_operation_failed_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let o = check(dir.path(), "failed.jsonl", ALL_FAILED, &[]);
    assert_eq!(o.code, 2, "{} {}", o.stdout, o.stderr);
    assert!(o.stdout.contains(" unknown "), "{}", o.stdout);
    assert!(o.stderr.contains("none of the 3"), "{}", o.stderr);
    let o = check(dir.path(), "failed.jsonl", ALL_FAILED, &["--json"]);
    assert_eq!(o.code, 2);
    let v = json(&o);
    assert_eq!(v["valid"], "unknown");
    assert_eq!(v["files"][0]["rule"], "no-operation-succeeded");
    assert!(v["files"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("none of the 3 client operations succeeded"));
}

#[test]
fn a_failed_cas_means_what_the_format_says() {
    let dir = tempfile::tempdir().unwrap();
    let edn = "{:type :invoke, :f :write, :value 0, :process 0}\n\
               {:type :ok, :f :write, :value 0, :process 0}\n\
               {:type :invoke, :f :cas, :value [0 1], :process 1}\n\
               {:type :fail, :f :cas, :value [0 1], :process 1}\n\
               {:type :invoke, :f :read, :value nil, :process 2}\n\
               {:type :ok, :f :read, :value 0, :process 2}\n";
    let o = check(dir.path(), "h.edn", edn, &[]);
    assert_eq!(o.code, 0, "Jepsen's :fail did not happen: {}", o.stdout);
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t0\n\
               INFO  jepsen.util - 0\t:ok\t:write\t0\n\
               INFO  jepsen.util - 1\t:invoke\t:cas\t[0 1]\n\
               INFO  jepsen.util - 1\t:fail\t:cas\t[0 1]\n\
               INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 2\t:ok\t:read\t0\n";
    let o = check(dir.path(), "h.log", log, &[]);
    assert_eq!(
        o.code, 1,
        "the etcd log's failed cas is an observation: {}",
        o.stdout
    );
    let o = check(dir.path(), "h.edn", edn, &["--semantics", "observation"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let o = check(dir.path(), "h.edn", edn, &["--semantics", "sometimes"]);
    assert_eq!(o.code, 64);
    assert!(o.stderr.contains("unknown semantics"), "{}", o.stderr);
}

/// Write skew: each transaction reads the key the other appends to.
const WRITE_SKEW: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",1]]}
{"process":2,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}
{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]],["r","y",[1]]]}
"#;

#[test]
fn consistency_model_chooses_which_anomalies_break_the_history() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["strict-serializable", "serializable", "repeatable-read"] {
        let o = check(
            dir.path(),
            "skew.jsonl",
            WRITE_SKEW,
            &["--consistency-model", model, "--explain"],
        );
        assert_eq!(o.code, 1, "{model}: {}", o.stdout);
        assert!(o.stdout.contains("G2-item:"), "{model}: {}", o.stdout);
        assert!(
            o.stdout.contains(&format!(
                "checked against {model}; anomalies breaking it: G2-item"
            )),
            "{}",
            o.stdout
        );
    }
    for model in ["snapshot-isolation", "read-committed", "read-uncommitted"] {
        let o = check(
            dir.path(),
            "skew.jsonl",
            WRITE_SKEW,
            &["--consistency-model", model, "--json"],
        );
        assert_eq!(o.code, 0, "{model} allows write skew: {}", o.stdout);
        let la = &json(&o)["files"][0]["result"]["list_append"];
        assert_eq!(la["anomaly_types"][0], "G2-item", "still reported: {la}");
        assert_eq!(la["not"][0], "strict-serializable", "{la}");
    }
    let o = check(dir.path(), "skew.jsonl", WRITE_SKEW, &["--serializable"]);
    assert_eq!(o.code, 1);
    let o = check(
        dir.path(),
        "skew.jsonl",
        WRITE_SKEW,
        &["--consistency-model", "linearizable"],
    );
    assert_eq!(o.code, 64);
    assert!(
        o.stderr.contains("unknown consistency model"),
        "{}",
        o.stderr
    );
}

/// A stale read under a partition: `--explain` names, for each operation,
/// the node that served it and what the nemesis was doing to that node.
#[test]
fn explain_points_at_the_node_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let h = r#"{"process":0,"type":"invoke","f":"txn","value":[["append",5,1]],"time":1000000000}
{"process":0,"type":"ok","f":"txn","value":[["append",5,1]],"time":2000000000,"node":"1"}
{"process":"nemesis","type":"invoke","f":"start-partition","value":{"topology":"one"},"time":16100000000}
{"process":"nemesis","type":"info","f":"start-partition","value":{"topology":"one","grudge":{"3":[1,2],"1":[3],"2":[3]}},"time":16200000000}
{"process":1,"type":"invoke","f":"txn","value":[["r",5,null]],"time":17000000000}
{"process":1,"type":"ok","f":"txn","value":[["r",5,[]]],"time":17500000000,"node":"3"}
"#;
    let o = check(dir.path(), "stale.jsonl", h, &["--explain"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("T4 served by n3: cut off from the leader n1 and n2 since 16.2 s"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("T0 served by n1: no fault on n1"),
        "{}",
        o.stdout
    );
    let o = check(dir.path(), "stale.jsonl", h, &["--json"]);
    let ops = &json(&o)["files"][0]["result"]["list_append"]["anomalies"][0]["ops"];
    assert_eq!(ops[1]["served_by"], "n3", "{ops}");
}
