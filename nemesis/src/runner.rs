//! The nemesis runner: executes a schedule against a [`ClusterControl`],
//! remembers which faults are active so they can all be undone, and reports
//! each action as a Jepsen-style `invoke`/`info` pair of events.

use crate::control::{ClusterControl, FaultError, Grudge, NodeId};
use crate::schedule::{Action, DefaultSchedule, Fault, FaultKind, Schedule, Step};
use crate::target::{self, Target};
use crate::topology::{self, Topology};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
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
    /// `start-partition`, `stop-partition`, `start-kill`, `stop-kill`,
    /// `start-pause` or `stop-pause`.
    pub f: String,
    /// The topology and grudge, or the target and the nodes acted on.
    pub value: Value,
    /// Why the action failed or was not carried out, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The faults that are in effect now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveFaults {
    /// The grudge of the active partition, if any.
    pub partition: Option<Grudge>,
    /// Nodes killed and not yet restarted.
    pub killed: BTreeSet<NodeId>,
    /// Nodes paused and not yet resumed.
    pub paused: BTreeSet<NodeId>,
}

impl ActiveFaults {
    pub fn is_empty(&self) -> bool {
        self.partition.is_none() && self.killed.is_empty() && self.paused.is_empty()
    }
}

struct State {
    rng: StdRng,
    active: ActiveFaults,
    /// Kinds found unsupported by this deployment, with the reason; they
    /// are skipped from then on.
    unsupported: BTreeMap<FaultKind, String>,
}

/// Runs faults on a cluster. Cheap to share: every method takes `&self`, so
/// the harness can run the schedule in one thread and call
/// [`Nemesis::heal_all`] from another.
pub struct Nemesis {
    control: Arc<dyn ClusterControl>,
    kinds: Vec<FaultKind>,
    schedule: Schedule,
    seed: u64,
    state: Mutex<State>,
}

/// How often a waiting runner looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

fn grudge_json(g: &Grudge) -> Value {
    let map: serde_json::Map<String, Value> = g
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.iter().collect::<Vec<_>>())))
        .collect();
    Value::Object(map)
}

fn fault_error_text(errors: &[String]) -> Option<String> {
    (!errors.is_empty()).then(|| errors.join("; "))
}

impl Nemesis {
    /// `kinds` are the fault kinds the default schedule picks from (an
    /// explicit schedule runs as written); `seed` makes the default
    /// schedule and every random choice (topologies, targets) reproducible.
    pub fn new(
        control: Arc<dyn ClusterControl>,
        kinds: Vec<FaultKind>,
        schedule: Schedule,
        seed: u64,
    ) -> Nemesis {
        Nemesis {
            control,
            kinds,
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
            Schedule::Default(timing) => {
                Box::new(DefaultSchedule::new(self.seed, &self.kinds, *timing))
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
            Action::Start(Fault::Partition(t)) => self.start_partition(t, on_event),
            Action::Start(Fault::Kill(t)) => self.start_process_fault(FaultKind::Kill, t, on_event),
            Action::Start(Fault::Pause(t)) => {
                self.start_process_fault(FaultKind::Pause, t, on_event)
            }
            Action::Start(Fault::Compact(t)) => self.start_compact(t, on_event),
            Action::Stop(FaultKind::Partition) => self.stop_partition(on_event),
            Action::Stop(FaultKind::Compact) => self.stop_compact(on_event),
            Action::Stop(k @ (FaultKind::Kill | FaultKind::Pause)) => {
                self.stop_process_fault(k, on_event)
            }
        }
    }

    /// Stops every active fault: heals partitions, resumes paused nodes,
    /// restarts killed ones (in that order, so restarted nodes come back to
    /// a whole network). Emits events only for faults that were active.
    pub fn heal_all(&self, on_event: &mut dyn FnMut(NemesisEvent)) {
        let active = self.active();
        if active.partition.is_some() {
            self.stop_partition(on_event);
        }
        if !active.paused.is_empty() {
            self.stop_process_fault(FaultKind::Pause, on_event);
        }
        if !active.killed.is_empty() {
            self.stop_process_fault(FaultKind::Kill, on_event);
        }
    }

    fn mark_unsupported(&self, kind: FaultKind, why: &str) {
        tracing::warn!(%kind, %why, "fault unsupported by this deployment; skipping it from now on");
        self.state().unsupported.insert(kind, why.to_string());
    }

    fn start_partition(&self, topology: Topology, on_event: &mut dyn FnMut(NemesisEvent)) {
        let f = "start-partition".to_string();
        on_event(NemesisEvent {
            phase: Phase::Invoke,
            f: f.clone(),
            value: json!({ "topology": topology.name() }),
            error: None,
        });
        if let Err(why) = self.control.partitions_supported() {
            self.mark_unsupported(FaultKind::Partition, &why);
            on_event(NemesisEvent {
                phase: Phase::Info,
                f,
                value: json!({ "topology": topology.name() }),
                error: Some(FaultError::Unsupported(why).to_string()),
            });
            return;
        }
        let nodes = self.control.node_ids();
        let leader = (topology == Topology::Leader)
            .then(|| self.control.leader())
            .flatten();
        let mut value = json!({ "topology": topology.name() });
        if topology == Topology::Leader {
            value["leader"] = json!(leader);
            if leader.is_none() {
                value["note"] = json!("no leader known; isolated a random node");
            }
        }
        let mut st = self.state();
        let grudge = topology::grudge_for(topology, &nodes, leader, &mut st.rng);
        value["grudge"] = grudge_json(&grudge);
        let result = self.control.partition(&grudge);
        let error = match result {
            Ok(()) => {
                st.active.partition = Some(grudge);
                None
            }
            Err(FaultError::Unsupported(why)) => {
                drop(st);
                self.mark_unsupported(FaultKind::Partition, &why);
                Some(FaultError::Unsupported(why).to_string())
            }
            Err(e) => {
                // Some rules may be in place: remember it so heal runs.
                st.active.partition = Some(grudge);
                Some(e.to_string())
            }
        };
        on_event(NemesisEvent {
            phase: Phase::Info,
            f,
            value,
            error,
        });
    }

    fn stop_partition(&self, on_event: &mut dyn FnMut(NemesisEvent)) {
        let f = "stop-partition".to_string();
        on_event(NemesisEvent {
            phase: Phase::Invoke,
            f: f.clone(),
            value: Value::Null,
            error: None,
        });
        let mut st = self.state();
        let error = match self.control.heal() {
            Ok(()) => {
                st.active.partition = None;
                None
            }
            Err(e) => Some(e.to_string()),
        };
        drop(st);
        on_event(NemesisEvent {
            phase: Phase::Info,
            f,
            value: json!({ "healed": error.is_none() }),
            error,
        });
    }

    fn start_process_fault(
        &self,
        kind: FaultKind,
        target: Target,
        on_event: &mut dyn FnMut(NemesisEvent),
    ) {
        let f = format!("start-{kind}");
        on_event(NemesisEvent {
            phase: Phase::Invoke,
            f: f.clone(),
            value: json!({ "target": target.name() }),
            error: None,
        });
        let nodes = self.control.node_ids();
        let leader = (target == Target::Leader)
            .then(|| self.control.leader())
            .flatten();
        let mut st = self.state();
        let targets = target::select(target, &nodes, leader, &mut st.rng);
        let mut done = Vec::new();
        let mut errors = Vec::new();
        let mut unsupported = None;
        for &n in &targets {
            let r = match kind {
                FaultKind::Kill => self.control.kill(n),
                _ => self.control.pause(n),
            };
            match r {
                Ok(()) => {
                    done.push(n);
                    match kind {
                        FaultKind::Kill => {
                            st.active.killed.insert(n);
                            // A killed process is no longer paused.
                            st.active.paused.remove(&n);
                        }
                        _ => {
                            st.active.paused.insert(n);
                        }
                    }
                }
                Err(FaultError::Unsupported(why)) => {
                    errors.push(format!("node {n}: unsupported: {why}"));
                    unsupported = Some(why);
                    break;
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        drop(st);
        if let Some(why) = unsupported {
            self.mark_unsupported(kind, &why);
        }
        let mut value = json!({ "target": target.name(), "targets": done });
        if target == Target::Leader {
            value["leader"] = json!(leader);
            if leader.is_none() {
                value["note"] = json!("no leader known; chose a random node");
            }
        }
        on_event(NemesisEvent {
            phase: Phase::Info,
            f,
            value,
            error: fault_error_text(&errors),
        });
    }

    /// Compacts the logs of the target nodes that are running.
    fn start_compact(&self, target: Target, on_event: &mut dyn FnMut(NemesisEvent)) {
        let f = "start-compact".to_string();
        on_event(NemesisEvent {
            phase: Phase::Invoke,
            f: f.clone(),
            value: json!({ "target": target.name() }),
            error: None,
        });
        let nodes = self.control.node_ids();
        let leader = (target == Target::Leader)
            .then(|| self.control.leader())
            .flatten();
        let (targets, down) = {
            let mut st = self.state();
            let targets = target::select(target, &nodes, leader, &mut st.rng);
            (targets, st.active.killed.clone())
        };
        let mut first_index = serde_json::Map::new();
        let mut errors = Vec::new();
        for n in targets.into_iter().filter(|n| !down.contains(n)) {
            match self.control.compact(n) {
                Ok(first) => {
                    first_index.insert(n.to_string(), json!(first));
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        on_event(NemesisEvent {
            phase: Phase::Info,
            f,
            value: json!({ "target": target.name(), "first_index": first_index }),
            error: fault_error_text(&errors),
        });
    }

    /// Compaction has nothing to undo: the event only closes its period.
    fn stop_compact(&self, on_event: &mut dyn FnMut(NemesisEvent)) {
        for phase in [Phase::Invoke, Phase::Info] {
            on_event(NemesisEvent {
                phase,
                f: "stop-compact".into(),
                value: Value::Null,
                error: None,
            });
        }
    }

    fn stop_process_fault(&self, kind: FaultKind, on_event: &mut dyn FnMut(NemesisEvent)) {
        let f = format!("stop-{kind}");
        on_event(NemesisEvent {
            phase: Phase::Invoke,
            f: f.clone(),
            value: Value::Null,
            error: None,
        });
        let mut st = self.state();
        let targets: Vec<NodeId> = match kind {
            FaultKind::Kill => st.active.killed.iter().copied().collect(),
            _ => st.active.paused.iter().copied().collect(),
        };
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for n in targets {
            let r = match kind {
                FaultKind::Kill => self.control.start(n),
                _ => self.control.resume(n),
            };
            match r {
                Ok(()) => {
                    done.push(n);
                    match kind {
                        FaultKind::Kill => st.active.killed.remove(&n),
                        _ => st.active.paused.remove(&n),
                    };
                }
                // Left in the active set so a later heal_all retries it.
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        drop(st);
        on_event(NemesisEvent {
            phase: Phase::Info,
            f,
            value: json!({ "targets": done }),
            error: fault_error_text(&errors),
        });
    }
}
