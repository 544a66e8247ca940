//! `lossy-net`: the kernel drops a random share of the packets on the
//! target links (iptables' `statistic` match in the local deployment);
//! `heal-lossy-net` removes the loss.
//!
//! Argument: `TARGET[-MAX%]`: a [`LinkTarget`] (`link`, `node`, `leader`,
//! `all`) and the largest loss probability (default 20%, at most 90%); each
//! start draws a probability between a quarter of it and it, so TCP still
//! gets through, slowly.

use super::slow_net::{heal_links, links_json, pick_links};
use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, Link};
use crate::links::LinkTarget;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;

/// Lossy links.
pub struct LossyNet;

/// A lossy-net fault's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LossyArg {
    pub target: LinkTarget,
    /// The largest loss probability, in percent.
    pub max_percent: u32,
}

const DEFAULT_MAX_PERCENT: u32 = 20;

impl FaultType for LossyNet {
    type Arg = LossyArg;
    /// Every lossy link with its loss probability in thousandths.
    type State = BTreeMap<Link, u32>;
    const NAME: &'static str = "lossy-net";
    const ABOUT: &'static str =
        "random packet loss between nodes (iptables statistic match in the namespaces)";
    const STOP_VERB: Option<&'static str> = Some("heal-lossy-net");
    const ARG: Option<ArgGrammar> = Some(ArgGrammar {
        what: "links",
        example: "all-20%",
    });
    const NEEDS: &'static [Capability] = &[Capability::LossyNet];
    const HEAL_ORDER: u8 = 0;
    const STYLE: FaultStyle = FaultStyle {
        colour: (220, 100, 160),
        label: "lossy net",
    };

    fn parse_arg(s: &str) -> Result<LossyArg, String> {
        let (t, max) = match s.rsplit_once('-') {
            Some((t, p)) if p.ends_with('%') => {
                let max: u32 = p
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("bad loss bound {p:?} (e.g. 20%)"))?;
                if !(1..=90).contains(&max) {
                    return Err(format!("loss bound {p:?} must be 1% to 90%"));
                }
                (t, max)
            }
            _ => (s, DEFAULT_MAX_PERCENT),
        };
        Ok(LossyArg {
            target: t.parse()?,
            max_percent: max,
        })
    }
    fn arg_name(arg: LossyArg) -> String {
        format!("{}-{}%", arg.target, arg.max_percent)
    }
    fn random_arg(rng: &mut StdRng) -> LossyArg {
        LossyArg {
            target: LinkTarget::ALL[rng.gen_range(0..LinkTarget::ALL.len())],
            max_percent: DEFAULT_MAX_PERCENT,
        }
    }
    fn is_active(lossy: &BTreeMap<Link, u32>) -> bool {
        !lossy.is_empty()
    }

    fn start(ctx: &FaultContext, arg: LossyArg) -> Outcome {
        let (picked, leader) = pick_links(ctx, arg.target);
        let mut st = ctx.state();
        let max = arg.max_percent * 10;
        let permille = st.rng.gen_range((max / 4).max(1)..=max);
        let mut lossy = st.active.lossy_net.clone();
        for l in &picked {
            lossy.insert(*l, permille);
        }
        let all: Vec<(Link, u32)> = lossy.iter().map(|(l, p)| (*l, *p)).collect();
        let error = match ctx.control().drop_packets(&all) {
            Ok(()) => {
                st.active.lossy_net = lossy;
                None
            }
            Err(FaultError::Unsupported(why)) => {
                drop(st);
                ctx.mark_unsupported(&why);
                Some(FaultError::Unsupported(why).to_string())
            }
            Err(e) => {
                st.active.lossy_net = lossy;
                Some(e.to_string())
            }
        };
        let picked: BTreeMap<Link, u32> = picked.into_iter().map(|l| (l, permille)).collect();
        let mut value = json!({
            "links": LossyNet::arg_name(arg),
            "target": arg.target.name(),
            "loss": links_json(&picked, |p| json!(*p as f64 / 1000.0)),
        });
        if let Some(l) = leader {
            value["leader"] = json!(l);
        }
        Outcome { value, error }
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        heal_links(ctx, |a| &mut a.lossy_net, |c| c.drop_packets(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_with_a_default_bound() {
        assert_eq!(LossyNet::parse_arg("all").unwrap().max_percent, 20);
        for s in ["link-5%", "node-90%", "leader-20%"] {
            assert_eq!(LossyNet::arg_name(LossyNet::parse_arg(s).unwrap()), s);
        }
        assert!(LossyNet::parse_arg("all-95%").is_err());
        assert!(LossyNet::parse_arg("all-x%").is_err());
    }
}
