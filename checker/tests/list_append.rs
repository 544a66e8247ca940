//! Hand-built list-append histories, one per anomaly class: each must be
//! detected and named; valid histories must pass.

use checker::list_append::{check, ConsistencyModel, ListAppendOptions};
use checker::{History, Op, OpType, Process, Validity};
use serde_json::{json, Value};

/// An event: process, type, micro-ops.
type Ev = (u64, OpType, Value);

fn history(events: Vec<Ev>) -> History {
    History::new(
        events
            .into_iter()
            .enumerate()
            .map(|(i, (p, t, v))| Op::new(Process::Client(p), t, "txn", v).at(i as u64))
            .collect(),
    )
}

/// A transaction that runs alone: invoke (reads nil) then complete.
fn alone(p: u64, done: Value) -> Vec<Ev> {
    vec![(p, OpType::Invoke, invoke_of(&done)), (p, OpType::Ok, done)]
}

fn invoke_of(done: &Value) -> Value {
    let mops = done.as_array().unwrap();
    Value::Array(
        mops.iter()
            .map(|m| {
                let m = m.as_array().unwrap();
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    Value::Array(m.clone())
                }
            })
            .collect(),
    )
}

/// Two transactions running concurrently.
fn together(a: (u64, Value), b: (u64, Value)) -> Vec<Ev> {
    vec![
        (a.0, OpType::Invoke, invoke_of(&a.1)),
        (b.0, OpType::Invoke, invoke_of(&b.1)),
        (a.0, OpType::Ok, a.1),
        (b.0, OpType::Ok, b.1),
    ]
}

/// Options for strict serializability (`true`) or serializability.
fn opts(strict: bool) -> ListAppendOptions {
    ListAppendOptions {
        model: if strict {
            ConsistencyModel::StrictSerializable
        } else {
            ConsistencyModel::Serializable
        },
    }
}

fn kinds(events: Vec<Ev>, strict: bool) -> (Validity, Vec<String>, String) {
    let r = check(&history(events), &opts(strict)).unwrap();
    let report = r.list_append.unwrap();
    let text: String = report.anomalies.iter().map(|a| a.to_text()).collect();
    (r.valid, report.anomaly_types, text)
}

fn assert_anomaly(events: Vec<Ev>, kind: &str) -> String {
    let (valid, found, text) = kinds(events, true);
    assert_eq!(valid, Validity::Invalid, "expected {kind}");
    assert!(
        found.iter().any(|k| k == kind),
        "expected {kind}, found {found:?}\n{text}"
    );
    text
}

#[test]
fn valid_histories_pass() {
    let mut ev = alone(0, json!([["append", "x", 1], ["r", "x", [1]]]));
    ev.extend(together(
        (1, json!([["append", "x", 2], ["r", "y", []]])),
        (2, json!([["append", "y", 1], ["r", "x", [1, 2]]])),
    ));
    ev.extend(alone(0, json!([["r", "x", [1, 2]], ["r", "y", [1]]])));
    for strict in [true, false] {
        let (valid, found, text) = kinds(ev.clone(), strict);
        assert_eq!(valid, Validity::Valid, "{found:?}\n{text}");
    }
}

#[test]
fn g0_write_cycle() {
    let mut ev = together(
        (0, json!([["append", "x", 1], ["append", "y", 1]])),
        (1, json!([["append", "x", 2], ["append", "y", 2]])),
    );
    ev.extend(alone(2, json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]])));
    let text = assert_anomaly(ev, "G0");
    assert!(text.contains("right after"), "{text}");
}

#[test]
fn g1a_aborted_read() {
    let mut ev = vec![
        (0, OpType::Invoke, json!([["append", "x", 1]])),
        (0, OpType::Fail, json!([["append", "x", 1]])),
    ];
    ev.extend(alone(1, json!([["r", "x", [1]]])));
    assert_anomaly(ev, "G1a");
}

#[test]
fn g1b_intermediate_read() {
    let mut ev = alone(0, json!([["append", "x", 1], ["append", "x", 2]]));
    ev.extend(alone(1, json!([["r", "x", [1]]])));
    assert_anomaly(ev, "G1b");
}

#[test]
fn g1c_circular_information_flow() {
    let ev = together(
        (0, json!([["append", "x", 1], ["r", "y", [1]]])),
        (1, json!([["append", "y", 1], ["r", "x", [1]]])),
    );
    let text = assert_anomaly(ev, "G1c");
    assert!(text.contains("read T"), "{text}");
}

#[test]
fn g_single_read_skew() {
    let ev = together(
        (0, json!([["append", "x", 1], ["append", "y", 1]])),
        (1, json!([["r", "x", []], ["r", "y", [1]]])),
    );
    let mut ev = ev;
    ev.extend(alone(2, json!([["r", "x", [1]]])));
    let text = assert_anomaly(ev, "G-single");
    assert!(text.contains("the next version of x"), "{text}");
}

#[test]
fn g2_item_write_skew() {
    let mut ev = together(
        (0, json!([["r", "x", []], ["append", "y", 1]])),
        (1, json!([["r", "y", []], ["append", "x", 1]])),
    );
    ev.extend(alone(2, json!([["r", "x", [1]], ["r", "y", [1]]])));
    assert_anomaly(ev, "G2-item");
}

#[test]
fn internal_inconsistency() {
    let ev = alone(0, json!([["append", "x", 1], ["r", "x", []]]));
    assert_anomaly(ev, "internal");
}

#[test]
fn duplicated_elements() {
    let mut ev = alone(0, json!([["append", "x", 1]]));
    ev.extend(alone(1, json!([["r", "x", [1, 1]]])));
    assert_anomaly(ev, "duplicate-elements");
}

#[test]
fn incompatible_orders() {
    let mut ev = together(
        (0, json!([["append", "x", 1]])),
        (1, json!([["append", "x", 2]])),
    );
    ev.extend(alone(2, json!([["r", "x", [1, 2]]])));
    ev.extend(alone(3, json!([["r", "x", [2, 1]]])));
    assert_anomaly(ev, "incompatible-order");
}

#[test]
fn stale_read_is_a_realtime_anomaly_only_under_strict_serializability() {
    let mut ev = alone(0, json!([["append", "x", 1]]));
    ev.extend(alone(1, json!([["r", "x", []]])));
    ev.extend(alone(2, json!([["r", "x", [1]]])));
    let text = assert_anomaly(ev.clone(), "G-single-realtime");
    assert!(text.contains("completed"), "{text}");
    let (valid, found, _) = kinds(ev, false);
    assert_eq!(valid, Validity::Valid, "{found:?}");
}

#[test]
fn crashed_appends_that_were_read_join_the_graph() {
    let ev = vec![
        (0, OpType::Invoke, json!([["append", "x", 1]])),
        (0, OpType::Info, json!([["append", "x", 1]])),
        (1, OpType::Invoke, json!([["r", "x", null]])),
        (1, OpType::Ok, json!([["r", "x", [1]]])),
    ];
    let (valid, found, _) = kinds(ev, true);
    assert_eq!(valid, Validity::Valid, "{found:?}");
}

/// A history in our `history.jsonl` format, as a user would write it.
fn jsonl(lines: &[&str]) -> History {
    checker::formats::parse(&lines.join("\n"), Some(checker::Format::Jsonl)).unwrap()
}

fn verdict_of(h: &History, strict: bool) -> (Validity, Vec<String>) {
    let r = check(h, &opts(strict)).unwrap();
    (r.valid, r.list_append.unwrap().anomaly_types)
}

#[test]
fn an_empty_key_reads_as_the_empty_list_however_the_wire_says_it() {
    // p0 appends 1 to x; p1 then reads x as empty; p2 then reads [1]: p1's
    // read is stale. Each spelling of "empty" must be seen as empty.
    for empty in ["null", "[]", ""] {
        let read = if empty.is_empty() {
            r#"["r","x"]"#.to_string()
        } else {
            format!(r#"["r","x",{empty}]"#)
        };
        let h = jsonl(&[
            r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}"#,
            r#"{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}"#,
            r#"{"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}"#,
            &format!(r#"{{"process":1,"type":"ok","f":"txn","value":[{read}]}}"#),
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r","x",null]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]]]}"#,
        ]);
        let (valid, found) = verdict_of(&h, true);
        assert_eq!(
            valid,
            Validity::Invalid,
            "empty spelled {empty:?}: {found:?}"
        );
        assert!(
            found.iter().any(|k| k == "G-single-realtime"),
            "empty spelled {empty:?}: {found:?}"
        );
    }
}

#[test]
fn reads_that_did_not_complete_stay_unknown() {
    // The info txn's read of x says nothing, whatever its value.
    let h = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}"#,
        r#"{"process":1,"type":"info","f":"txn","value":[["r","x",null]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r","x",null]]}"#,
        r#"{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]]]}"#,
    ]);
    assert_eq!(verdict_of(&h, true).0, Validity::Valid);
}

/// The issue's three list-append cases: a stale empty read, a lost append,
/// and the same histories with the late read showing what was appended.
fn stale_read_history(late_read: &str) -> History {
    jsonl(&[
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append",5,1]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append",5,1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["r",5,null]]}"#,
        &format!(r#"{{"process":1,"type":"ok","f":"txn","value":[["r",5,{late_read}]]}}"#),
    ])
}

fn lost_append_history(late_read: &str) -> History {
    jsonl(&[
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["append",7,2]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":1,"type":"ok","f":"txn","value":[["append",7,2]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r",7,null]]}"#,
        &format!(r#"{{"process":2,"type":"ok","f":"txn","value":[["r",7,{late_read}]]}}"#),
    ])
}

fn lost_anomaly(h: &History) -> Option<checker::list_append::Anomaly> {
    let r = check(h, &opts(true)).unwrap();
    r.list_append
        .unwrap()
        .anomalies
        .into_iter()
        .find(|a| a.kind == "lost-append")
}

#[test]
fn a_stale_empty_read_after_an_acknowledged_append_is_a_lost_append() {
    let a = lost_anomaly(&stale_read_history("null")).expect("lost-append reported");
    // The append (op 0) and the read (op 2) are named.
    assert_eq!(a.txns, vec![0, 2]);
    assert!(
        a.steps.iter().any(|s| s.contains("appended 1 to key 5")),
        "{a:?}"
    );
    assert_eq!(
        verdict_of(&stale_read_history("null"), true).0,
        Validity::Invalid
    );
    assert_eq!(
        verdict_of(&stale_read_history("[1]"), true).0,
        Validity::Valid
    );
    // Serializability alone may order the read first.
    assert_eq!(
        verdict_of(&stale_read_history("null"), false).0,
        Validity::Valid
    );
}

#[test]
fn an_acknowledged_append_missing_from_the_final_read_is_lost() {
    let a = lost_anomaly(&lost_append_history("[2]")).expect("lost-append reported");
    assert_eq!(a.txns, vec![0, 4], "the append of 1 and the final read");
    assert!(
        a.to_text().contains("appended 1 to key 7"),
        "{}",
        a.to_text()
    );
    for ok in ["[1,2]", "[2,1]"] {
        let (valid, found) = verdict_of(&lost_append_history(ok), true);
        assert_eq!(valid, Validity::Valid, "{ok}: {found:?}");
    }
}

#[test]
fn reads_before_the_last_append_ended_are_not_final() {
    // The read overlaps the append of 2, so it is not final and may miss 2.
    let h = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["append",7,2]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r",7,null]]}"#,
        r#"{"process":2,"type":"ok","f":"txn","value":[["r",7,[1]]]}"#,
        r#"{"process":1,"type":"ok","f":"txn","value":[["append",7,2]]}"#,
    ]);
    assert_eq!(lost_anomaly(&h), None);
    // An append that never ended leaves the key without a final read.
    let h = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append",7,1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["append",7,2]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r",7,null]]}"#,
        r#"{"process":2,"type":"ok","f":"txn","value":[["r",7,[]]]}"#,
    ]);
    assert_eq!(lost_anomaly(&h), None);
}

#[test]
fn phantom_and_duplicate_elements_name_the_reads() {
    let (valid, found) = verdict_of(&lost_append_history("[1,2,9]"), true);
    assert_eq!(valid, Validity::Invalid);
    assert!(found.iter().any(|k| k == "garbage-read"), "{found:?}");
    let (valid, found) = verdict_of(&lost_append_history("[1,2,1]"), true);
    assert_eq!(valid, Validity::Invalid);
    assert!(found.iter().any(|k| k == "duplicate-elements"), "{found:?}");
}

/// Each anomaly breaks the models Elle says it does, and no weaker one.
#[test]
fn the_consistency_ladder_names_the_models_each_anomaly_breaks() {
    use ConsistencyModel::*;
    let write_skew = {
        let mut ev = together(
            (0, json!([["r", "x", []], ["append", "y", 1]])),
            (1, json!([["r", "y", []], ["append", "x", 1]])),
        );
        ev.extend(alone(2, json!([["r", "x", [1]], ["r", "y", [1]]])));
        ev
    };
    let read_skew = {
        let mut ev = together(
            (0, json!([["append", "x", 1], ["append", "y", 1]])),
            (1, json!([["r", "x", []], ["r", "y", [1]]])),
        );
        ev.extend(alone(2, json!([["r", "x", [1]]])));
        ev
    };
    let circular = together(
        (0, json!([["append", "x", 1], ["r", "y", [1]]])),
        (1, json!([["append", "y", 1], ["r", "x", [1]]])),
    );
    let stale = {
        let mut ev = alone(0, json!([["append", "x", 1]]));
        ev.extend(alone(1, json!([["r", "x", []]])));
        ev.extend(alone(2, json!([["r", "x", [1]]])));
        ev
    };
    for (name, events, kind, broken) in [
        (
            "write skew",
            write_skew,
            "G2-item",
            &[StrictSerializable, Serializable, RepeatableRead][..],
        ),
        (
            "read skew",
            read_skew,
            "G-single",
            &[
                StrictSerializable,
                Serializable,
                SnapshotIsolation,
                RepeatableRead,
            ][..],
        ),
        (
            "circular information flow",
            circular,
            "G1c",
            &[
                StrictSerializable,
                Serializable,
                SnapshotIsolation,
                RepeatableRead,
                ReadCommitted,
            ][..],
        ),
        (
            "stale read",
            stale,
            "G-single-realtime",
            &[StrictSerializable][..],
        ),
    ] {
        for model in ConsistencyModel::LADDER {
            let r = check(&history(events.clone()), &ListAppendOptions { model }).unwrap();
            let report = r.list_append.unwrap();
            let breaks = broken.contains(&model);
            let want = if breaks {
                Validity::Invalid
            } else {
                Validity::Valid
            };
            assert_eq!(
                r.valid, want,
                "{name} under {model}: {:?}",
                report.anomaly_types
            );
            assert_eq!(report.consistency, model.name());
            if breaks {
                assert!(
                    report.prohibited_types.contains(&kind.to_string()),
                    "{name} under {model}: {:?}",
                    report.prohibited_types
                );
                // Elle's `:not`: every model of the ladder it rules out.
                let not: Vec<String> = broken.iter().map(|m| m.name().to_string()).collect();
                assert_eq!(report.not, not, "{name} under {model}");
            }
        }
    }
    assert!("serializable".parse::<ConsistencyModel>().is_ok());
    let err = "linearizable".parse::<ConsistencyModel>().unwrap_err();
    assert!(err.to_string().contains("strict-serializable"), "{err}");
}

#[test]
fn elle_edn_reads_of_nil_are_empty_lists_too() {
    let edn = "{:type :invoke, :f :txn, :value [[:append 5 1]], :process 0}
{:type :ok, :f :txn, :value [[:append 5 1]], :process 0}
{:type :invoke, :f :txn, :value [[:r 5 nil]], :process 1}
{:type :ok, :f :txn, :value [[:r 5 READ]], :process 1}";
    let parse = |read: &str| {
        checker::formats::parse(&edn.replace("READ", read), Some(checker::Format::JepsenEdn))
            .unwrap()
    };
    let (valid, found) = verdict_of(&parse("nil"), true);
    assert_eq!(valid, Validity::Invalid);
    assert!(found.contains(&"lost-append".to_string()), "{found:?}");
    assert_eq!(verdict_of(&parse("[1]"), true).0, Validity::Valid);
}

#[test]
fn long_final_reads_are_abbreviated_in_the_explanation() {
    let mut lines: Vec<String> = Vec::new();
    for v in 1..=30 {
        lines.push(format!(
            r#"{{"process":0,"type":"invoke","f":"txn","value":[["append",1,{v}]]}}"#
        ));
        lines.push(format!(
            r#"{{"process":0,"type":"ok","f":"txn","value":[["append",1,{v}]]}}"#
        ));
    }
    let read: Vec<u32> = (2..=30).collect();
    lines.push(r#"{"process":1,"type":"invoke","f":"txn","value":[["r",1,null]]}"#.into());
    lines.push(format!(
        r#"{{"process":1,"type":"ok","f":"txn","value":[["r",1,{read:?}]]}}"#
    ));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let a = lost_anomaly(&jsonl(&refs)).expect("lost-append");
    let last = a.steps.last().unwrap();
    assert!(
        last.contains("as [2, 3, 4, 5, 6, … 19 more …, 26, 27, 28, 29, 30] (29 elements)"),
        "{last}"
    );
}
