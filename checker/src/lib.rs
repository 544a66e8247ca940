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

pub mod culprit;
pub mod edn;
pub mod error;
pub mod explain;
pub mod formats;
pub mod health;
pub mod history;
pub mod linear;
pub mod list_append;
pub mod minority;
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
pub use list_append::ConsistencyModel;
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
    /// Time limit of the verdict; reaching it yields `unknown`.
    pub timeout: Option<Duration>,
    /// Memory budget for the linearizability memo tables, in bytes.
    pub memory_budget: usize,
    /// Explain failures (after the verdict, see `explain_timeout`).
    pub explain: bool,
    /// Time limit of a linearizability explanation, which runs after the
    /// verdict and never changes it.
    pub explain_timeout: Duration,
    /// Linearizability: check every key even after one is refuted.
    pub all_keys: bool,
    /// List-append: the consistency model to check (Elle's ladder, from
    /// strict-serializable down to read-uncommitted).
    pub consistency_model: list_append::ConsistencyModel,
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
            explain_timeout: Duration::from_secs(10),
            all_keys: false,
            consistency_model: list_append::ConsistencyModel::StrictSerializable,
            semantics: None,
        }
    }
}

impl CheckOptions {
    fn linear(&self, explain: bool) -> linear::LinearOptions {
        linear::LinearOptions {
            split_by_key: self.split_by_key,
            timeout: self.timeout,
            memory_budget: self.memory_budget,
            explain,
            explain_timeout: self.explain_timeout,
            all_keys: self.all_keys,
        }
    }
}

/// Something to do with a linearizability model, whichever it is.
trait WithModel {
    type Out;
    fn run<M: models::Model>(self, model: &M, values: &mut models::Values) -> Self::Out;
}

/// Builds the model of `kind` and hands it to `job`.
fn with_model<J: WithModel>(
    kind: ModelKind,
    options: &CheckOptions,
    semantics: Semantics,
    job: J,
) -> J::Out {
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
            job.run(&model, &mut values)
        }
        ModelKind::KeyValue => job.run(&models::KvModel, &mut values),
        ModelKind::MultiRegister => job.run(&models::MultiRegisterModel, &mut values),
    }
}

struct Check<'a>(&'a History, linear::LinearOptions);

impl WithModel for Check<'_> {
    type Out = Result<CheckResult, CheckError>;
    fn run<M: models::Model>(self, model: &M, values: &mut models::Values) -> Self::Out {
        linear::check(model, self.0, values, &self.1)
    }
}

struct Explain<'a>(&'a History, linear::LinearOptions, Option<String>);

impl WithModel for Explain<'_> {
    type Out = Result<Option<Explanation>, CheckError>;
    fn run<M: models::Model>(self, model: &M, values: &mut models::Values) -> Self::Out {
        linear::explain_key(model, self.0, values, &self.1, self.2.as_deref())
    }
}

fn choose_checker(history: &History, options: &CheckOptions) -> Result<Checker, CheckError> {
    match options.checker {
        Some(c) => Ok(c),
        None => match Checker::detect(history) {
            Some(c) => Ok(c),
            None if history.ops.iter().all(|o| o.process.is_nemesis()) => {
                Ok(Checker::Linearizable(ModelKind::CasRegister))
            }
            None => Err(CheckError::Usage(
                "cannot tell which model fits this history; pass --model".into(),
            )),
        },
    }
}

/// Check a history with the chosen (or detected) checker. With
/// `options.explain`, an invalid linearizability verdict is explained
/// after it is reached, under `options.explain_timeout`.
pub fn check_history(history: &History, options: &CheckOptions) -> Result<CheckResult, CheckError> {
    let checker = choose_checker(history, options)?;
    let semantics = options.semantics.unwrap_or(history.semantics);
    let mut result = match checker {
        Checker::Linearizable(kind) => with_model(
            kind,
            options,
            semantics,
            Check(history, options.linear(options.explain)),
        ),
        Checker::ListAppend => list_append::check(
            history,
            &list_append::ListAppendOptions {
                model: options.consistency_model,
            },
        ),
        Checker::Set => set::check(history),
    }?;
    // A history in which the system answered nothing proves nothing.
    health::apply_availability(&mut result, history, semantics);
    culprit::annotate(&mut result, history);
    Ok(result)
}

/// Explains a linearizability result found invalid without an
/// explanation (checked with `explain: false`, so the verdict could be
/// reported first): the first invalid key is searched again, recording
/// the longest linearizable prefix, under `options.explain_timeout`. Does
/// nothing for other results.
pub fn explain_result(
    history: &History,
    options: &CheckOptions,
    result: &mut CheckResult,
) -> Result<(), CheckError> {
    if result.valid != Validity::Invalid || result.explanation.is_some() {
        return Ok(());
    }
    let Checker::Linearizable(kind) = choose_checker(history, options)? else {
        return Ok(());
    };
    let Some(key) = result.keys.iter().find(|k| k.valid == Validity::Invalid) else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let semantics = options.semantics.unwrap_or(history.semantics);
    let job = Explain(history, options.linear(true), key.key.clone());
    result.explanation = with_model(kind, options, semantics, job)?;
    result.explain_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    culprit::annotate(result, history);
    Ok(())
}
