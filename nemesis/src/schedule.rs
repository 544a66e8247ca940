//! When faults start and stop: the randomised default schedule and explicit
//! schedules parsed from the command line.
//!
//! # Explicit schedule grammar
//!
//! ```text
//! schedule := item ("," item)*
//! item     := SECONDS ":" action
//! action   := START_VERB ":" ARG | STOP_VERB
//! SECONDS  := a non-negative decimal number of seconds from the start of the run
//! ```
//!
//! Each fault kind brings its verbs and argument (see
//! [`crate::faults`]): `partition:TOPOLOGY` / `heal`, `kill:TARGET` /
//! `restart`, `pause:TARGET` / `resume`, `compact:TARGET` (nothing to
//! undo), where `TOPOLOGY` is one of [`Topology`](crate::Topology)'s names
//! (halves, random-halves, one, leader, leader-minority, majorities-ring,
//! bridge) and `TARGET` one of [`Target`](crate::Target)'s (one, minority, majority,
//! leader, all); `member:CHANGE` / `restore-roles` (add, remove, role,
//! promote, priority, burst) and `minority` / `normal` (no argument).
//! [`grammar`] lists them from the registry.
//!
//! A last item `PERIOD:repeat` plays the items again, shifted by PERIOD
//! seconds each round, until the run's time limit (e.g.
//! `3:partition:leader,3.3:member:burst,10:heal,12:repeat` cuts the leader
//! off at 3, 15, 27, ... s): a short scenario tried many times per run.
//! PERIOD must be at least the time from the first item to the last. The
//! repeat item is exempt from the rule that times never decrease.
//!
//! Whitespace around items and fields is ignored; times must not decrease.
//! Example: `5:partition:halves,15:heal,20:kill:leader,28:restart,30:pause:minority,38:resume`.

use crate::choice::FaultChoice;
use crate::faults::{Fault, FaultKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::str::FromStr;
use std::time::Duration;

/// What the nemesis does at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a fault.
    Start(Fault),
    /// Undo every active fault of this kind (heal, restart, resume).
    Stop(FaultKind),
}

/// An action at a time offset from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

/// A bad explicit schedule; the message names the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad nemesis schedule item #{index} {item:?}: {reason}")]
pub struct ScheduleError {
    /// 1-based position of the item in the list.
    pub index: usize,
    pub item: String,
    pub reason: String,
}

/// The verb of the last item that makes a schedule repeat.
pub const REPEAT: &str = "repeat";

/// Parses the explicit schedule grammar (see the module docs) without a
/// `repeat` item.
pub fn parse_schedule(s: &str) -> Result<Vec<Step>, ScheduleError> {
    let (steps, repeat) = parse_explicit(s)?;
    if repeat.is_some() {
        let items = s.split(',').count();
        return Err(ScheduleError {
            index: items,
            item: s.split(',').next_back().unwrap_or("").trim().to_string(),
            reason: "repeat is not allowed here".into(),
        });
    }
    Ok(steps)
}

/// Parses the explicit schedule grammar (see the module docs): the steps
/// and, when the last item is `SECONDS:repeat`, the period of repetition.
pub fn parse_explicit(s: &str) -> Result<(Vec<Step>, Option<Duration>), ScheduleError> {
    let mut steps: Vec<Step> = Vec::new();
    let items: Vec<&str> = s.split(',').collect();
    let mut repeat = None;
    for (i, raw) in items.iter().enumerate() {
        let item = raw.trim();
        let err = |reason: String| ScheduleError {
            index: i + 1,
            item: item.to_string(),
            reason,
        };
        if item.is_empty() {
            return Err(err("empty item (stray comma?)".into()));
        }
        let fields: Vec<&str> = item.split(':').map(str::trim).collect();
        let secs: f64 = fields[0]
            .parse()
            .map_err(|_| err(format!("time {:?} is not a number of seconds", fields[0])))?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(err(format!(
                "time {:?} must be a non-negative number",
                fields[0]
            )));
        }
        let at = Duration::from_secs_f64(secs);
        let (verb, arg) = match fields.len() {
            1 => return Err(err("missing action after the time".into())),
            2 => (fields[1], None),
            3 => (fields[1], Some(fields[2])),
            _ => return Err(err("too many ':' fields".into())),
        };
        if verb == REPEAT {
            if i + 1 != items.len() {
                return Err(err("repeat must be the last item".into()));
            }
            if arg.is_some() {
                return Err(err("repeat takes no argument".into()));
            }
            if steps.is_empty() {
                return Err(err("repeat needs items before it".into()));
            }
            // Rounds must not overlap: each starts after the previous ends.
            let span = steps[steps.len() - 1].at - steps[0].at;
            if at.is_zero() || at < span {
                return Err(err(format!(
                    "repeat's period must be positive and at least the span of the items ({}s)",
                    span.as_secs_f64()
                )));
            }
            repeat = Some(at);
            continue;
        }
        let no_arg = |action: Action| -> Result<Action, ScheduleError> {
            match arg {
                None => Ok(action),
                Some(a) => Err(err(format!("{verb:?} takes no argument, got {a:?}"))),
            }
        };
        let starts = FaultKind::ALL.into_iter().find(|k| k.start_verb() == verb);
        let stops = FaultKind::ALL
            .into_iter()
            .find(|k| k.stop_verb() == Some(verb));
        let action = match (starts, stops) {
            (Some(kind), _) => match kind.arg() {
                Some(grammar) => {
                    let arg = arg.ok_or_else(|| {
                        err(format!(
                            "{verb:?} needs a {}, e.g. {verb}:{}",
                            grammar.what, grammar.example
                        ))
                    })?;
                    Action::Start(kind.parse_fault(arg).map_err(err)?)
                }
                None => no_arg(Action::Start(kind.parse_fault("").map_err(err)?))?,
            },
            (None, Some(kind)) => no_arg(Action::Stop(kind))?,
            (None, None) => {
                return Err(err(format!(
                    "unknown action {verb:?} (expected one of {})",
                    verbs().join(", ")
                )))
            }
        };
        if let Some(prev) = steps.last() {
            if at < prev.at {
                return Err(err(format!(
                    "time {secs}s is earlier than the previous item's {}s",
                    prev.at.as_secs_f64()
                )));
            }
        }
        steps.push(Step { at, action });
    }
    Ok((steps, repeat))
}

/// Every schedule verb, in registration order: each kind's start verb,
/// then its stop verb; `repeat` last.
pub fn verbs() -> Vec<&'static str> {
    FaultKind::ALL
        .into_iter()
        .flat_map(|k| std::iter::once(k.start_verb()).chain(k.stop_verb()))
        .chain([REPEAT])
        .collect()
}

/// `steps` again and again, shifted by `every` each round.
pub fn repeating(steps: Vec<Step>, every: Duration) -> impl Iterator<Item = Step> {
    (0u32..).flat_map(move |round| {
        steps.clone().into_iter().map(move |s| Step {
            at: s.at + every * round,
            action: s.action,
        })
    })
}

/// The schedule's actions, one per verb (`partition:TOPOLOGY`, `heal`,
/// ...), for help texts.
pub fn grammar() -> Vec<String> {
    FaultKind::ALL
        .into_iter()
        .flat_map(|k| {
            let start = match k.arg() {
                Some(g) => format!("{}:{}", k.start_verb(), g.what.to_uppercase()),
                None => k.start_verb().to_string(),
            };
            std::iter::once(start).chain(k.stop_verb().map(str::to_string))
        })
        .collect()
}

/// Timing of the default schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTiming {
    /// Healthy time before each fault: uniform in this range.
    pub healthy: (Duration, Duration),
    /// How long each fault is held: uniform in this range.
    pub hold: (Duration, Duration),
}

impl Default for DefaultTiming {
    /// Roughly one fault every 10 s: 3–8 s healthy, then 5–10 s of fault.
    fn default() -> Self {
        DefaultTiming {
            healthy: (Duration::from_secs(3), Duration::from_secs(8)),
            hold: (Duration::from_secs(5), Duration::from_secs(10)),
        }
    }
}

/// One fault at a time: an endless iterator of steps that alternate the
/// start and stop of a fault picked at random from the choices. It depends
/// only on the seed, the choices and the timing (never on what happens in
/// the run), so a seed reproduces the same plan.
#[derive(Debug, Clone)]
pub struct SerialSchedule {
    rng: StdRng,
    choices: Vec<FaultChoice>,
    timing: DefaultTiming,
    now: Duration,
    pending_stop: Option<FaultKind>,
}

impl SerialSchedule {
    pub fn new(seed: u64, choices: &[FaultChoice], timing: DefaultTiming) -> Self {
        SerialSchedule {
            rng: StdRng::seed_from_u64(seed),
            choices: distinct(choices),
            timing,
            now: Duration::ZERO,
            pending_stop: None,
        }
    }

    fn uniform(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        if hi <= lo {
            return lo;
        }
        Duration::from_millis(
            self.rng
                .gen_range(lo.as_millis() as u64..=hi.as_millis() as u64),
        )
    }
}

/// The choices without repeats, kinds in registry order (so the plan does
/// not depend on the order they were listed in).
fn distinct(choices: &[FaultChoice]) -> Vec<FaultChoice> {
    let mut out: Vec<FaultChoice> = Vec::new();
    for c in choices {
        if !out.contains(c) {
            out.push(*c);
        }
    }
    out.sort_by_key(|c| c.kind());
    out
}

impl Iterator for SerialSchedule {
    type Item = Step;
    fn next(&mut self) -> Option<Step> {
        if let Some(kind) = self.pending_stop.take() {
            let hold = self.uniform(self.timing.hold);
            self.now += hold;
            return Some(Step {
                at: self.now,
                action: Action::Stop(kind),
            });
        }
        if self.choices.is_empty() {
            return None;
        }
        let healthy = self.uniform(self.timing.healthy);
        self.now += healthy;
        let choice = self.choices[self.rng.gen_range(0..self.choices.len())];
        let fault = choice.pick(&mut self.rng);
        self.pending_stop = Some(fault.kind());
        Some(Step {
            at: self.now,
            action: Action::Start(fault),
        })
    }
}

/// The randomised default: one [`SerialSchedule`] per fault kind, each
/// with its own random stream, merged by time. Faults of different kinds
/// therefore overlap in every order (a clock skew while a partition is
/// cut, a membership change while the leader is isolated, ...), which is
/// what exposes bugs that need two things to go wrong at once; faults of
/// one kind still come one at a time. With a single kind it is exactly
/// that kind's serial schedule.
#[derive(Debug, Clone)]
pub struct ComposedSchedule {
    /// Each kind's timeline and its next step.
    lanes: Vec<(SerialSchedule, Option<Step>)>,
}

impl ComposedSchedule {
    pub fn new(seed: u64, choices: &[FaultChoice], timing: DefaultTiming) -> Self {
        let choices = distinct(choices);
        let mut kinds: Vec<FaultKind> = choices.iter().map(|c| c.kind()).collect();
        kinds.dedup();
        let lanes = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let mine: Vec<FaultChoice> = choices
                    .iter()
                    .copied()
                    .filter(|c| c.kind() == *kind)
                    .collect();
                // Lane 0 keeps the run's seed: a one-kind run has the plan
                // it had before schedules were composed.
                let lane_seed = seed.wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut lane = SerialSchedule::new(lane_seed, &mine, timing);
                let first = lane.next();
                (lane, first)
            })
            .collect();
        ComposedSchedule { lanes }
    }
}

impl Iterator for ComposedSchedule {
    type Item = Step;
    fn next(&mut self) -> Option<Step> {
        let (lane, next) = self
            .lanes
            .iter_mut()
            .filter(|(_, next)| next.is_some())
            .min_by_key(|(_, next)| next.map(|s| s.at))?;
        let step = next.take();
        *next = lane.next();
        step
    }
}

/// The `--schedule` word for [`Schedule::Serial`].
pub const SERIAL: &str = "serial";

/// Which schedule the nemesis follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// [`ComposedSchedule`] with this timing over the nemesis's choices.
    Default(DefaultTiming),
    /// [`SerialSchedule`]: one fault at a time, whatever its kind.
    Serial(DefaultTiming),
    /// Exactly these steps (from [`parse_schedule`]).
    Explicit(Vec<Step>),
    /// These steps, played again from the start every period.
    Repeating { steps: Vec<Step>, every: Duration },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Default(DefaultTiming::default())
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    /// `"default"`, `"serial"` or an explicit schedule.
    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        if s.trim() == "default" {
            Ok(Schedule::default())
        } else if s.trim() == SERIAL {
            Ok(Schedule::Serial(DefaultTiming::default()))
        } else {
            parse_explicit(s).map(|(steps, repeat)| match repeat {
                Some(every) => Schedule::Repeating { steps, every },
                None => Schedule::Explicit(steps),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;
    use crate::topology::Topology;

    #[test]
    fn parses_the_documented_example() {
        let steps = parse_schedule(
            "5:partition:halves,15:heal,20:kill:leader,28:restart,30:pause:minority,38:resume",
        )
        .unwrap();
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(
            steps,
            vec![
                Step {
                    at: secs(5),
                    action: Action::Start(Fault::Partition(Topology::Halves))
                },
                Step {
                    at: secs(15),
                    action: Action::Stop(FaultKind::Partition)
                },
                Step {
                    at: secs(20),
                    action: Action::Start(Fault::Kill(Target::Leader))
                },
                Step {
                    at: secs(28),
                    action: Action::Stop(FaultKind::Kill)
                },
                Step {
                    at: secs(30),
                    action: Action::Start(Fault::Pause(Target::Minority))
                },
                Step {
                    at: secs(38),
                    action: Action::Stop(FaultKind::Pause)
                },
            ]
        );
        let s = parse_schedule(" 0.5 : partition : majorities-ring , 2.25:heal ").unwrap();
        assert_eq!(s[0].at, Duration::from_millis(500));
        assert_eq!(s[1].at, Duration::from_millis(2250));
        assert_eq!("default".parse::<Schedule>().unwrap(), Schedule::default());
    }

    #[test]
    fn rejects_bad_items_naming_them() {
        let cases = [
            ("5:partition:diagonal", 1, "unknown topology"),
            ("5:heal,x:heal", 2, "not a number"),
            ("5:heal,-1:heal", 2, "non-negative"),
            ("5", 1, "missing action"),
            ("5:partition", 1, "needs a topology"),
            ("5:kill", 1, "needs a target"),
            ("5:heal:now", 1, "takes no argument"),
            ("5:explode", 1, "unknown action"),
            ("5:heal,,6:heal", 2, "empty item"),
            ("10:heal,5:heal", 2, "earlier than"),
            ("5:pause:most", 1, "unknown target"),
            ("5:kill:one:two", 1, "too many"),
        ];
        for (input, index, reason) in cases {
            let e = parse_schedule(input).unwrap_err();
            assert_eq!(e.index, index, "{input}: {e}");
            assert!(e.reason.contains(reason), "{input}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("#{index}")) && msg.contains(&e.item),
                "{msg}"
            );
        }
    }

    #[test]
    fn serial_schedule_is_deterministic_and_alternates() {
        let kinds = FaultKind::ALL.map(FaultChoice::from);
        let a: Vec<Step> = SerialSchedule::new(7, &kinds, DefaultTiming::default())
            .take(40)
            .collect();
        let b: Vec<Step> = SerialSchedule::new(7, &kinds, DefaultTiming::default())
            .take(40)
            .collect();
        let c: Vec<Step> = SerialSchedule::new(8, &kinds, DefaultTiming::default())
            .take(40)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for pair in a.chunks(2) {
            let Action::Start(f) = pair[0].action else {
                panic!("expected start: {pair:?}")
            };
            assert_eq!(pair[1].action, Action::Stop(f.kind()));
            let hold = pair[1].at - pair[0].at;
            assert!(hold >= Duration::from_secs(5) && hold <= Duration::from_secs(10));
        }
        for w in a.windows(2) {
            assert!(w[0].at < w[1].at);
        }
        for pair in a.chunks(2).collect::<Vec<_>>().windows(2) {
            let healthy = pair[1][0].at - pair[0][1].at;
            assert!(healthy >= Duration::from_secs(3) && healthy <= Duration::from_secs(8));
        }
        // Every kind shows up over 20 faults.
        for k in kinds {
            assert!(a
                .iter()
                .any(|s| matches!(s.action, Action::Start(f) if f.kind() == k.kind())));
        }
        let only_kill: Vec<Step> =
            SerialSchedule::new(1, &[FaultKind::Kill.into()], DefaultTiming::default())
                .take(10)
                .collect();
        assert!(only_kill.iter().all(|s| matches!(
            s.action,
            Action::Start(Fault::Kill(_)) | Action::Stop(FaultKind::Kill)
        )));
        assert_eq!(
            SerialSchedule::new(1, &[], DefaultTiming::default()).next(),
            None
        );
    }

    /// The composed default overlaps kinds in both orders, keeps each
    /// kind one fault at a time, and with one kind is that kind's serial
    /// schedule (so one-kind runs kept their plans).
    #[test]
    fn composed_schedule_overlaps_kinds_and_keeps_each_kind_serial() {
        let timing = DefaultTiming::default();
        let one = [FaultChoice::from(FaultKind::Kill)];
        let composed: Vec<Step> = ComposedSchedule::new(5, &one, timing).take(30).collect();
        let serial: Vec<Step> = SerialSchedule::new(5, &one, timing).take(30).collect();
        assert_eq!(composed, serial);

        let two = [
            FaultChoice::from(FaultKind::Clock),
            "partition:leader".parse().unwrap(),
        ];
        let a: Vec<Step> = ComposedSchedule::new(9, &two, timing).take(200).collect();
        let b: Vec<Step> = ComposedSchedule::new(9, &two, timing).take(200).collect();
        assert_eq!(a, b, "a seed reproduces its plan");
        for w in a.windows(2) {
            assert!(w[0].at <= w[1].at, "steps in time order");
        }
        let mut active: Vec<FaultKind> = Vec::new();
        let (mut clock_first, mut partition_first) = (0, 0);
        for s in &a {
            match s.action {
                Action::Start(f) => {
                    assert!(!active.contains(&f.kind()), "one fault per kind at a time");
                    if f.kind() == FaultKind::Partition {
                        assert_eq!(f, Fault::Partition(Topology::Leader), "pinned");
                        clock_first += active.contains(&FaultKind::Clock) as u32;
                    } else {
                        partition_first += active.contains(&FaultKind::Partition) as u32;
                    }
                    active.push(f.kind());
                }
                Action::Stop(k) => {
                    assert!(active.contains(&k), "stops only what runs");
                    active.retain(|a| *a != k);
                }
            }
        }
        assert!(
            clock_first > 3 && partition_first > 3,
            "overlaps in both orders: {clock_first} {partition_first}"
        );
        assert_eq!(ComposedSchedule::new(1, &[], timing).next(), None);
        assert_eq!("serial".parse::<Schedule>(), Ok(Schedule::Serial(timing)));
    }

    #[test]
    fn a_last_repeat_item_replays_the_steps() {
        let text = "1:partition:leader,2:heal,5:repeat";
        let Ok(Schedule::Repeating { steps, every }) = text.parse::<Schedule>() else {
            panic!("not repeating")
        };
        assert_eq!(every, Duration::from_secs(5));
        let times: Vec<u64> = repeating(steps, every)
            .take(6)
            .map(|s| s.at.as_secs())
            .collect();
        assert_eq!(times, [1, 2, 6, 7, 11, 12]);
        for (bad, reason) in [
            ("5:repeat,6:heal", "last item"),
            ("1:heal,9:heal,5:repeat", "span"),
            ("0:heal,0:repeat", "positive"),
            ("5:repeat", "items before"),
            ("1:heal,5:repeat:x", "no argument"),
        ] {
            let e = parse_explicit(bad).unwrap_err();
            assert!(e.reason.contains(reason), "{bad}: {e}");
        }
        assert!(parse_schedule(text)
            .unwrap_err()
            .reason
            .contains("not allowed"));
    }
}
