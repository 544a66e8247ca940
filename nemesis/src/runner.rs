//! The nemesis runner: executes a schedule against a [`ClusterControl`],
//! remembers which faults are active so they can all be undone, and reports
//! each action as a Jepsen-style `invoke`/`info` pair of events.

use crate::choice::FaultChoice;
use crate::control::{ClusterControl, FaultError};
use crate::faults::{self, ActiveFaults, Fault, FaultContext, FaultKind, Outcome};
use crate::schedule::{Action, ComposedSchedule, Schedule, SerialSchedule, Step};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether an event announces an action (`invoke`) or reports what was done
/// (`info`; nemesis operations never have a definite ok/fail outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Invoke,
    Info,
}

/// One nemesis event, which the harness turns into a history op with
/// process `"nemesis"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub phase: Phase,
    /// `start-KIND` or `stop-KIND` (`start-partition`, `stop-kill`, ...).
    pub f: String,
    /// What the fault was asked to do (`invoke`) or did (`info`): the
    /// topology and grudge, or the target and the nodes acted on.
    pub value: Value,
    /// Why the action failed or was not carried out, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The nemesis's mutable state, shared by the schedule's thread and
/// [`Nemesis::heal_all`].
pub(crate) struct State {
    /// Every random choice of a fault (topologies, targets).
    pub(crate) rng: StdRng,
    pub(crate) active: ActiveFaults,
    /// Kinds found unsupported by this deployment, with the reason; they
    /// are skipped from then on.
    pub(crate) unsupported: BTreeMap<FaultKind, String>,
}

/// Runs faults on a cluster. Cheap to share: every method takes `&self`, so
/// the harness can run the schedule in one thread and call
/// [`Nemesis::heal_all`] from another.
pub struct Nemesis {
    control: Arc<dyn ClusterControl>,
    choices: Vec<FaultChoice>,
    schedule: Schedule,
    seed: u64,
    state: Mutex<State>,
}

/// How often a waiting runner looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

impl Nemesis {
    /// `choices` are what the randomised schedules pick from: fault kinds
    /// (`FaultKind`) or pinned faults (`Fault`); an explicit schedule runs
    /// as written. `seed` makes the randomised schedules and every random
    /// choice (topologies, targets) reproducible.
    pub fn new<C: Into<FaultChoice>>(
        control: Arc<dyn ClusterControl>,
        choices: impl IntoIterator<Item = C>,
        schedule: Schedule,
        seed: u64,
    ) -> Nemesis {
        Nemesis {
            control,
            choices: choices.into_iter().map(Into::into).collect(),
            schedule,
            seed,
            state: Mutex::new(State {
                // A separate stream from the schedule's, so that the plan
                // does not depend on how many random choices faults made.
                rng: StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321),
                active: ActiveFaults::default(),
                unsupported: BTreeMap::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another thread must not stop us from healing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults in effect now.
    pub fn active(&self) -> ActiveFaults {
        self.state().active.clone()
    }

    /// Kinds found unsupported so far, with the reason.
    pub fn unsupported(&self) -> BTreeMap<FaultKind, String> {
        self.state().unsupported.clone()
    }

    /// Executes the schedule in the calling thread until `deadline`, until
    /// `stop_flag` is set, or until an explicit schedule runs out. Step
    /// times count from the call. Faults still active on return stay
    /// active: the harness calls [`Nemesis::heal_all`] afterwards.
    pub fn run(
        &self,
        deadline: Instant,
        stop_flag: &AtomicBool,
        on_event: &mut dyn FnMut(NemesisEvent),
    ) {
        let start = Instant::now();
        let steps: Box<dyn Iterator<Item = Step>> = match &self.schedule {
            Schedule::Explicit(steps) => Box::new(steps.clone().into_iter()),
            Schedule::Repeating { steps, every } => {
                Box::new(crate::schedule::repeating(steps.clone(), *every))
            }
            Schedule::Default(timing) => {
                Box::new(ComposedSchedule::new(self.seed, &self.choices, *timing))
            }
            Schedule::Serial(timing) => {
                Box::new(SerialSchedule::new(self.seed, &self.choices, *timing))
            }
        };
        for step in steps {
            let due = start + step.at;
            if due >= deadline {
                tracing::debug!("nemesis schedule reached the deadline");
                return;
            }
            loop {
                if stop_flag.load(Ordering::SeqCst) {
                    tracing::debug!("nemesis stopped by flag");
                    return;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(POLL));
            }
            self.execute(step.action, on_event);
        }
    }

    /// Carries out one action now (also used by the runner).
    pub fn execute(&self, action: Action, on_event: &mut dyn FnMut(NemesisEvent)) {
        let kind = match action {
            Action::Start(f) => f.kind(),
            Action::Stop(k) => k,
        };
        if let Some(why) = self.state().unsupported.get(&kind) {
            tracing::debug!(%kind, %why, "skipping unsupported fault");
            return;
        }
        match action {
            Action::Start(fault) => self.start(fault, on_event),
            Action::Stop(kind) => self.stop(kind, on_event),
        }
    }

    /// Stops every active fault, each kind in its heal order (partitions
    /// are healed, then paused nodes resumed, then killed ones restarted,
    /// so restarted nodes come back to a whole network). Emits events only
    /// for faults that were active.
    pub fn heal_all(&self, on_event: &mut dyn FnMut(NemesisEvent)) {
        let active = self.active();
        let mut kinds = FaultKind::ALL.to_vec();
        kinds.sort_by_key(|k| k.heal_order());
        for kind in kinds {
            if kind.is_active(&active) {
                self.stop(kind, on_event);
            }
        }
    }

    fn context(&self, kind: FaultKind) -> FaultContext<'_> {
        FaultContext {
            kind,
            control: &*self.control,
            state: &self.state,
        }
    }

    /// Announces the fault, checks that the deployment can do what it
    /// needs, carries it out and reports what was done.
    fn start(&self, fault: Fault, on_event: &mut dyn FnMut(NemesisEvent)) {
        let kind = fault.kind();
        let f = format!("start-{kind}");
        let asked = fault.describe();
        on_event(event(Phase::Invoke, &f, asked.clone(), None));
        let missing = kind
            .needs()
            .iter()
            .find_map(|c| self.control.supports(*c).err());
        if let Some(why) = missing {
            faults::mark_unsupported(&self.state, kind, &why);
            let error = FaultError::Unsupported(why).to_string();
            on_event(event(Phase::Info, &f, asked, Some(error)));
            return;
        }
        let Outcome { value, error } = fault.start(&self.context(kind));
        on_event(event(Phase::Info, &f, value, error));
    }

    /// Undoes every active fault of `kind` and reports what was undone.
    fn stop(&self, kind: FaultKind, on_event: &mut dyn FnMut(NemesisEvent)) {
        let f = format!("stop-{kind}");
        on_event(event(Phase::Invoke, &f, Value::Null, None));
        let Outcome { value, error } = kind.stop(&self.context(kind));
        on_event(event(Phase::Info, &f, value, error));
    }
}

fn event(phase: Phase, f: &str, value: Value, error: Option<String>) -> NemesisEvent {
    NemesisEvent {
        phase,
        f: f.to_string(),
        value,
        error,
    }
}
