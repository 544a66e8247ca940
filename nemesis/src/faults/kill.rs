//! `kill`: SIGKILL the target nodes' processes; `restart` starts them
//! again.

use super::{process, ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, NodeId};
use crate::target::Target;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeSet;

/// Process kills.
pub struct Kill;

/// The `TARGET` argument of the process faults.
pub(crate) const TARGET: ArgGrammar = ArgGrammar {
    what: "target",
    example: "one",
};

/// The default schedule's choice of target.
pub(crate) fn random_target(rng: &mut StdRng) -> Target {
    Target::ALL[rng.gen_range(0..Target::ALL.len())]
}

impl FaultType for Kill {
    type Arg = Target;
    type State = BTreeSet<NodeId>;
    const NAME: &'static str = "kill";
    const ABOUT: &'static str = "SIGKILL nodes, then restart them";
    const STOP_VERB: Option<&'static str> = Some("restart");
    const ARG: Option<ArgGrammar> = Some(TARGET);
    const NEEDS: &'static [Capability] = &[Capability::Kill, Capability::Start];
    /// Last: restarted nodes come back to a whole network.
    const HEAL_ORDER: u8 = 2;
    const STYLE: FaultStyle = FaultStyle {
        colour: (200, 60, 60),
        label: "kill",
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
    fn is_active(killed: &BTreeSet<NodeId>) -> bool {
        !killed.is_empty()
    }

    fn start(ctx: &FaultContext, target: Target) -> Outcome {
        process::start(
            ctx,
            target,
            |c, n| c.kill(n),
            |active, n| {
                active.killed.insert(n);
                // A killed process is no longer paused.
                active.paused.remove(&n);
            },
        )
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        process::stop(
            ctx,
            |active| active.killed.iter().copied().collect(),
            |c, n| c.start(n),
            |active, n| {
                active.killed.remove(&n);
            },
        )
    }
}
