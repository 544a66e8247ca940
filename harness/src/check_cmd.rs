//! `dcf-harness check`: check history files of any supported format with
//! the `checker` crate and report one verdict per file.
//!
//! What a failure means follows the file's format (Jepsen's contract for
//! EDN, an observation for the etcd logs and porcupine, the error tag for
//! ours); `--semantics` chooses explicitly.
//!
//! Output: one line per file, `<path> <valid|invalid|unknown> <milliseconds>`
//! (checking time, parsing excluded), or with `--json` one object whose
//! top-level `valid` is `true`, `false` or `"unknown"`. Exit codes: 0 all
//! valid, 1 some invalid, 2 some unknown (none invalid), 64 bad usage
//! (found while parsing the command line) or an unreadable or malformed
//! file.

use std::path::PathBuf;
use std::time::Duration;

use crate::{cli, exit};
use checker::{
    formats, CheckOptions, CheckResult, Checker, ConsistencyModel, Format, Semantics, Validity,
};
use clap::Args;
use serde_json::{json, Value};

/// Arguments of `dcf-harness check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// History files (history.jsonl, Jepsen history.edn, Jepsen log lines, porcupine kv).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Input format (default: detected).
    #[arg(long, value_parser = cli::format())]
    pub format: Option<Format>,
    /// What a failed operation and a nil read mean. Default by format:
    /// edn gets `jepsen` (Knossos's contract: :fail did not take place and
    /// observed nothing, :info may or may not have; a nil register read
    /// constrains nothing); jepsen-log and porcupine-kv get `observation`
    /// (a failed cas found another value; a nil read saw an empty
    /// register, as porcupine reads them); jsonl gets `tagged` (a failure
    /// whose error starts with "unexecuted" never ran, any other failed cas
    /// found another value; null is the empty register).
    #[arg(long, value_parser = cli::semantics())]
    pub semantics: Option<Semantics>,
    /// Model (default: detected).
    #[arg(long, value_parser = cli::model())]
    pub model: Option<Checker>,
    /// Initial register value, as JSON (e.g. 0 or "\"a\""); bare words are strings.
    #[arg(long, value_name = "VALUE")]
    pub initial: Option<String>,
    /// Time limit per file in seconds; reaching it gives `unknown`.
    #[arg(long, value_name = "SECS", value_parser = cli::positive_secs)]
    pub timeout: Option<f64>,
    /// Memory budget of the linearizability search per file, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory_mb: usize,
    /// Do not split histories by key (P-compositionality off).
    #[arg(long)]
    pub no_split: bool,
    /// Check every key even after one is refuted (by default the first
    /// refuted key decides and the others are left unchecked).
    #[arg(long)]
    pub all_keys: bool,
    /// Time limit of an explanation, in seconds. The explanation runs after
    /// the verdict is printed and never changes it.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = cli::non_negative)]
    pub explain_timeout: f64,
    /// List-append: the consistency model to check, from Elle's ladder
    /// (default strict-serializable). The anomalies that break it make the
    /// history invalid; the others are reported.
    #[arg(long, value_name = "MODEL", value_parser = cli::consistency_model())]
    pub consistency_model: Option<ConsistencyModel>,
    /// List-append: the same as `--consistency-model serializable`.
    #[arg(long, conflicts_with = "consistency_model")]
    pub serializable: bool,
    /// Print a JSON result object instead of lines.
    #[arg(long)]
    pub json: bool,
    /// After an invalid file's line, print the explanation as text.
    #[arg(long)]
    pub explain: bool,
}

/// The checker's options from the arguments (all checked while parsing).
fn options(args: &CheckArgs) -> CheckOptions {
    let consistency_model = match (args.consistency_model, args.serializable) {
        (Some(m), _) => m,
        (None, true) => ConsistencyModel::Serializable,
        (None, false) => ConsistencyModel::default(),
    };
    let initial = args
        .initial
        .as_ref()
        .map(|v| serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone())));
    CheckOptions {
        checker: args.model,
        initial,
        split_by_key: !args.no_split,
        timeout: args.timeout.map(Duration::from_secs_f64),
        memory_budget: args.memory_mb.saturating_mul(1 << 20),
        // The verdict first; the explanation after it (see `run`).
        explain: false,
        explain_timeout: Duration::from_secs_f64(args.explain_timeout),
        all_keys: args.all_keys,
        consistency_model,
        semantics: args.semantics,
    }
}

fn none_if_empty(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The outcome of one file.
enum FileOutcome {
    Checked(Box<CheckResult>),
    Error(String),
}

/// Run the command; returns the process exit code. Output goes to stdout,
/// errors to stderr.
pub fn run(args: &CheckArgs) -> i32 {
    let format = args.format;
    let opts = options(args);
    let mut outcomes = Vec::new();
    for path in &args.files {
        let checked = formats::read_file(path, format).and_then(|h| {
            let r = checker::check_history(&h, &opts)?;
            Ok((h, r))
        });
        let outcome = match checked {
            Ok((history, mut r)) => {
                if !args.json {
                    // The verdict is printed before any explanation is sought.
                    println!(
                        "{} {} {:.1}",
                        path.display(),
                        r.valid.as_str(),
                        r.elapsed_ms
                    );
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    if let Some(why) = &r.unknown_reason {
                        eprintln!("dcf-harness check: {}: unknown: {why}", path.display());
                    }
                }
                if args.explain || args.json {
                    if let Err(e) = checker::explain_result(&history, &opts, &mut r) {
                        eprintln!("dcf-harness check: {}: explaining: {e}", path.display());
                    }
                }
                FileOutcome::Checked(Box::new(r))
            }
            Err(e) => FileOutcome::Error(e.to_string()),
        };
        if !args.json {
            match &outcome {
                FileOutcome::Checked(r) => {
                    if args.explain {
                        if let Some(e) = &r.explanation {
                            print!("{}", e.to_text());
                        }
                        if let Some(la) = &r.list_append {
                            if !la.anomalies.is_empty() {
                                println!(
                                    "checked against {}; anomalies breaking it: {}; the history is not: {}",
                                    la.consistency,
                                    none_if_empty(&la.prohibited_types),
                                    none_if_empty(&la.not)
                                );
                            }
                            for a in &la.anomalies {
                                println!("{}", a.to_text());
                            }
                        }
                    }
                }
                FileOutcome::Error(e) => eprintln!("dcf-harness check: {}: {e}", path.display()),
            }
        }
        outcomes.push((path, outcome));
    }
    let mut overall = Validity::Valid;
    let mut errors = false;
    for (_, o) in &outcomes {
        match o {
            FileOutcome::Checked(r) => overall = overall.and(r.valid),
            FileOutcome::Error(_) => errors = true,
        }
    }
    if args.json {
        let files: Vec<Value> = outcomes
            .iter()
            .map(|(path, o)| match o {
                FileOutcome::Checked(r) => json!({
                    "path": path.display().to_string(),
                    "valid": r.valid,
                    "rule": r.rule.as_deref().unwrap_or(checker::health::CHECKER),
                    "reason": r.unknown_reason,
                    "elapsed_ms": r.elapsed_ms,
                    "result": r,
                }),
                FileOutcome::Error(e) => json!({
                    "path": path.display().to_string(),
                    "valid": "unknown",
                    "error": e,
                }),
            })
            .collect();
        let top = json!({ "valid": if errors { serde_json::to_value(overall.and(Validity::Unknown)).unwrap_or(Value::Null) } else { serde_json::to_value(overall).unwrap_or(Value::Null) }, "files": files });
        println!("{top}");
    }
    if errors {
        return exit::USAGE;
    }
    exit::exit_code(overall)
}
