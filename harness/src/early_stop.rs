//! `--stop-on-invalid`: check the history while the run goes on and end
//! the workload as soon as it is already invalid, so a campaign that
//! catches a bug spends seconds on it instead of the whole time limit.
//!
//! Sound because an invalid prefix stays invalid: operations still pending
//! in the prefix are checked as indeterminate (they may or may not take
//! effect), and an operation invoked later is ordered after every
//! operation the prefix saw complete, so no continuation can explain what
//! the prefix's completed operations observed. The history is not
//! checked when minority mode is among the faults (the minority checker
//! may allow what the plain checker refutes). A node's safety alarm in its
//! log (which makes the verdict invalid whatever the history) also ends
//! the workload, minority mode or not.

use crate::recorder::Recorder;
use checker::{CheckOptions, Checker, History, Validity};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the history is checked.
pub const EVERY: Duration = Duration::from_secs(3);
/// A check that takes longer than this says nothing (`unknown`).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the watcher looks at.
pub struct Watch {
    pub recorder: Arc<Recorder>,
    /// The history's checker (`None`: the history is not checked).
    pub checker: Option<Checker>,
    /// Where the nodes write their logs during the run, if on this machine.
    pub nodes_dir: Option<PathBuf>,
}

/// Watches the history being recorded and the node logs; when a check
/// finds the history invalid or a node raised a safety alarm, notes the
/// time (ms from the start) in `stopped_at` and sets `stop`. Ends when
/// `stop` is set (by it or by anything else).
pub fn spawn(
    watch: Watch,
    stop: Arc<AtomicBool>,
    stopped_at: Arc<Mutex<Option<u64>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut checked = 0;
        while !stop.load(Ordering::SeqCst) {
            sleep_unless(&stop, EVERY);
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let why = watch
                .nodes_dir
                .as_deref()
                .and_then(safety_alarm)
                .or_else(|| {
                    let ops = watch.recorder.ops();
                    let checker = watch.checker?;
                    if ops.len() == checked {
                        return None;
                    }
                    checked = ops.len();
                    prefix_is_invalid(ops, checker).then(|| "the history is invalid".to_string())
                });
            if let Some(why) = why {
                let at = watch.recorder.elapsed_ns() / 1_000_000;
                *stopped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
                eprintln!(
                    "\ndcf-harness: {why} at {:.1} s; ending the workload early (--stop-on-invalid)",
                    at as f64 / 1000.0
                );
                stop.store(true, Ordering::SeqCst);
            }
        }
    })
}

/// The first safety alarm in the node logs, as "n2 raised a safety alarm".
fn safety_alarm(nodes_dir: &Path) -> Option<String> {
    crate::logscan::scan(nodes_dir, 1)
        .into_iter()
        .find(|f| f.kind == "safety-alarm")
        .map(|f| format!("{} raised a safety alarm", f.node))
}

/// Whether the recorded prefix is invalid by `checker`.
pub fn prefix_is_invalid(ops: Vec<checker::Op>, checker: Checker) -> bool {
    let history = History::new(ops);
    let opts = CheckOptions {
        checker: Some(checker),
        timeout: Some(CHECK_TIMEOUT),
        ..CheckOptions::default()
    };
    matches!(
        checker::check_history(&history, &opts),
        Ok(r) if r.valid == Validity::Invalid
    )
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < d && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step);
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{Op, OpType, Process};
    use serde_json::json;

    fn op(p: u64, kind: OpType, f: &str, v: serde_json::Value) -> Op {
        Op::new(Process::Client(p), kind, f, v).with_key(json!(1))
    }

    /// A stale read is caught in the prefix even with another write still
    /// pending; a prefix whose only oddity is a pending write is not.
    #[test]
    fn invalid_prefixes_are_caught_and_pending_operations_are_indeterminate() {
        let mut ops = vec![
            op(1, OpType::Invoke, "write", json!(1)),
            op(1, OpType::Ok, "write", json!(1)),
            op(2, OpType::Invoke, "write", json!(2)),
            op(3, OpType::Invoke, "read", json!(null)),
            op(3, OpType::Ok, "read", json!(2)),
        ];
        let register = crate::analysis::checker_for("register").unwrap();
        assert!(!prefix_is_invalid(ops.clone(), register));
        ops.push(op(3, OpType::Invoke, "read", json!(null)));
        ops.push(op(3, OpType::Ok, "read", json!(7)));
        assert!(prefix_is_invalid(ops, register));
    }

    #[test]
    fn a_safety_alarm_in_a_node_log_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("n2")).unwrap();
        let log = dir.path().join("n2/stderr.log");
        std::fs::write(&log, "2026-12-02T16:45:17.229908Z  INFO dcf: fine\n").unwrap();
        assert_eq!(safety_alarm(dir.path()), None);
        std::fs::write(
            &log,
            "2026-12-02T16:45:17.229908Z ERROR dcf::engine::actions: SAFETY ALARM: COMMITTED_ENTRY_CONFLICT a leader sent entries that conflict\n",
        )
        .unwrap();
        assert_eq!(
            safety_alarm(dir.path()).as_deref(),
            Some("n2 raised a safety alarm")
        );
    }
}
