//! `power-loss`: SIGKILL the target nodes and cut their power, so each
//! loses every write it had not made durable (file data not fsynced,
//! renames and new names not fsynced in their directory); `power-on`
//! starts them again.
//!
//! The nodes stay down until `power-on` (as `kill` stays down until
//! `restart`), so a power cut of a majority also costs the cluster its
//! quorum for a while. The targets lose power at one instant, as in a
//! rack-wide outage: their disks stop persisting before any is killed. Losing unsynced data on a minority cannot lose an
//! acknowledged write even on a node that acknowledges early (a majority
//! still holds it), which is why the default schedule draws its target
//! from every [`Target`], majority and all included.

use super::kill::{random_target, TARGET};
use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, NodeId};
use crate::target::Target;
use rand::rngs::StdRng;
use serde_json::json;
use std::collections::BTreeSet;

/// Power cuts of nodes whose data directory keeps unsynced writes apart.
pub struct PowerLoss;

impl FaultType for PowerLoss {
    type Arg = Target;
    type State = BTreeSet<NodeId>;
    const NAME: &'static str = "power-loss";
    const ABOUT: &'static str =
        "SIGKILL nodes and drop every write they had not fsynced, then power them on (needs FUSE)";
    const STOP_VERB: Option<&'static str> = Some("power-on");
    const ARG: Option<ArgGrammar> = Some(TARGET);
    const NEEDS: &'static [Capability] = &[Capability::PowerCut, Capability::Start];
    /// With the other processes: nodes come back to a whole network.
    const HEAL_ORDER: u8 = 2;
    const STYLE: FaultStyle = FaultStyle {
        colour: (120, 40, 140),
        label: "power loss",
    };

    fn parse_arg(s: &str) -> Result<Target, String> {
        s.parse()
    }
    fn arg_name(arg: Target) -> String {
        arg.name().into()
    }
    fn random_arg(rng: &mut StdRng) -> Target {
        random_target(rng)
    }
    fn is_active(down: &BTreeSet<NodeId>) -> bool {
        !down.is_empty()
    }

    /// Cuts the power of every target at one instant; records what each
    /// lost.
    fn start(ctx: &FaultContext, target: Target) -> Outcome {
        let control = ctx.control();
        let super::process::Selection {
            leader,
            targets,
            already_down,
        } = super::process::select_free(control, target, &mut ctx.state());
        let result = control.power_cut(&targets);
        if let Err(FaultError::Unsupported(why)) = &result {
            ctx.mark_unsupported(why);
        }
        // The targets may be down even if the cut failed half-way: power-on
        // (or heal) starts them again in any case.
        {
            let mut st = ctx.state();
            for &n in &targets {
                st.active.power_lost.insert(n);
                st.active.paused.remove(&n);
            }
        }
        let mut value = json!({ "target": target.name(), "targets": targets });
        if target == Target::Leader {
            value["leader"] = json!(leader);
        }
        if !already_down.is_empty() {
            value["already_down"] = json!(already_down);
        }
        let errors = match result {
            Ok(lost) => {
                value["lost"] = lost;
                Vec::new()
            }
            Err(e) => vec![e.to_string()],
        };
        Outcome::new(value, &errors)
    }

    /// Starts every node whose power was cut.
    fn stop(ctx: &FaultContext) -> Outcome {
        super::process::stop(
            ctx,
            |active| active.power_lost.iter().copied().collect(),
            |c, n| c.start(n),
            |active, n| {
                active.power_lost.remove(&n);
            },
        )
    }
}
