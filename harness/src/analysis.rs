//! Checks a run's history from scratch and writes `results.json`; used at
//! the end of `dcf-harness test` and by `dcf-harness analyze`.

use crate::store::RunDir;
use checker::{CheckOptions, Checker, History, Validity};
use serde_json::{json, Value};
use std::time::Duration;

/// Why a history could not be analysed (a harness problem, not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: checker::CheckError,
    },
    #[error("checking failed: {0}")]
    Check(checker::CheckError),
    #[error("cannot write results: {0}")]
    Write(std::io::Error),
}

/// The overall verdict and the `results.json` document.
pub struct Analysis {
    pub valid: Validity,
    pub results: Value,
}

/// The checker for a workload name.
pub fn checker_for(workload: &str) -> Option<Checker> {
    workloads::by_name(workload).ok().map(|w| w.checker())
}

/// Checks `run`'s history and writes `results.json` (merging `extra`
/// fields, e.g. what the harness observed during the run).
pub fn analyze(run: &RunDir, timeout: Duration, extra: Value) -> Result<Analysis, AnalysisError> {
    let path = run.history();
    let file = std::fs::File::open(&path).map_err(|source| AnalysisError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let history = History::read_jsonl(std::io::BufReader::new(file)).map_err(|source| {
        AnalysisError::Parse {
            path: path.display().to_string(),
            source,
        }
    })?;
    let test = run.read_json("test.json").unwrap_or(Value::Null);
    let checker = test["workload"].as_str().and_then(checker_for);
    let opts = CheckOptions {
        checker,
        timeout: Some(timeout),
        ..CheckOptions::default()
    };
    let result = checker::check_history(&history, &opts).map_err(AnalysisError::Check)?;
    let mut counts = serde_json::Map::new();
    for op in history.ops.iter().filter(|o| !o.process.is_nemesis()) {
        if op.kind == checker::OpType::Invoke {
            continue;
        }
        let e = counts
            .entry(op.f.clone())
            .or_insert_with(|| json!({"ok": 0, "fail": 0, "info": 0}));
        let k = op.kind.as_str();
        e[k] = json!(e[k].as_u64().unwrap_or(0) + 1);
    }
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis())
        .count();
    let mut valid = result.valid;
    // A run whose harness saw trouble (e.g. a node panicked) is never
    // silently valid.
    if valid == Validity::Valid
        && extra
            .get("node_panics")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            > 0
    {
        valid = Validity::Unknown;
    }
    let mut results = json!({
        "valid": valid,
        "checker": result.clone(),
        "op_counts": counts,
        "nemesis_ops": nemesis_ops,
        "history_ops": history.ops.len(),
    });
    if let (Value::Object(r), Value::Object(e)) = (&mut results, extra) {
        for (k, v) in e {
            r.insert(k, v);
        }
    }
    run.write_json("results.json", &results)
        .map_err(AnalysisError::Write)?;
    Ok(Analysis { valid, results })
}
