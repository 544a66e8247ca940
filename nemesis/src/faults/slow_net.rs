//! `slow-net`: delays, jitters or stalls the traffic on the target links
//! (a per-link userspace TCP proxy in the local deployment, since the
//! kernel here has no `netem`); `heal-slow-net` makes every link healthy.
//!
//! Argument: `TARGET[-SHAPE]`: a [`LinkTarget`] (`link`, `node`,
//! `leader`, `all`) and optionally `delay` (50–400 ms plus up to half of
//! it of jitter) or `stall` (nothing crosses); without a shape one is
//! drawn (a stall one time in four).

use super::{ActiveFaults, ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, ClusterControl, FaultError, Link, LinkDelay};
use crate::links::{self, LinkTarget};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Slow links.
pub struct SlowNet;

/// What a slow-net fault does to its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlowShape {
    Delay,
    Stall,
}

/// A slow-net fault's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlowArg {
    pub target: LinkTarget,
    /// `None`: drawn at start.
    pub shape: Option<SlowShape>,
}

pub(crate) fn links_json<T>(links: &BTreeMap<Link, T>, f: impl Fn(&T) -> Value) -> Value {
    Value::Object(
        links
            .iter()
            .map(|((a, b), v)| (format!("{a}->{b}"), f(v)))
            .collect(),
    )
}

/// The stop of a link fault: `undo` makes every link healthy through the
/// cluster and, if it did, the kind's links (`links` of the active faults)
/// are forgotten. The value names the links healed.
pub(crate) fn heal_links<T>(
    ctx: &FaultContext,
    links: impl Fn(&mut ActiveFaults) -> &mut BTreeMap<Link, T>,
    undo: impl FnOnce(&dyn ClusterControl) -> Result<(), FaultError>,
) -> Outcome {
    let mut st = ctx.state();
    let healed: Vec<String> = links(&mut st.active)
        .keys()
        .map(|(a, b)| format!("{a}->{b}"))
        .collect();
    let error = match undo(ctx.control()) {
        Ok(()) => {
            links(&mut st.active).clear();
            None
        }
        Err(e) => Some(e.to_string()),
    };
    Outcome {
        value: json!({ "healed": healed }),
        error,
    }
}

fn delay_json(d: &LinkDelay) -> Value {
    json!({ "delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms, "stalled": d.stalled })
}

/// The links of `target` now, and the leader if the target asked for it.
pub(crate) fn pick_links(
    ctx: &FaultContext,
    target: LinkTarget,
) -> (Vec<Link>, Option<Option<u32>>) {
    let control = ctx.control();
    let nodes = control.node_ids();
    let leader = (target == LinkTarget::Leader).then(|| control.leader());
    let mut st = ctx.state();
    let picked = links::select(target, &nodes, leader.flatten(), &mut st.rng);
    (picked, leader)
}

impl FaultType for SlowNet {
    type Arg = SlowArg;
    /// Every shaped link with its shape.
    type State = BTreeMap<Link, LinkDelay>;
    const NAME: &'static str = "slow-net";
    const ABOUT: &'static str =
        "delay, jitter or stall links between nodes (userspace TCP proxies, no netem needed)";
    const STOP_VERB: Option<&'static str> = Some("heal-slow-net");
    const ARG: Option<ArgGrammar> = Some(ArgGrammar {
        what: "links",
        example: "node-delay",
    });
    const NEEDS: &'static [Capability] = &[Capability::SlowNet];
    const HEAL_ORDER: u8 = 0;
    const STYLE: FaultStyle = FaultStyle {
        colour: (120, 160, 60),
        label: "slow net",
    };

    fn parse_arg(s: &str) -> Result<SlowArg, String> {
        let (t, shape) = match s.rsplit_once('-') {
            Some((t, "delay")) => (t, Some(SlowShape::Delay)),
            Some((t, "stall")) => (t, Some(SlowShape::Stall)),
            _ => (s, None),
        };
        Ok(SlowArg {
            target: t.parse()?,
            shape,
        })
    }
    fn arg_name(arg: SlowArg) -> String {
        match arg.shape {
            None => arg.target.name().to_string(),
            Some(SlowShape::Delay) => format!("{}-delay", arg.target),
            Some(SlowShape::Stall) => format!("{}-stall", arg.target),
        }
    }
    fn random_arg(rng: &mut StdRng) -> SlowArg {
        SlowArg {
            target: LinkTarget::ALL[rng.gen_range(0..LinkTarget::ALL.len())],
            shape: None,
        }
    }
    fn is_active(shaped: &BTreeMap<Link, LinkDelay>) -> bool {
        !shaped.is_empty()
    }

    fn start(ctx: &FaultContext, arg: SlowArg) -> Outcome {
        let (picked, leader) = pick_links(ctx, arg.target);
        let mut st = ctx.state();
        let shape = arg.shape.unwrap_or_else(|| {
            if st.rng.gen_ratio(1, 4) {
                SlowShape::Stall
            } else {
                SlowShape::Delay
            }
        });
        let delay = match shape {
            SlowShape::Stall => LinkDelay {
                stalled: true,
                ..LinkDelay::default()
            },
            SlowShape::Delay => {
                let d = st.rng.gen_range(50..=400);
                LinkDelay {
                    delay_ms: d,
                    jitter_ms: st.rng.gen_range(0..=d / 2),
                    stalled: false,
                }
            }
        };
        let mut shaped = st.active.slow_net.clone();
        for l in &picked {
            shaped.insert(*l, delay);
        }
        let all: Vec<(Link, LinkDelay)> = shaped.iter().map(|(l, d)| (*l, *d)).collect();
        let error = match ctx.control().shape_links(&all) {
            Ok(()) => {
                st.active.slow_net = shaped;
                None
            }
            Err(FaultError::Unsupported(why)) => {
                drop(st);
                ctx.mark_unsupported(&why);
                Some(FaultError::Unsupported(why).to_string())
            }
            Err(e) => {
                // Some links may be shaped: remember them so heal runs.
                st.active.slow_net = shaped;
                Some(e.to_string())
            }
        };
        let picked: BTreeMap<Link, LinkDelay> = picked.into_iter().map(|l| (l, delay)).collect();
        let mut value = json!({
            "links": SlowNet::arg_name(arg),
            "target": arg.target.name(),
            "shaped": links_json(&picked, delay_json),
        });
        if let Some(l) = leader {
            value["leader"] = json!(l);
        }
        Outcome { value, error }
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        heal_links(ctx, |a| &mut a.slow_net, |c| c.shape_links(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        for s in ["link", "node-delay", "all-stall", "leader"] {
            assert_eq!(SlowNet::arg_name(SlowNet::parse_arg(s).unwrap()), s);
        }
        assert!(SlowNet::parse_arg("wire-stall").is_err());
    }
}
