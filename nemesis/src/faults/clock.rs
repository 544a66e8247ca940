//! `clock`: skews the target nodes' clocks at run time (libfaketime in the
//! local deployment): `bump` jumps a clock forward or back, `strobe` makes
//! it flip between two offsets, `rate` makes it run faster or slower,
//! `slow` makes it run exactly `1/BOUND` as fast. `reset-clock` returns
//! every skewed clock to real time at once (a jump).
//!
//! A rate change keeps the clock continuous: the node's clock goes on
//! from where it was, only faster or slower (so `rate` is no jump).
//!
//! Argument: `MODE[-TARGET][-BOUND]`, e.g. `bump`, `bump-leader-5s`,
//! `rate-all-4x`, `slow-leader-10x`, `strobe-one-500ms`. `TARGET` is a
//! [`Target`] name (default `one`); `BOUND` is the largest jump or
//! strobe amplitude (`ms` or `s`) or the largest factor (`x`).

use super::kill::random_target;
use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, ClockSkew, FaultError, NodeId};
use crate::target::{self, Target};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

/// Clock skew.
pub struct Clock;

/// How a clock fault skews a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClockMode {
    /// Jump forward or back by up to the bound.
    Bump,
    /// Flip between no offset and one of up to the bound.
    Strobe,
    /// Run faster or slower, by a factor up to the bound.
    Rate,
    /// Run exactly `1/bound` as fast.
    Slow,
}

impl ClockMode {
    pub const ALL: [ClockMode; 4] = [
        ClockMode::Bump,
        ClockMode::Strobe,
        ClockMode::Rate,
        ClockMode::Slow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Bump => "bump",
            ClockMode::Strobe => "strobe",
            ClockMode::Rate => "rate",
            ClockMode::Slow => "slow",
        }
    }

    /// True when the bound is a factor (`x`), false when a time.
    fn is_factor(self) -> bool {
        matches!(self, ClockMode::Rate | ClockMode::Slow)
    }

    /// The bound when the argument gives none: 2 s, 1 s, 4x, 4x.
    fn default_bound(self) -> u32 {
        match self {
            ClockMode::Bump => 2000,
            ClockMode::Strobe => 1000,
            ClockMode::Rate | ClockMode::Slow => 4000,
        }
    }
}

/// A clock fault's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockArg {
    pub mode: ClockMode,
    pub target: Target,
    /// Milliseconds for `bump` and `strobe`; the factor in thousandths for
    /// `rate` and `slow` (4000 is 4x).
    pub bound: u32,
}

impl fmt::Display for ClockArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound = if self.mode.is_factor() {
            format!("{}x", self.bound as f64 / 1000.0)
        } else {
            format!("{}ms", self.bound)
        };
        write!(f, "{}-{}-{bound}", self.mode.name(), self.target.name())
    }
}

impl FromStr for ClockArg {
    type Err = String;
    fn from_str(s: &str) -> Result<ClockArg, String> {
        let mut parts = s.split('-');
        let mode_name = parts.next().unwrap_or_default();
        let mode = ClockMode::ALL
            .into_iter()
            .find(|m| m.name() == mode_name)
            .ok_or_else(|| {
                format!("unknown clock mode {mode_name:?} (expected bump, strobe, rate or slow)")
            })?;
        let mut arg = ClockArg {
            mode,
            target: Target::One,
            bound: mode.default_bound(),
        };
        for part in parts {
            if let Ok(t) = part.parse::<Target>() {
                arg.target = t;
            } else {
                arg.bound = parse_bound(mode, part)?;
            }
        }
        Ok(arg)
    }
}

/// `500ms`, `2s` (times) or `4x`, `2.5x` (factors above 1).
fn parse_bound(mode: ClockMode, s: &str) -> Result<u32, String> {
    let number = |n: &str| -> Result<f64, String> {
        n.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("bad clock bound {s:?}"))
    };
    let value = if mode.is_factor() {
        let f = number(s.strip_suffix('x').ok_or_else(|| {
            format!("a {} bound is a factor such as 4x, got {s:?}", mode.name())
        })?)?;
        if !(1.0..=1000.0).contains(&f) || f == 1.0 {
            return Err(format!(
                "a clock factor must be above 1 and at most 1000, got {s:?}"
            ));
        }
        f * 1000.0
    } else if let Some(ms) = s.strip_suffix("ms") {
        number(ms)?
    } else if let Some(secs) = s.strip_suffix('s') {
        number(secs)? * 1000.0
    } else {
        return Err(format!(
            "a {} bound is a time such as 500ms or 2s (or {s:?} is not a target)",
            mode.name()
        ));
    };
    if !(1.0..=3_600_000.0).contains(&value) {
        return Err(format!("clock bound {s:?} out of range"));
    }
    Ok(value.round() as u32)
}

/// A node's skew in force and when it was set (its offset moves with the
/// rate from then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skewed {
    pub skew: ClockSkew,
    pub since: Instant,
}

impl Skewed {
    /// How far ahead of real time the node's clock is now, in ms.
    fn offset_now(&self) -> i64 {
        let elapsed = self.since.elapsed().as_millis() as i64;
        self.skew.offset_ms + (self.skew.rate_milli as i64 - 1000) * elapsed / 1000
    }
}

fn skew_json(s: &ClockSkew) -> Value {
    let mut v = json!({
        "offset_ms": s.offset_ms,
        "rate": s.rate_milli as f64 / 1000.0,
    });
    if s.strobe_ms > 0 {
        v["strobe_ms"] = json!(s.strobe_ms);
    }
    v
}

/// The new skew of a node whose clock is `offset_now` ms ahead and runs at
/// `rate_now`, for `arg`.
fn new_skew(arg: ClockArg, offset_now: i64, rate_now: u32, rng: &mut StdRng) -> ClockSkew {
    let bound = arg.bound as i64;
    let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
    match arg.mode {
        ClockMode::Bump => ClockSkew {
            offset_ms: offset_now + sign * rng.gen_range((bound / 4).max(1)..=bound),
            rate_milli: rate_now,
            strobe_ms: 0,
        },
        ClockMode::Strobe => ClockSkew {
            offset_ms: sign * rng.gen_range((bound / 4).max(1)..=bound),
            rate_milli: 1000,
            strobe_ms: rng.gen_range(100..=500),
        },
        ClockMode::Rate => {
            let max = arg.bound as f64 / 1000.0;
            // Log-uniform, at least a quarter of the way to the bound.
            let factor = max.powf(rng.gen_range(0.25..=1.0)).powi(sign as i32);
            ClockSkew {
                offset_ms: offset_now,
                rate_milli: ((factor * 1000.0).round() as u32).max(1),
                strobe_ms: 0,
            }
        }
        ClockMode::Slow => ClockSkew {
            offset_ms: offset_now,
            rate_milli: ((1_000_000.0 / arg.bound as f64).round() as u32).max(1),
            strobe_ms: 0,
        },
    }
}

impl FaultType for Clock {
    type Arg = ClockArg;
    /// Every node whose clock is skewed, with its skew.
    type State = BTreeMap<NodeId, Skewed>;
    const NAME: &'static str = "clock";
    const ABOUT: &'static str =
        "clock skew per node (libfaketime): bump, strobe, rate or slow, reset to real time";
    const STOP_VERB: Option<&'static str> = Some("reset-clock");
    const ARG: Option<ArgGrammar> = Some(ArgGrammar {
        what: "clock",
        example: "bump-leader-2s",
    });
    const NEEDS: &'static [Capability] = &[Capability::Clock];
    /// With the network: clocks are real again before processes return.
    const HEAL_ORDER: u8 = 0;
    const STYLE: FaultStyle = FaultStyle {
        colour: (40, 170, 160),
        label: "clock",
    };

    fn parse_arg(s: &str) -> Result<ClockArg, String> {
        s.parse()
    }
    fn arg_name(arg: ClockArg) -> String {
        arg.to_string()
    }
    /// A random mode and target with the default bound.
    fn random_arg(rng: &mut StdRng) -> ClockArg {
        let mode = ClockMode::ALL[rng.gen_range(0..ClockMode::ALL.len())];
        ClockArg {
            mode,
            target: random_target(rng),
            bound: mode.default_bound(),
        }
    }
    fn is_active(skewed: &BTreeMap<NodeId, Skewed>) -> bool {
        !skewed.is_empty()
    }

    fn start(ctx: &FaultContext, arg: ClockArg) -> Outcome {
        let control = ctx.control();
        let nodes = control.node_ids();
        let leader = (arg.target == Target::Leader)
            .then(|| control.leader())
            .flatten();
        let mut st = ctx.state();
        let targets = target::select(arg.target, &nodes, leader, &mut st.rng);
        let mut clocks = serde_json::Map::new();
        let mut errors = Vec::new();
        let mut unsupported = None;
        for n in targets {
            let (offset_now, rate_now) = match st.active.clock.get(&n) {
                Some(s) if s.skew.strobe_ms == 0 => (s.offset_now(), s.skew.rate_milli),
                _ => (0, 1000),
            };
            let skew = new_skew(arg, offset_now, rate_now, &mut st.rng);
            match control.set_clock(n, skew) {
                Ok(()) => {
                    let since = Instant::now();
                    st.active.clock.insert(n, Skewed { skew, since });
                    clocks.insert(n.to_string(), skew_json(&skew));
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
            ctx.mark_unsupported(&why);
        }
        let mut value = json!({
            "clock": arg.to_string(),
            "mode": arg.mode.name(),
            "target": arg.target.name(),
            "clocks": clocks,
        });
        if arg.target == Target::Leader {
            value["leader"] = json!(leader);
        }
        Outcome::new(value, &errors)
    }

    /// Every skewed clock back to real time at once (a jump by however far
    /// it had drifted); the value gives the skew each had been set to.
    fn stop(ctx: &FaultContext) -> Outcome {
        let mut st = ctx.state();
        let skewed: Vec<(NodeId, Skewed)> = st.active.clock.iter().map(|(n, s)| (*n, *s)).collect();
        let mut reset = serde_json::Map::new();
        let mut errors = Vec::new();
        for (n, s) in skewed {
            match ctx.control().set_clock(n, ClockSkew::NONE) {
                Ok(()) => {
                    st.active.clock.remove(&n);
                    let mut v = skew_json(&ClockSkew::NONE);
                    v["was"] = skew_json(&s.skew);
                    reset.insert(n.to_string(), v);
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        drop(st);
        Outcome::new(json!({ "clocks": reset }), &errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn arguments_parse_with_defaults_and_round_trip() {
        let a: ClockArg = "bump".parse().unwrap();
        assert_eq!(
            (a.mode, a.target, a.bound),
            (ClockMode::Bump, Target::One, 2000)
        );
        let a: ClockArg = "slow-leader-10x".parse().unwrap();
        assert_eq!(
            (a.mode, a.target, a.bound),
            (ClockMode::Slow, Target::Leader, 10_000)
        );
        let a: ClockArg = "strobe-all-1.5s".parse().unwrap();
        assert_eq!(a.bound, 1500);
        for s in [
            "rate-majority-2.5x",
            "bump-leader-500ms",
            "strobe-one-1000ms",
        ] {
            let a: ClockArg = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert!("warp".parse::<ClockArg>().unwrap_err().contains("\"warp\""));
        assert!("rate-2s"
            .parse::<ClockArg>()
            .unwrap_err()
            .contains("factor"));
        assert!("bump-4x".parse::<ClockArg>().unwrap_err().contains("time"));
        assert!("slow-1x".parse::<ClockArg>().is_err());
    }

    #[test]
    fn skews_stay_within_their_bounds_and_rates_are_continuous() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let bump = new_skew("bump-one-2s".parse().unwrap(), 300, 1500, &mut rng);
            let jump = bump.offset_ms - 300;
            assert!((500..=2000).contains(&jump.abs()), "{jump}");
            assert_eq!(bump.rate_milli, 1500, "a bump keeps the rate");
            let rate = new_skew("rate-one-4x".parse().unwrap(), 300, 1000, &mut rng);
            assert_eq!(rate.offset_ms, 300, "a rate change does not jump");
            assert!((250..=4000).contains(&rate.rate_milli) && rate.rate_milli != 1000);
            let strobe = new_skew("strobe-one-1s".parse().unwrap(), 0, 1000, &mut rng);
            assert!(strobe.strobe_ms >= 100 && strobe.offset_ms.abs() <= 1000);
        }
        let slow = new_skew("slow-one-5x".parse().unwrap(), -20, 1000, &mut rng);
        assert_eq!((slow.offset_ms, slow.rate_milli), (-20, 200));
    }

    #[test]
    fn offsets_move_with_the_rate() {
        let s = Skewed {
            skew: ClockSkew {
                offset_ms: 100,
                rate_milli: 500,
                strobe_ms: 0,
            },
            since: Instant::now() - std::time::Duration::from_secs(2),
        };
        let off = s.offset_now();
        assert!((-910..=-890).contains(&off), "{off}");
    }
}
