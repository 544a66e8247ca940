//! Sequential specifications for the linearizability search.
//!
//! Each model compiles a history's (invocation, completion) pairs into its
//! own compact operations once, so the search compares small integers
//! instead of JSON. A model's `step` is deterministic: an indeterminate
//! operation is applied with its effect, and "never took effect" is covered
//! by the search leaving it out.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;

use crate::error::CheckError;
use crate::history::{Op, OpType, Semantics};

/// An interned JSON value; `NIL` is `null`. Register models compare values
/// millions of times, so they compare these instead.
pub type Val = u32;

/// The interned `null`.
pub const NIL: Val = 0;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ValKey {
    Int(i64),
    Other(String),
}

/// Interns JSON values so that equal values get equal [`Val`]s.
#[derive(Debug, Clone)]
pub struct Values {
    ids: HashMap<ValKey, Val>,
    items: Vec<Value>,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            ids: HashMap::new(),
            items: vec![Value::Null],
        }
    }
}

impl Values {
    /// The id of `v`, allocating one if new.
    pub fn intern(&mut self, v: &Value) -> Val {
        let key = match v {
            Value::Null => return NIL,
            Value::Number(n) if n.is_i64() => ValKey::Int(n.as_i64().unwrap_or_default()),
            other => ValKey::Other(other.to_string()),
        };
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.items.len() as Val;
        self.items.push(v.clone());
        self.ids.insert(key, id);
        id
    }

    /// The value behind an id, as text (`nil` for null).
    pub fn show(&self, id: Val) -> String {
        match self.items.get(id as usize) {
            None | Some(Value::Null) => "nil".into(),
            Some(v) => v.to_string(),
        }
    }
}

/// What a pair becomes for the search.
#[derive(Debug, Clone, PartialEq)]
pub enum Compiled<O> {
    /// No effect and nothing observed (a failed write, a read of unknown result).
    Skip,
    /// Completed: must be linearized between its invocation and completion.
    Determinate(O),
    /// Indeterminate: may take effect any time after invocation, or never.
    Indeterminate(O),
}

/// A sequential specification.
pub trait Model: Send + Sync {
    /// The abstract state; the search memoises on it.
    type State: Clone + Eq + Hash + Debug + Send + Sync;
    /// A compiled operation: arguments plus the observed result.
    type Op: Clone + Debug + Send + Sync;

    /// The model's name, as `--model` spells it.
    fn name(&self) -> &'static str;
    /// Whether keys are independent, so the history may be split by `Op::key`
    /// (P-compositionality).
    fn splittable(&self) -> bool;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Compile an invocation and its completion (`None`: never completed).
    fn compile(
        &self,
        invoke: &Op,
        outcome: OpType,
        complete: Option<&Op>,
        values: &mut Values,
    ) -> Result<Compiled<Self::Op>, CheckError>;
    /// Apply `op` in `state`: the next state, or `None` if the observed
    /// result is impossible there.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// True if the op's effect ignores the state and it observes nothing
    /// (a blind write): such an indeterminate op only matters when the very
    /// next linearized op observes its value, which prunes the search.
    fn is_blind(&self, op: &Self::Op) -> bool;
    /// True if the op never changes the state (a read, a failed cas). A
    /// completed read-only op that fits the current state is linearized at
    /// once without branching: moving a read earlier never breaks a
    /// linearization, which removes most of the search's branching.
    fn is_read_only(&self, op: &Self::Op) -> bool;
    /// True if the op only moves the state forward in an order in which
    /// [`Model::read_is_dead`] is decided (reads; appends for key-value).
    fn is_monotone(&self, op: &Self::Op) -> bool {
        self.is_read_only(op)
    }
    /// For a read-only op: true if neither `state` nor any state reachable
    /// from it by monotone ops fits it. The search then stops early when no
    /// non-monotone op can come before the read's completion.
    fn read_is_dead(&self, state: &Self::State, op: &Self::Op) -> bool {
        self.step(state, op).is_none()
    }
    /// Human-readable op, e.g. `cas(1→2)`.
    fn describe_op(&self, op: &Self::Op, values: &Values) -> String;
    /// Human-readable state.
    fn describe_state(&self, state: &Self::State, values: &Values) -> String;
    /// Approximate heap + inline bytes of a state, for the memory budget.
    fn state_bytes(&self, _state: &Self::State) -> usize {
        std::mem::size_of::<Self::State>()
    }
}

/// The models `--model` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// read / write.
    Register,
    /// read / write / cas `[from, to]`.
    CasRegister,
    /// get / put / append on string values, every key starting as `""`.
    KeyValue,
    /// `txn` of `["r", k, v]` and `["w", k, v]` over several registers.
    MultiRegister,
}

impl ModelKind {
    /// Names accepted by `--model`.
    pub const NAMES: &'static [&'static str] = &[
        "register",
        "cas-register",
        "kv",
        "multi-register",
        "list-append",
        "set",
    ];

    /// Pick a model from the functions used in the history.
    pub fn detect(history: &crate::history::History) -> Option<ModelKind> {
        let mut kv = false;
        let mut reg = false;
        let mut txn = false;
        for op in history.ops.iter().filter(|o| !o.process.is_nemesis()) {
            match op.f.as_str() {
                "get" | "put" | "append" => kv = true,
                "read" | "write" | "cas" => reg = true,
                "txn" => txn = true,
                _ => {}
            }
        }
        match (kv, reg, txn) {
            (true, false, false) => Some(ModelKind::KeyValue),
            (false, true, false) => Some(ModelKind::CasRegister),
            (false, false, true) => Some(ModelKind::MultiRegister),
            _ => None,
        }
    }
}

impl FromStr for ModelKind {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(ModelKind::Register),
            "cas-register" | "cas" => Ok(ModelKind::CasRegister),
            "kv" | "key-value" => Ok(ModelKind::KeyValue),
            "multi-register" => Ok(ModelKind::MultiRegister),
            other => Err(CheckError::Usage(format!(
                "unknown linearizability model {other:?} (expected register, cas-register, kv or multi-register)"
            ))),
        }
    }
}

fn unsupported(op: &Op, message: impl Into<String>) -> CheckError {
    CheckError::Unsupported {
        location: op.location(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------- registers

/// A register op with its observed result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOp {
    /// A read that returned the value.
    Read(Val),
    /// A write of the value.
    Write(Val),
    /// A cas that succeeded (or, if indeterminate, may have).
    Cas(Val, Val),
    /// A cas whose compare failed: the register held something other than `from`.
    CasFailed(Val),
}

/// A single register, with or without compare-and-set.
#[derive(Debug, Clone)]
pub struct RegisterModel {
    /// Allow `cas`.
    pub cas: bool,
    /// The value before any write (`NIL` unless given).
    pub initial: Val,
    /// What failed operations and `nil` reads mean.
    pub semantics: Semantics,
}

/// The error tag a client puts first in a failed operation's `error`
/// (`["unexecuted", "why"]`) when the operation definitely never ran, as
/// opposed to running and failing (a cas whose compare did not match).
pub const UNEXECUTED: &str = "unexecuted";

/// True if a failed completion says the operation never ran.
pub fn never_executed(complete: &Op) -> bool {
    match &complete.error {
        Some(Value::Array(items)) => items.first().and_then(Value::as_str) == Some(UNEXECUTED),
        Some(Value::String(s)) => s == UNEXECUTED,
        _ => false,
    }
}

fn cas_args(op: &Op, v: &Value, values: &mut Values) -> Result<(Val, Val), CheckError> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok((values.intern(&a[0]), values.intern(&a[1]))),
        other => Err(unsupported(
            op,
            format!("cas value must be [from, to], got {other}"),
        )),
    }
}

impl Model for RegisterModel {
    type State = Val;
    type Op = RegOp;

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }

    fn splittable(&self) -> bool {
        true
    }

    fn init(&self) -> Val {
        self.initial
    }

    fn compile(
        &self,
        invoke: &Op,
        outcome: OpType,
        complete: Option<&Op>,
        values: &mut Values,
    ) -> Result<Compiled<RegOp>, CheckError> {
        use Compiled::*;
        Ok(match (invoke.f.as_str(), outcome) {
            ("read", OpType::Ok) => {
                let v = complete.map_or(&Value::Null, |c| &c.value);
                if v.is_null() && self.semantics == Semantics::Jepsen {
                    // Knossos: a read of nil tells nothing.
                    Skip
                } else {
                    Determinate(RegOp::Read(values.intern(v)))
                }
            }
            ("read", _) => Skip,
            ("write", OpType::Ok) => Determinate(RegOp::Write(values.intern(&invoke.value))),
            ("write", OpType::Info) => Indeterminate(RegOp::Write(values.intern(&invoke.value))),
            ("write", _) => Skip,
            ("cas", outcome) if self.cas => {
                let (from, to) = cas_args(invoke, &invoke.value, values)?;
                let observed = match self.semantics {
                    Semantics::Jepsen => false,
                    Semantics::Observation => true,
                    // A cas that never ran (no leader, rejected before
                    // proposing) observed nothing; any other failed cas
                    // found a value other than `from`.
                    Semantics::Tagged => !complete.is_some_and(never_executed),
                };
                match outcome {
                    OpType::Ok => Determinate(RegOp::Cas(from, to)),
                    OpType::Fail if observed => Determinate(RegOp::CasFailed(from)),
                    OpType::Fail => Skip,
                    _ => Indeterminate(RegOp::Cas(from, to)),
                }
            }
            (f, _) => {
                return Err(unsupported(
                    invoke,
                    format!("the {} model has no {f:?} operation", self.name()),
                ))
            }
        })
    }

    fn step(&self, state: &Val, op: &RegOp) -> Option<Val> {
        match *op {
            RegOp::Read(v) => (v == *state).then_some(v),
            RegOp::Write(v) => Some(v),
            RegOp::Cas(from, to) => (from == *state).then_some(to),
            RegOp::CasFailed(from) => (from != *state).then_some(*state),
        }
    }

    fn is_blind(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Write(_))
    }

    fn is_read_only(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Read(_) | RegOp::CasFailed(_))
    }

    fn describe_op(&self, op: &RegOp, values: &Values) -> String {
        match *op {
            RegOp::Read(v) => format!("read → {}", values.show(v)),
            RegOp::Write(v) => format!("write {}", values.show(v)),
            RegOp::Cas(f, t) => format!("cas {} → {}", values.show(f), values.show(t)),
            RegOp::CasFailed(f) => format!("cas from {} (failed)", values.show(f)),
        }
    }

    fn describe_state(&self, state: &Val, values: &Values) -> String {
        values.show(*state)
    }
}

// ---------------------------------------------------------------- key-value

/// A key-value op on string values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// `get` returned this string.
    Get(Val, Arc<str>),
    /// `put` replaced the key's string.
    Put(Val, Arc<str>),
    /// `append` concatenated to the key's string.
    Append(Val, Arc<str>),
}

/// porcupine's key-value model: every key starts as `""`.
#[derive(Debug, Clone, Default)]
pub struct KvModel;

/// Key-value state: the non-empty keys, sorted by key id.
pub type KvState = Vec<(Val, Arc<str>)>;

fn kv_string(op: &Op, v: &Value) -> Result<Arc<str>, CheckError> {
    match v {
        Value::String(s) => Ok(Arc::from(s.as_str())),
        Value::Null => Ok(Arc::from("")),
        Value::Number(n) => Ok(Arc::from(n.to_string().as_str())),
        other => Err(unsupported(
            op,
            format!("key-value values must be strings, got {other}"),
        )),
    }
}

fn kv_get(state: &KvState, key: Val) -> &str {
    match state.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => &state[i].1,
        Err(_) => "",
    }
}

fn kv_set(state: &KvState, key: Val, v: Arc<str>) -> KvState {
    let mut next = state.clone();
    match next.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => next[i].1 = v,
        Err(i) => next.insert(i, (key, v)),
    }
    next
}

impl Model for KvModel {
    type State = KvState;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn splittable(&self) -> bool {
        true
    }

    fn init(&self) -> KvState {
        Vec::new()
    }

    fn compile(
        &self,
        invoke: &Op,
        outcome: OpType,
        complete: Option<&Op>,
        values: &mut Values,
    ) -> Result<Compiled<KvOp>, CheckError> {
        let key = values.intern(invoke.key.as_ref().unwrap_or(&Value::Null));
        let wrap = |op| match outcome {
            OpType::Ok => Compiled::Determinate(op),
            OpType::Info | OpType::Invoke => Compiled::Indeterminate(op),
            OpType::Fail => Compiled::Skip,
        };
        Ok(match invoke.f.as_str() {
            "get" => match (outcome, complete) {
                (OpType::Ok, Some(c)) => {
                    Compiled::Determinate(KvOp::Get(key, kv_string(c, &c.value)?))
                }
                _ => Compiled::Skip,
            },
            "put" => wrap(KvOp::Put(key, kv_string(invoke, &invoke.value)?)),
            "append" => wrap(KvOp::Append(key, kv_string(invoke, &invoke.value)?)),
            f => {
                return Err(unsupported(
                    invoke,
                    format!("the kv model has no {f:?} operation"),
                ))
            }
        })
    }

    fn step(&self, state: &KvState, op: &KvOp) -> Option<KvState> {
        match op {
            KvOp::Get(k, v) => (kv_get(state, *k) == &**v).then(|| state.clone()),
            KvOp::Put(k, v) => Some(kv_set(state, *k, v.clone())),
            KvOp::Append(k, v) => {
                let mut s = String::from(kv_get(state, *k));
                s.push_str(v);
                Some(kv_set(state, *k, Arc::from(s.as_str())))
            }
        }
    }

    fn is_blind(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Put(..))
    }

    fn is_read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(..))
    }

    fn is_monotone(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(..) | KvOp::Append(..))
    }

    fn read_is_dead(&self, state: &KvState, op: &KvOp) -> bool {
        match op {
            // Appends only extend a string: once it is not a prefix of what
            // the get saw, only a put can make the get fit.
            KvOp::Get(k, v) => !v.starts_with(kv_get(state, *k)),
            _ => false,
        }
    }

    fn describe_op(&self, op: &KvOp, values: &Values) -> String {
        match op {
            KvOp::Get(k, v) => format!("get {} → {v:?}", values.show(*k)),
            KvOp::Put(k, v) => format!("put {} {v:?}", values.show(*k)),
            KvOp::Append(k, v) => format!("append {} {v:?}", values.show(*k)),
        }
    }

    fn describe_state(&self, state: &KvState, values: &Values) -> String {
        let parts: Vec<String> = state
            .iter()
            .map(|(k, v)| format!("{}: {v:?}", values.show(*k)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn state_bytes(&self, state: &KvState) -> usize {
        24 + state.iter().map(|(_, v)| 24 + v.len()).sum::<usize>()
    }
}

// ---------------------------------------------------------------- multi-register

/// A transaction over several registers: reads must see the current values
/// (including the transaction's own earlier writes), writes replace them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiOp {
    /// `(is_write, key, value)` in order.
    pub mops: Vec<(bool, Val, Val)>,
}

/// Knossos' multi-register: a map of registers, all starting as nil.
#[derive(Debug, Clone, Default)]
pub struct MultiRegisterModel;

impl Model for MultiRegisterModel {
    type State = Vec<(Val, Val)>;
    type Op = MultiOp;

    fn name(&self) -> &'static str {
        "multi-register"
    }

    fn splittable(&self) -> bool {
        false
    }

    fn init(&self) -> Self::State {
        Vec::new()
    }

    fn compile(
        &self,
        invoke: &Op,
        outcome: OpType,
        complete: Option<&Op>,
        values: &mut Values,
    ) -> Result<Compiled<MultiOp>, CheckError> {
        if invoke.f != "txn" {
            return Err(unsupported(
                invoke,
                format!("the multi-register model has no {:?} operation", invoke.f),
            ));
        }
        if outcome == OpType::Fail {
            return Ok(Compiled::Skip);
        }
        let source = match (outcome, complete) {
            (OpType::Ok, Some(c)) => &c.value,
            _ => &invoke.value,
        };
        let Value::Array(items) = source else {
            return Err(unsupported(invoke, "txn value must be a list of micro-ops"));
        };
        let mut mops = Vec::with_capacity(items.len());
        for m in items {
            let Value::Array(parts) = m else {
                return Err(unsupported(invoke, format!("bad micro-op {m}")));
            };
            let (f, k, v) = match parts.as_slice() {
                [Value::String(f), k, v] => (f.as_str(), k, v),
                _ => return Err(unsupported(invoke, format!("bad micro-op {m}"))),
            };
            let write = match f {
                "w" | "write" => true,
                "r" | "read" => false,
                other => return Err(unsupported(invoke, format!("unknown micro-op {other:?}"))),
            };
            // An indeterminate txn's reads are unknown: keep only its writes.
            if !write && outcome != OpType::Ok {
                continue;
            }
            mops.push((write, values.intern(k), values.intern(v)));
        }
        let op = MultiOp { mops };
        Ok(if outcome == OpType::Ok {
            Compiled::Determinate(op)
        } else {
            Compiled::Indeterminate(op)
        })
    }

    fn step(&self, state: &Self::State, op: &MultiOp) -> Option<Self::State> {
        let mut next = state.clone();
        for &(write, k, v) in &op.mops {
            let pos = next.binary_search_by_key(&k, |(key, _)| *key);
            if write {
                match pos {
                    Ok(i) => next[i].1 = v,
                    Err(i) => next.insert(i, (k, v)),
                }
            } else {
                let current = pos.map_or(NIL, |i| next[i].1);
                if current != v {
                    return None;
                }
            }
        }
        Some(next)
    }

    fn is_blind(&self, op: &MultiOp) -> bool {
        op.mops.iter().all(|m| m.0)
    }

    fn is_read_only(&self, op: &MultiOp) -> bool {
        op.mops.iter().all(|m| !m.0)
    }

    fn describe_op(&self, op: &MultiOp, values: &Values) -> String {
        let parts: Vec<String> = op
            .mops
            .iter()
            .map(|&(w, k, v)| {
                format!(
                    "{} {} {}",
                    if w { "w" } else { "r" },
                    values.show(k),
                    values.show(v)
                )
            })
            .collect();
        format!("txn [{}]", parts.join(", "))
    }

    fn describe_state(&self, state: &Self::State, values: &Values) -> String {
        let parts: Vec<String> = state
            .iter()
            .map(|&(k, v)| format!("{}: {}", values.show(k), values.show(v)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn state_bytes(&self, state: &Self::State) -> usize {
        24 + state.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_register_steps() {
        let m = RegisterModel {
            cas: true,
            initial: NIL,
            semantics: Semantics::Tagged,
        };
        assert_eq!(m.step(&1, &RegOp::Cas(1, 2)), Some(2));
        assert_eq!(m.step(&3, &RegOp::Cas(1, 2)), None);
        assert_eq!(m.step(&3, &RegOp::CasFailed(1)), Some(3));
        assert_eq!(m.step(&1, &RegOp::CasFailed(1)), None);
        // A failed cas tagged as never executed imposes nothing.
        let mut values = Values::default();
        let inv = Op::new(
            crate::history::Process::Client(0),
            OpType::Invoke,
            "cas",
            serde_json::json!([1, 2]),
        );
        let mut done = Op::new(
            crate::history::Process::Client(0),
            OpType::Fail,
            "cas",
            serde_json::json!([1, 2]),
        );
        done.error = Some(serde_json::json!(["unexecuted", "no leader reachable"]));
        let model = RegisterModel {
            cas: true,
            initial: NIL,
            semantics: Semantics::Tagged,
        };
        assert!(matches!(
            model.compile(&inv, OpType::Fail, Some(&done), &mut values),
            Ok(Compiled::Skip)
        ));
        done.error = Some(serde_json::json!(["cas-mismatch", "r0 holds 3"]));
        assert!(matches!(
            model.compile(&inv, OpType::Fail, Some(&done), &mut values),
            Ok(Compiled::Determinate(RegOp::CasFailed(_)))
        ));
        assert_eq!(m.step(&1, &RegOp::Read(1)), Some(1));
        assert_eq!(m.step(&NIL, &RegOp::Read(1)), None);
    }

    #[test]
    fn kv_appends_concatenate() {
        let m = KvModel;
        let s = m.step(&m.init(), &KvOp::Append(1, "ab".into())).unwrap();
        let s = m.step(&s, &KvOp::Append(1, "c".into())).unwrap();
        assert!(m.step(&s, &KvOp::Get(1, "abc".into())).is_some());
        assert!(m.step(&s, &KvOp::Get(2, "".into())).is_some());
        assert!(m.step(&s, &KvOp::Get(1, "ab".into())).is_none());
    }

    #[test]
    fn multi_register_reads_own_writes() {
        let m = MultiRegisterModel;
        let op = MultiOp {
            mops: vec![(true, 1, 5), (false, 1, 5), (false, 2, NIL)],
        };
        assert!(m.step(&m.init(), &op).is_some());
        let bad = MultiOp {
            mops: vec![(false, 1, 5)],
        };
        assert!(m.step(&m.init(), &bad).is_none());
    }
}
