//! Reading histories written by us and by other tools, and writing ours in
//! Jepsen's EDN so Knossos or Elle can re-check them.
//!
//! Supported inputs: our `history.jsonl`; Jepsen's `history.edn` (a vector of
//! op maps or one map per line, with `independent` tuples `[k v]`); the
//! Jepsen log lines of the etcd corpus; porcupine's key-value EDN lines. The
//! format is detected from the first meaningful line unless given.

use std::path::Path;
use std::str::FromStr;

use serde_json::Value;

use crate::edn::{self, Edn};
use crate::error::CheckError;
use crate::history::{History, Op, OpType, Process, Semantics};

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Our `history.jsonl`.
    Jsonl,
    /// Jepsen's `history.edn` (also porcupine's key-value lines, which are EDN maps).
    JepsenEdn,
    /// Jepsen log lines: `INFO jepsen.util - 3 :invoke :read nil`.
    JepsenLog,
    /// porcupine's key-value histories: EDN maps with `:key`, one per line.
    PorcupineKv,
}

impl Format {
    /// All names accepted by [`Format::from_str`].
    pub const NAMES: &'static [&'static str] = &["jsonl", "edn", "jepsen-log", "porcupine-kv"];

    /// What failures and `nil` reads mean in this format: Jepsen's
    /// contract for EDN, an observation where the format's authors say so
    /// (porcupine, the published etcd logs), the error tag for ours.
    pub fn semantics(self) -> Semantics {
        match self {
            Format::Jsonl => Semantics::Tagged,
            Format::JepsenEdn => Semantics::Jepsen,
            Format::JepsenLog | Format::PorcupineKv => Semantics::Observation,
        }
    }
}

impl FromStr for Format {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "edn" | "jepsen-edn" => Ok(Format::JepsenEdn),
            "jepsen-log" | "log" => Ok(Format::JepsenLog),
            "porcupine-kv" | "porcupine" => Ok(Format::PorcupineKv),
            other => Err(CheckError::Usage(format!(
                "unknown format {other:?} (expected one of {})",
                Format::NAMES.join(", ")
            ))),
        }
    }
}

/// Guess the format from the first line that is not blank or a comment.
pub fn detect(text: &str) -> Result<Format, CheckError> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';'));
    let Some(line) = first else {
        // An empty history is valid in every format.
        return Ok(Format::Jsonl);
    };
    if line.starts_with("INFO") && line.contains("jepsen.util") {
        return Ok(Format::JepsenLog);
    }
    if line.starts_with('{') {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) {
            if m.contains_key("type") {
                return Ok(Format::Jsonl);
            }
        }
        if line.contains(":key") && !line.contains(":time") {
            return Ok(Format::PorcupineKv);
        }
        return Ok(Format::JepsenEdn);
    }
    if line.starts_with('[') || line.starts_with('#') || line.starts_with('(') {
        return Ok(Format::JepsenEdn);
    }
    Err(CheckError::Malformed {
        location: "line 1".into(),
        message: "cannot detect the history format (use --format)".into(),
    })
}

/// Parse text in the given format (or a detected one).
pub fn parse(text: &str, format: Option<Format>) -> Result<History, CheckError> {
    let format = match format {
        Some(f) => f,
        None => detect(text)?,
    };
    let history = match format {
        Format::Jsonl => History::read_jsonl(text.as_bytes()),
        Format::JepsenEdn | Format::PorcupineKv => parse_edn(text),
        Format::JepsenLog => parse_jepsen_log(text),
    }?;
    Ok(history.with_semantics(format.semantics()))
}

/// Read and parse a file.
pub fn read_file(path: &Path, format: Option<Format>) -> Result<History, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|e| CheckError::Io(e.to_string()))?;
    parse(&text, format)
}

fn malformed(line: usize, message: impl Into<String>) -> CheckError {
    CheckError::Malformed {
        location: format!("line {line}"),
        message: message.into(),
    }
}

fn op_type(name: &str, line: usize) -> Result<OpType, CheckError> {
    match name {
        "invoke" => Ok(OpType::Invoke),
        "ok" => Ok(OpType::Ok),
        "fail" => Ok(OpType::Fail),
        "info" => Ok(OpType::Info),
        other => Err(malformed(line, format!("unknown op type {other:?}"))),
    }
}

fn name_of(v: &Edn) -> Option<&str> {
    match v {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s),
        _ => None,
    }
}

/// Parse Jepsen EDN: every top-level form is an op map, or a vector/list of them.
pub fn parse_edn(text: &str) -> Result<History, CheckError> {
    let forms = edn::parse_all(text).map_err(|e| CheckError::Malformed {
        location: format!("line {}, column {}", e.line, e.column),
        message: e.message,
    })?;
    let mut ops = Vec::new();
    for (form, line) in forms {
        match form {
            Edn::Vector(items) | Edn::List(items) => {
                for item in items {
                    ops.push(edn_op(&item, line)?);
                }
            }
            other => ops.push(edn_op(&other, line)?),
        }
    }
    split_independent_tuples(&mut ops);
    Ok(History::new(ops).with_semantics(Semantics::Jepsen))
}

fn edn_op(form: &Edn, line: usize) -> Result<Op, CheckError> {
    if !matches!(form, Edn::Map(_) | Edn::Tagged(_, _)) {
        return Err(malformed(line, format!("expected an op map, found {form}")));
    }
    let kind = form
        .get("type")
        .and_then(name_of)
        .ok_or_else(|| malformed(line, "op without :type"))?;
    let kind = op_type(kind, line)?;
    let process = match form.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => Process::Client(*p as u64),
        Some(Edn::Keyword(k)) if k == "nemesis" => Process::Nemesis,
        Some(other) => return Err(malformed(line, format!("bad :process {other}"))),
        None => return Err(malformed(line, "op without :process")),
    };
    let f = form
        .get("f")
        .and_then(name_of)
        .ok_or_else(|| malformed(line, "op without :f"))?
        .to_string();
    let mut key = form.get("key").map(Edn::to_json);
    let mut value = form.get("value").map_or(Value::Null, Edn::to_json);
    if let Some(Edn::Tagged(tag, inner)) = form.get("value") {
        if tag.ends_with("Tuple") {
            key = inner.get("key").map(Edn::to_json);
            value = inner.get("value").map_or(Value::Null, Edn::to_json);
        }
    }
    let time = match form.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => *t as u64,
        _ => line as u64,
    };
    let node = form.get("node").map(|n| match n.to_json() {
        Value::String(s) => s,
        other => other.to_string(),
    });
    Ok(Op {
        index: 0,
        time,
        process,
        kind,
        f,
        key,
        value,
        node,
        error: form.get("error").map(Edn::to_json),
        line: Some(line),
    })
}

/// Jepsen's `independent` workloads wrap each register op's value in a
/// `[key value]` tuple. Decide for the whole history (a single cas `[1 2]`
/// is otherwise ambiguous) and move the key into [`Op::key`].
fn split_independent_tuples(ops: &mut [Op]) {
    let is_pair = |v: &Value| matches!(v, Value::Array(a) if a.len() == 2);
    let register_ops: Vec<&Op> = ops
        .iter()
        .filter(|o| !o.process.is_nemesis() && o.key.is_none())
        .filter(|o| matches!(o.f.as_str(), "read" | "write" | "cas"))
        .collect();
    if register_ops.is_empty() {
        return;
    }
    let independent = register_ops.iter().all(|o| {
        let Value::Array(a) = &o.value else {
            return false;
        };
        if a.len() != 2 {
            return false;
        }
        o.f != "cas" || is_pair(&a[1]) || a[1].is_null()
    }) && register_ops
        .iter()
        .any(|o| o.f != "cas" || matches!(&o.value, Value::Array(a) if is_pair(&a[1])));
    if !independent {
        return;
    }
    for op in ops.iter_mut() {
        if op.process.is_nemesis() || op.key.is_some() {
            continue;
        }
        if let Value::Array(a) = &mut op.value {
            if a.len() == 2 {
                let v = a.pop().unwrap_or(Value::Null);
                let k = a.pop().unwrap_or(Value::Null);
                op.key = Some(k);
                op.value = v;
            }
        }
    }
}

/// Parse the Jepsen log lines of the etcd corpus. The line number is the time.
pub fn parse_jepsen_log(text: &str) -> Result<History, CheckError> {
    let mut ops = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let mut tokens = trimmed.split_whitespace();
        let header: Vec<&str> = tokens.by_ref().take(3).collect();
        if header != ["INFO", "jepsen.util", "-"] {
            return Err(malformed(
                line,
                "expected `INFO jepsen.util - <process> :<type> :<f> <value>`",
            ));
        }
        let process: u64 = tokens
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| malformed(line, "bad process number"))?;
        let kind = tokens
            .next()
            .and_then(|t| t.strip_prefix(':'))
            .ok_or_else(|| malformed(line, "missing :type"))?;
        let kind = op_type(kind, line)?;
        let f = tokens
            .next()
            .and_then(|t| t.strip_prefix(':'))
            .ok_or_else(|| malformed(line, "missing :f"))?
            .to_string();
        let rest: Vec<&str> = tokens.collect();
        let rest = rest.join(" ");
        let parsed = edn::parse_one(&rest)
            .map_err(|e| malformed(line, format!("bad value {rest:?}: {}", e.message)))?;
        let (value, error) = match parsed {
            Edn::Keyword(k) => (Value::Null, Some(Value::String(k))),
            other => (other.to_json(), None),
        };
        ops.push(Op {
            index: 0,
            time: line as u64,
            process: Process::Client(process),
            kind,
            f,
            key: None,
            value,
            node: None,
            error,
            line: Some(line),
        });
    }
    Ok(History::new(ops).with_semantics(Semantics::Observation))
}

/// Micro-op function names that become keywords when written as EDN.
const MICRO_OPS: &[&str] = &["append", "r", "w", "read", "write"];

fn value_to_edn(f: &str, v: &Value) -> Edn {
    if f == "txn" {
        if let Value::Array(mops) = v {
            return Edn::Vector(
                mops.iter()
                    .map(|m| match m {
                        Value::Array(parts) if !parts.is_empty() => {
                            let mut items: Vec<Edn> = parts.iter().map(Edn::from_json).collect();
                            if let Value::String(name) = &parts[0] {
                                if MICRO_OPS.contains(&name.as_str()) {
                                    items[0] = Edn::Keyword(name.clone());
                                }
                            }
                            Edn::Vector(items)
                        }
                        other => Edn::from_json(other),
                    })
                    .collect(),
            );
        }
    }
    Edn::from_json(v)
}

fn keyword_or_value(v: &Value) -> Edn {
    match v {
        Value::String(s)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || "-_.?!*".contains(c)) =>
        {
            Edn::Keyword(s.clone())
        }
        other => Edn::from_json(other),
    }
}

/// One op as a Jepsen EDN map. A keyed register op's value becomes an
/// `independent` tuple `[key value]`, which is what Knossos' independent
/// checker expects; other keyed ops keep a `:key` entry.
pub fn op_to_edn(op: &Op) -> Edn {
    let mut m = vec![
        (Edn::Keyword("index".into()), Edn::Int(op.index as i64)),
        (Edn::Keyword("time".into()), Edn::Int(op.time as i64)),
        (
            Edn::Keyword("type".into()),
            Edn::Keyword(op.kind.as_str().into()),
        ),
        (
            Edn::Keyword("process".into()),
            match op.process {
                Process::Client(p) => Edn::Int(p as i64),
                Process::Nemesis => Edn::Keyword("nemesis".into()),
            },
        ),
        (Edn::Keyword("f".into()), Edn::Keyword(op.f.clone())),
    ];
    let value = value_to_edn(&op.f, &op.value);
    let register = matches!(op.f.as_str(), "read" | "write" | "cas");
    let value = match &op.key {
        Some(k) if register && !op.process.is_nemesis() => {
            Edn::Vector(vec![Edn::from_json(k), value])
        }
        Some(k) => {
            // Other keyed functions keep porcupine's separate `:key`.
            m.push((Edn::Keyword("key".into()), Edn::from_json(k)));
            value
        }
        None => value,
    };
    m.push((Edn::Keyword("value".into()), value));
    if let Some(node) = &op.node {
        m.push((Edn::Keyword("node".into()), Edn::Str(node.clone())));
    }
    if let Some(err) = &op.error {
        m.push((Edn::Keyword("error".into()), keyword_or_value(err)));
    }
    Edn::Map(m)
}

/// The whole history as Jepsen EDN, one op map per line.
pub fn to_edn(history: &History) -> String {
    let mut out = String::new();
    for op in &history.ops {
        edn::write_edn(&op_to_edn(op), &mut out);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect("INFO  jepsen.util - 3\t:invoke\t:read\tnil\n").unwrap(),
            Format::JepsenLog
        );
        assert_eq!(
            detect("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}").unwrap(),
            Format::Jsonl
        );
        assert_eq!(
            detect("{:process 0, :type :invoke, :f :get, :key \"7\", :value nil}").unwrap(),
            Format::PorcupineKv
        );
        assert_eq!(
            detect("[{:type :invoke\n :f :read}]").unwrap(),
            Format::JepsenEdn
        );
        assert!(detect("hello").is_err());
    }

    #[test]
    fn imports_independent_tuples_and_exports_them_back() {
        let text = "[{:type :invoke, :f :cas, :value [1 [2 3]], :process 0, :time 5}\n\
                    {:type :fail, :f :cas, :value [1 [2 3]], :process 0, :time 6}\n\
                    {:type :invoke, :f :write, :value [2 4], :process :nemesis}]";
        let h = parse(text, None).unwrap();
        assert_eq!(h.ops[0].key, Some(json!(1)));
        assert_eq!(h.ops[0].value, json!([2, 3]));
        assert_eq!(h.ops[2].process, Process::Nemesis);
        let back = parse(&to_edn(&h), Some(Format::JepsenEdn)).unwrap();
        assert_eq!(back.ops[0].key, Some(json!(1)));
        assert_eq!(back.ops[1].value, json!([2, 3]));
    }

    #[test]
    fn plain_cas_values_are_not_tuples() {
        let text = "{:type :invoke, :f :cas, :value [1 2], :process 0}\n{:type :ok, :f :cas, :value [1 2], :process 0}";
        let h = parse(text, None).unwrap();
        assert_eq!(h.ops[0].key, None);
        assert_eq!(h.ops[0].value, json!([1, 2]));
    }

    #[test]
    fn jepsen_log_lines_with_tabs_or_spaces() {
        let text = "INFO  jepsen.util - 1\t:invoke\t:cas\t[0 3]\nINFO  jepsen.util - 1   :info :cas    :timed-out\n";
        let h = parse(text, None).unwrap();
        assert_eq!(h.ops[0].value, json!([0, 3]));
        assert_eq!(h.ops[1].kind, OpType::Info);
        assert_eq!(h.ops[1].error, Some(json!("timed-out")));
        let err = parse(
            "INFO  jepsen.util - 1\t:invoke\t:cas\t[0 3]\nINFO jepsen.util - x :ok :read 1",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("line 2"), "{err}");
    }

    #[test]
    fn txn_values_export_with_keyword_micro_ops() {
        let op = Op::new(
            Process::Client(0),
            OpType::Ok,
            "txn",
            json!([["append", "x", 3], ["r", "x", [1, 2, 3]]]),
        );
        let text = op_to_edn(&op).to_string();
        assert!(
            text.contains("[[:append \"x\" 3] [:r \"x\" [1 2 3]]]"),
            "{text}"
        );
    }
}
