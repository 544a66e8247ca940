//! The fault kinds, each a self-describing module registered in one list.
//!
//! A fault kind is a unit struct implementing [`FaultType`] in its own
//! module: its name, its schedule grammar (start verb, stop verb and
//! argument), its default random choice, how it starts and stops, what it
//! keeps while active (so [`crate::Nemesis::heal_all`] can undo it), the
//! deployment capabilities it needs and its colour and label in reports.
//!
//! The `fault_kinds!` invocation below is the one list of kinds. From it
//! come [`FaultKind`] (the kinds), [`Fault`] (a kind with its argument),
//! [`ActiveFaults`] (one field per kind) and every dispatch, all exhaustive
//! matches: adding a kind is its module (`pub mod NAME;` here) plus one
//! line in the list. A kind that needs something new of deployments adds a
//! [`Capability`] and its [`ClusterControl`] method (whose default refuses
//! it as unsupported) and implements it where it can be done.

#[macro_use]
mod define;
mod process;

pub mod clock;
pub mod compact;
pub mod corrupt;
pub mod kill;
pub mod lossy_net;
pub mod member;
pub mod minority;
pub mod partition;
pub mod pause;
pub mod power_loss;
pub mod slow_net;

use crate::control::{Capability, ClusterControl};
use crate::runner::State;
use rand::rngs::StdRng;
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

fault_kinds! {
    /// The grudge of the active partition, if any.
    partition: Partition(partition::Partition),
    /// Nodes killed and not yet restarted.
    killed: Kill(kill::Kill),
    /// Nodes paused and not yet resumed.
    paused: Pause(pause::Pause),
    /// Nothing: a compaction has nothing to undo.
    compacted: Compact(compact::Compact),
    /// Nodes the member fault made PASSIVE (made FOLLOWERs again on stop).
    member_passive: Member(member::Member),
    /// The survivors in minority mode and the majority killed for it.
    minority: Minority(minority::Minority),
    /// Nodes whose power was cut and that are not powered on yet.
    power_lost: PowerLoss(power_loss::PowerLoss),
    /// Nodes that refused to start on a corrupted file, not yet repaired.
    corrupt: Corrupt(corrupt::Corrupt),
    /// Skewed clocks, with their skew.
    clock: Clock(clock::Clock),
    /// Shaped links, with their delay.
    slow_net: SlowNet(slow_net::SlowNet),
    /// Lossy links, with their loss in thousandths.
    lossy_net: LossyNet(lossy_net::LossyNet),
}

/// How a fault kind's argument is written in a schedule
/// (`partition:TOPOLOGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgGrammar {
    /// What the argument is, e.g. `topology`; also its key in the start
    /// event's value.
    pub what: &'static str,
    /// An example value, for error messages.
    pub example: &'static str,
}

/// How reports draw a fault kind's periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultStyle {
    /// RGB colour of its bands and legend swatch.
    pub colour: (u8, u8, u8),
    /// The word for its periods in legends and labels.
    pub label: &'static str,
}

/// What a start or stop did: the value and error of its `info` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub value: Value,
    /// Why (part of) it was not carried out, if it was not.
    pub error: Option<String>,
}

impl Outcome {
    /// `value`, and the errors joined (none: no error).
    pub fn new(value: Value, errors: &[String]) -> Outcome {
        Outcome {
            value,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }
}

/// What a fault's start and stop act through: the cluster and the
/// nemesis's state (its random stream and the faults in effect).
pub struct FaultContext<'a> {
    pub(crate) kind: FaultKind,
    pub(crate) control: &'a dyn ClusterControl,
    pub(crate) state: &'a Mutex<State>,
}

impl FaultContext<'_> {
    /// The cluster.
    pub fn control(&self) -> &dyn ClusterControl {
        self.control
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another thread must not stop us from healing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the deployment cannot do this kind: the nemesis skips
    /// it from now on.
    pub(crate) fn mark_unsupported(&self, why: &str) {
        mark_unsupported(self.state, self.kind, why);
    }
}

pub(crate) fn mark_unsupported(state: &Mutex<State>, kind: FaultKind, why: &str) {
    tracing::warn!(%kind, %why, "fault unsupported by this deployment; skipping it from now on");
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unsupported
        .insert(kind, why.to_string());
}

/// A kind of fault. Implemented by a unit struct in the kind's module and
/// registered in the `fault_kinds!` list of this module.
pub trait FaultType {
    /// The start's argument (a topology, a target): a small copyable value.
    type Arg: Copy + Eq + fmt::Debug + Send + Sync + 'static;
    /// What the kind keeps while active, to undo it (`()` for nothing).
    type State: Clone + Default + PartialEq + Eq + fmt::Debug + Send + 'static;

    /// Its name: on the command line (`--nemesis`), in events
    /// (`start-NAME`, `stop-NAME`) and in reports.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The schedule verb that starts it.
    const START_VERB: &'static str = Self::NAME;
    /// The schedule verb that stops it; `None` when there is nothing to
    /// undo (the default schedule still closes its period).
    const STOP_VERB: Option<&'static str>;
    /// Its argument in a schedule; `None` for a start without one.
    const ARG: Option<ArgGrammar>;
    /// The deployment capabilities it needs (checked before each start).
    const NEEDS: &'static [Capability];
    /// Where [`crate::Nemesis::heal_all`] undoes it: lower first (the
    /// network before processes come back).
    const HEAL_ORDER: u8;
    /// Its colour and label in reports.
    const STYLE: FaultStyle;

    /// Parses the argument (an empty string when [`FaultType::ARG`] is
    /// `None`).
    fn parse_arg(s: &str) -> Result<Self::Arg, String>;
    /// The argument's name, as in a schedule.
    fn arg_name(arg: Self::Arg) -> String;
    /// The default schedule's random choice of argument.
    fn random_arg(rng: &mut StdRng) -> Self::Arg;
    /// Whether anything is in effect that [`FaultType::stop`] would undo.
    fn is_active(state: &Self::State) -> bool;
    /// Carries the fault out now.
    fn start(ctx: &FaultContext, arg: Self::Arg) -> Outcome;
    /// Undoes every active fault of this kind.
    fn stop(ctx: &FaultContext) -> Outcome;
}

impl FaultKind {
    /// The kind named `name`.
    pub fn by_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Fault {
    /// The value of its start's `invoke` event: `{"topology": "halves"}`.
    pub fn describe(self) -> Value {
        match self.kind().arg() {
            Some(g) => json!({ g.what: self.arg_name() }),
            None => Value::Null,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::by_name(s).ok_or_else(|| {
            let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown fault {s:?} (expected one of {})", names.join(", "))
        })
    }
}

/// The colour and label reports give the fault kind named `name` (as in a
/// `start-NAME` event), if it is one.
pub fn style_of(name: &str) -> Option<FaultStyle> {
    FaultKind::by_name(name).map(FaultKind::style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    /// Names, verbs and colours identify a kind: none is shared.
    #[test]
    fn every_kind_is_distinct_and_parses_back() {
        let mut verbs = BTreeSet::new();
        let mut colours = BTreeSet::new();
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
            assert!(verbs.insert(k.start_verb()), "{k}: verb taken");
            if let Some(v) = k.stop_verb() {
                assert!(verbs.insert(v), "{k}: verb {v} taken");
            }
            assert!(colours.insert(k.style().colour), "{k}: colour taken");
            assert!(!k.needs().is_empty(), "{k} needs something of a deployment");
            let mut rng = StdRng::seed_from_u64(1);
            let f = k.random_fault(&mut rng);
            assert_eq!(f.kind(), k);
            assert_eq!(
                k.parse_fault(&f.arg_name()),
                Ok(f),
                "{k}: argument round trip"
            );
        }
        let e = "bogus".parse::<FaultKind>().unwrap_err();
        assert!(
            e.contains("\"bogus\"") && e.contains("partition, kill, pause, compact"),
            "{e}"
        );
    }

    #[test]
    fn start_events_name_the_argument_by_its_grammar() {
        let f = FaultKind::Partition.parse_fault("halves").unwrap();
        assert_eq!(f.describe(), json!({"topology": "halves"}));
        let f = FaultKind::Kill.parse_fault("leader").unwrap();
        assert_eq!(f.describe(), json!({"target": "leader"}));
        assert_eq!(style_of("pause").unwrap().label, "pause");
        assert_eq!(style_of("nothing"), None);
    }
}
