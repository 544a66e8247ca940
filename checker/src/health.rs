//! Verdict rules besides the history checker, after Jepsen's `stats` and
//! `unhandled-exceptions` checkers: a history that shows the system never
//! answered proves nothing, so it is `unknown` rather than `valid`; a run
//! whose nodes raised a safety alarm is `invalid` whatever the history
//! says. Each rule that fires is a [`RuleFinding`]; [`decide`] combines them
//! with the checker's verdict and says which rule decided.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{History, Op, OpType, Semantics};
use crate::models::never_executed;
use crate::result::{CheckResult, Validity};

/// The history checker's own verdict.
pub const CHECKER: &str = "checker";
/// No client operation was answered.
pub const NO_OPERATION_SUCCEEDED: &str = "no-operation-succeeded";
/// Some kind of operation (`f`) was never answered.
pub const OPERATION_NEVER_SUCCEEDED: &str = "operation-never-succeeded";

/// One rule that fired, with the verdict it asks for and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFinding {
    /// The rule's name, e.g. `no-operation-succeeded`, `safety-alarm`.
    pub rule: String,
    /// `unknown` or `invalid` when the rule decides against `valid`;
    /// `valid` for a finding kept only for the record (e.g. accepted).
    pub valid: Validity,
    /// One line a reader understands.
    pub reason: String,
}

impl RuleFinding {
    /// A finding of `rule` asking for `valid`.
    pub fn new(rule: &str, valid: Validity, reason: impl Into<String>) -> RuleFinding {
        RuleFinding {
            rule: rule.into(),
            valid,
            reason: reason.into(),
        }
    }
}

/// The verdict and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub valid: Validity,
    /// `checker`, or the name of the rule that overrode it.
    pub rule: String,
    /// Why, when the verdict is not `valid` (or a rule decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Combines the checker's verdict with the rules: an invalid verdict from
/// the checker stands; otherwise an `invalid` rule (a safety alarm) wins,
/// then the checker's own `unknown`, then an `unknown` rule.
pub fn decide(check: &CheckResult, findings: &[RuleFinding]) -> Decision {
    // The result may already carry a rule's override (`check_history`
    // applies the availability rule).
    let checker = |valid: Validity, reason: Option<String>| Decision {
        valid,
        rule: check.rule.clone().unwrap_or_else(|| CHECKER.into()),
        reason,
    };
    let by_rule = |f: &RuleFinding| Decision {
        valid: f.valid,
        rule: f.rule.clone(),
        reason: Some(f.reason.clone()),
    };
    if check.valid == Validity::Invalid {
        return checker(Validity::Invalid, None);
    }
    if let Some(f) = findings.iter().find(|f| f.valid == Validity::Invalid) {
        return by_rule(f);
    }
    if check.valid == Validity::Unknown {
        return checker(Validity::Unknown, check.unknown_reason.clone());
    }
    if let Some(f) = findings.iter().find(|f| f.valid == Validity::Unknown) {
        return by_rule(f);
    }
    checker(Validity::Valid, None)
}

/// Whether the system answered an operation: it completed `ok`, or it
/// failed in a way the history's semantics says it ran (a cas that found
/// another value). A failure that never ran, or an indeterminate one, is no
/// answer.
pub fn answered(invoke: &Op, outcome: OpType, complete: Option<&Op>, semantics: Semantics) -> bool {
    match outcome {
        OpType::Ok => true,
        OpType::Fail if invoke.f == "cas" => match semantics {
            Semantics::Jepsen => false,
            Semantics::Observation => true,
            Semantics::Tagged => !complete.is_some_and(never_executed),
        },
        _ => false,
    }
}

/// Client operations per function: `(invoked, answered)`, by name.
pub fn answered_by_function(
    history: &History,
    semantics: Semantics,
) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    // Pair by process without failing on malformed histories: the checker
    // reports those; this only counts.
    let mut pending: BTreeMap<crate::history::Process, usize> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if op.process.is_nemesis() {
            continue;
        }
        if op.kind == OpType::Invoke {
            out.entry(op.f.clone()).or_default().0 += 1;
            pending.insert(op.process, i);
        } else if let Some(inv) = pending.remove(&op.process) {
            let inv = &history.ops[inv];
            if answered(inv, op.kind, Some(op), semantics) {
                out.entry(inv.f.clone()).or_default().1 += 1;
            }
        }
    }
    out
}

/// Jepsen's `stats` rule: `unknown` when no client operation was answered
/// and, with `per_function`, when some function never was.
pub fn availability(
    history: &History,
    semantics: Semantics,
    per_function: bool,
) -> Vec<RuleFinding> {
    let counts = answered_by_function(history, semantics);
    let invoked: usize = counts.values().map(|c| c.0).sum();
    let answered: usize = counts.values().map(|c| c.1).sum();
    if answered == 0 {
        let reason = if invoked == 0 {
            "the history has no client operations, so it shows nothing about the system".to_string()
        } else {
            format!("none of the {invoked} client operations succeeded, so the history shows nothing about the system")
        };
        return vec![RuleFinding::new(
            NO_OPERATION_SUCCEEDED,
            Validity::Unknown,
            reason,
        )];
    }
    if !per_function {
        return Vec::new();
    }
    counts
        .iter()
        .filter(|(_, (n, a))| *n > 0 && *a == 0)
        .map(|(f, (n, _))| {
            RuleFinding::new(
                OPERATION_NEVER_SUCCEEDED,
                Validity::Unknown,
                format!("no {f} succeeded ({n} attempted), so {f} was never checked"),
            )
        })
        .collect()
}

/// Whether any client operation was answered. A completion names its
/// function, so no pairing is needed, and the scan stops at the first
/// answer (early in any real history).
pub fn any_answered(history: &History, semantics: Semantics) -> bool {
    history.ops.iter().any(|op| {
        !op.process.is_nemesis()
            && op.kind != OpType::Invoke
            && answered(op, op.kind, Some(op), semantics)
    })
}

/// Applies the availability rule (without the per-function part) to a
/// checker's result: a `valid` verdict on a history in which nothing was
/// answered becomes `unknown`, with the rule and reason recorded.
pub fn apply_availability(result: &mut CheckResult, history: &History, semantics: Semantics) {
    if result.valid != Validity::Valid || any_answered(history, semantics) {
        return;
    }
    let findings = availability(history, semantics, false);
    let d = decide(result, &findings);
    if d.rule != CHECKER {
        result.valid = d.valid;
        result.unknown_reason = d.reason;
        result.rule = Some(d.rule);
    }
}

/// The findings as JSON for `results.json`.
pub fn to_json(findings: &[RuleFinding]) -> Value {
    serde_json::to_value(findings).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    fn op(p: u64, kind: OpType, f: &str, error: Option<Value>) -> Op {
        let mut o = Op::new(Process::Client(p), kind, f, json!(null));
        o.error = error;
        o
    }

    #[test]
    fn a_history_in_which_nothing_was_answered_is_unknown() {
        let unexecuted = || Some(json!(["unexecuted", "no leader"]));
        let h = History::new(vec![
            op(0, OpType::Invoke, "write", None),
            op(0, OpType::Fail, "write", unexecuted()),
            op(1, OpType::Invoke, "cas", None),
            op(1, OpType::Fail, "cas", unexecuted()),
            op(2, OpType::Invoke, "read", None),
            op(2, OpType::Info, "read", None),
        ]);
        let f = availability(&h, Semantics::Tagged, false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, NO_OPERATION_SUCCEEDED);
        assert!(f[0].reason.contains("none of the 3"), "{}", f[0].reason);
        let mut r = CheckResult::new("linearizable", "cas-register");
        apply_availability(&mut r, &h, Semantics::Tagged);
        assert_eq!(r.valid, Validity::Unknown);
        assert_eq!(r.rule.as_deref(), Some(NO_OPERATION_SUCCEEDED));
        // A cas that ran and found another value was answered.
        let mut h2 = h.clone();
        h2.ops[3].error = Some(json!(["cas-mismatch", "holds 3"]));
        assert!(availability(&h2, Semantics::Tagged, false).is_empty());
        // ... but not under Jepsen's contract, where :fail did not happen.
        assert_eq!(availability(&h2, Semantics::Jepsen, false).len(), 1);
    }

    #[test]
    fn a_function_that_never_succeeded_is_named() {
        let h = History::new(vec![
            op(0, OpType::Invoke, "write", None),
            op(0, OpType::Ok, "write", None),
            op(1, OpType::Invoke, "read", None),
            op(1, OpType::Fail, "read", Some(json!(["unexecuted", "x"]))),
        ]);
        assert!(availability(&h, Semantics::Tagged, false).is_empty());
        let f = availability(&h, Semantics::Tagged, true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, OPERATION_NEVER_SUCCEEDED);
        assert!(
            f[0].reason.starts_with("no read succeeded"),
            "{}",
            f[0].reason
        );
    }

    #[test]
    fn decide_prefers_invalid_then_unknown_and_names_the_rule() {
        let mut check = CheckResult::new("linearizable", "cas-register");
        let alarm = RuleFinding::new("safety-alarm", Validity::Invalid, "conflict");
        let stats = RuleFinding::new(NO_OPERATION_SUCCEEDED, Validity::Unknown, "none");
        let kept = RuleFinding::new("fault-not-injected", Validity::Valid, "accepted");
        assert_eq!(decide(&check, std::slice::from_ref(&kept)).rule, CHECKER);
        let d = decide(&check, &[kept.clone(), stats.clone(), alarm.clone()]);
        assert_eq!(
            (d.valid, d.rule.as_str()),
            (Validity::Invalid, "safety-alarm")
        );
        let d = decide(&check, std::slice::from_ref(&stats));
        assert_eq!(
            (d.valid, d.rule.as_str()),
            (Validity::Unknown, NO_OPERATION_SUCCEEDED)
        );
        check.valid = Validity::Invalid;
        let d = decide(&check, &[alarm]);
        assert_eq!((d.valid, d.rule.as_str()), (Validity::Invalid, CHECKER));
        check.valid = Validity::Unknown;
        check.unknown_reason = Some("time limit reached".into());
        let d = decide(&check, &[stats]);
        assert_eq!(d.reason.as_deref(), Some("time limit reached"));
    }
}
