//! # checker
//!
//! Decides whether a recorded history of operations is correct: the history
//! model (Jepsen's invoke/ok/fail/info), importers for other tools' formats,
//! a linearizability checker, an Elle-style list-append cycle checker, a set
//! checker and statistics. It depends on no other crate of this workspace so
//! that it can check any tool's histories.
//!
//! The entry point for most callers is [`check_history`]; checkers can also
//! be called directly ([`linear::check`], [`list_append::check`],
//! [`set::check`], [`stats::stats`]).

pub mod edn;
pub mod error;
pub mod explain;
pub mod formats;
pub mod health;
pub mod history;
pub mod linear;
pub mod list_append;
pub mod models;
pub mod result;
pub mod set;
pub mod stats;

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

pub use error::CheckError;
pub use explain::Explanation;
pub use formats::Format;
pub use history::{History, Op, OpType, Pair, Process, Semantics};
pub use models::ModelKind;
pub use result::{CheckResult, KeyResult, Validity};

/// Which checker to run on a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    /// Linearizability against a model.
    Linearizable(ModelKind),
    /// Elle-style list-append transactions.
    ListAppend,
    /// A grow-only set with final reads.
    Set,
}

impl Checker {
    /// Choose a checker from the functions used in the history: `txn` with
    /// `append` micro-ops is list-append, `add` is a set, and the rest goes
    /// to the linearizability model that fits.
    pub fn detect(history: &History) -> Option<Checker> {
        let client = || history.ops.iter().filter(|o| !o.process.is_nemesis());
        if client().any(|o| o.f == "add") {
            return Some(Checker::Set);
        }
        let has_append_mop = client().filter(|o| o.f == "txn").any(|o| {
            matches!(&o.value, Value::Array(m) if m.iter().any(|x| matches!(x, Value::Array(p) if p.first() == Some(&Value::String("append".into())))))
        });
        if has_append_mop {
            return Some(Checker::ListAppend);
        }
        ModelKind::detect(history).map(Checker::Linearizable)
    }
}

impl FromStr for Checker {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "list-append" | "elle" => Ok(Checker::ListAppend),
            "set" => Ok(Checker::Set),
            other => ModelKind::from_str(other)
                .map(Checker::Linearizable)
                .map_err(|_| {
                    CheckError::Usage(format!(
                        "unknown model {other:?} (expected one of {})",
                        ModelKind::NAMES.join(", ")
                    ))
                }),
        }
    }
}

/// Options for [`check_history`].
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The checker; `None` detects it from the history.
    pub checker: Option<Checker>,
    /// The register's value before any write (cas-register / register).
    pub initial: Option<Value>,
    /// Split linearizability checks by key (P-compositionality).
    pub split_by_key: bool,
    /// Time limit; reaching it yields `unknown`.
    pub timeout: Option<Duration>,
    /// Memory budget for the linearizability memo tables, in bytes.
    pub memory_budget: usize,
    /// Explain failures.
    pub explain: bool,
    /// List-append: check strict serializability (with real-time edges)
    /// rather than serializability.
    pub strict: bool,
    /// What failures and `null` reads mean; `None` keeps the history's own
    /// (the one its format says).
    pub semantics: Option<Semantics>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            checker: None,
            initial: None,
            split_by_key: true,
            timeout: None,
            memory_budget: 1 << 30,
            explain: true,
            strict: true,
            semantics: None,
        }
    }
}

/// Check a history with the chosen (or detected) checker.
pub fn check_history(history: &History, options: &CheckOptions) -> Result<CheckResult, CheckError> {
    let checker = match options.checker {
        Some(c) => c,
        None => match Checker::detect(history) {
            Some(c) => c,
            None if history.ops.iter().all(|o| o.process.is_nemesis()) => {
                Checker::Linearizable(ModelKind::CasRegister)
            }
            None => {
                return Err(CheckError::Usage(
                    "cannot tell which model fits this history; pass --model".into(),
                ))
            }
        },
    };
    let semantics = options.semantics.unwrap_or(history.semantics);
    let mut result = match checker {
        Checker::Linearizable(kind) => {
            let lin = linear::LinearOptions {
                split_by_key: options.split_by_key,
                timeout: options.timeout,
                memory_budget: options.memory_budget,
                explain: options.explain,
            };
            let mut values = models::Values::default();
            match kind {
                ModelKind::Register | ModelKind::CasRegister => {
                    let initial = options
                        .initial
                        .as_ref()
                        .map_or(models::NIL, |v| values.intern(v));
                    let model = models::RegisterModel {
                        cas: kind == ModelKind::CasRegister,
                        initial,
                        semantics,
                    };
                    linear::check(&model, history, &mut values, &lin)
                }
                ModelKind::KeyValue => linear::check(&models::KvModel, history, &mut values, &lin),
                ModelKind::MultiRegister => {
                    linear::check(&models::MultiRegisterModel, history, &mut values, &lin)
                }
            }
        }
        Checker::ListAppend => list_append::check(
            history,
            &list_append::ListAppendOptions {
                strict: options.strict,
            },
        ),
        Checker::Set => set::check(history),
    }?;
    // A history in which the system answered nothing proves nothing.
    health::apply_availability(&mut result, history, semantics);
    Ok(result)
}
