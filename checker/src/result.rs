//! The verdict types every checker returns, serialised for `results.json`.

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::explain::Explanation;
use crate::list_append::ListAppendReport;
use crate::set::SetReport;

/// A checker's verdict. `Unknown` means the checker gave up (time limit or
/// memory budget) and is never a claim about the system.
/// Serialised as `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The history satisfies the property.
    Valid,
    /// The history violates it; an explanation says where.
    Invalid,
    /// Undecided within the limits.
    Unknown,
}

impl Validity {
    /// Combine verdicts of independent parts: any invalid part makes the
    /// whole invalid; otherwise any unknown part makes it unknown.
    pub fn and(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// `valid`, `invalid` or `unknown`, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Validity::Valid),
            serde_json::Value::Bool(false) => Ok(Validity::Invalid),
            serde_json::Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            other => Err(de::Error::custom(format!("bad validity {other}"))),
        }
    }
}

/// The verdict on one independent part of a history (one key, or the whole
/// history when it is not split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyResult {
    /// The key as text (`null` for an unkeyed history).
    pub key: Option<String>,
    /// The part's verdict.
    pub valid: Validity,
    /// Operations checked in this part (after dropping those with no effect).
    pub ops: usize,
    /// Why the verdict is unknown, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// What a checker found. Fields that do not apply to a checker are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The overall verdict.
    pub valid: Validity,
    /// Which checker: `linearizable`, `list-append`, `set`.
    pub checker: String,
    /// The model or consistency level checked.
    pub model: String,
    /// Wall-clock time to the verdict (parsing and explanation excluded).
    pub elapsed_ms: f64,
    /// Time spent explaining after the verdict, if an explanation was sought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain_ms: Option<f64>,
    /// Client operations (invocations) in the history.
    pub op_count: usize,
    /// Why the verdict is unknown, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// The rule that overrode the checker's own verdict, if one did (see
    /// [`crate::health`]), e.g. `no-operation-succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Linearizability: the verdict per independent part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyResult>,
    /// Linearizability: why the first invalid part is not linearizable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// List-append: anomalies and graph figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_append: Option<ListAppendReport>,
    /// Set: lost, stale and never-read elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetReport>,
}

impl CheckResult {
    /// An empty result of the given checker and model, to be filled in.
    pub fn new(checker: &str, model: &str) -> CheckResult {
        CheckResult {
            valid: Validity::Valid,
            checker: checker.into(),
            model: model.into(),
            elapsed_ms: 0.0,
            explain_ms: None,
            op_count: 0,
            unknown_reason: None,
            rule: None,
            keys: Vec::new(),
            explanation: None,
            list_append: None,
            set: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_serialises_as_bool_or_unknown() {
        assert_eq!(serde_json::to_string(&Validity::Valid).unwrap(), "true");
        assert_eq!(serde_json::to_string(&Validity::Invalid).unwrap(), "false");
        assert_eq!(
            serde_json::to_string(&Validity::Unknown).unwrap(),
            "\"unknown\""
        );
        let v: Validity = serde_json::from_str("\"unknown\"").unwrap();
        assert_eq!(v, Validity::Unknown);
        assert_eq!(Validity::Unknown.and(Validity::Invalid), Validity::Invalid);
        assert_eq!(Validity::Valid.and(Validity::Unknown), Validity::Unknown);
    }
}
