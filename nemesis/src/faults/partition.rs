//! `partition`: kernel packet drops between nodes in one of the
//! [`Topology`] shapes; `heal` removes them.

use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, Grudge};
use crate::topology::{self, Topology};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// Network partitions.
pub struct Partition;

fn grudge_json(g: &Grudge) -> Value {
    let map: serde_json::Map<String, Value> = g
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.iter().collect::<Vec<_>>())))
        .collect();
    Value::Object(map)
}

impl FaultType for Partition {
    type Arg = Topology;
    /// The grudge in force.
    type State = Option<Grudge>;
    const NAME: &'static str = "partition";
    const ABOUT: &'static str = "network partitions: kernel packet drops between nodes";
    const STOP_VERB: Option<&'static str> = Some("heal");
    const ARG: Option<ArgGrammar> = Some(ArgGrammar {
        what: "topology",
        example: "halves",
    });
    const NEEDS: &'static [Capability] = &[Capability::Partition];
    /// First: processes come back to a whole network.
    const HEAL_ORDER: u8 = 0;
    const STYLE: FaultStyle = FaultStyle {
        colour: (70, 120, 200),
        label: "partition",
    };

    fn parse_arg(s: &str) -> Result<Topology, String> {
        s.parse()
    }
    fn arg_name(arg: Topology) -> String {
        arg.name().into()
    }
    fn random_arg(rng: &mut StdRng) -> Topology {
        Topology::ALL[rng.gen_range(0..Topology::ALL.len())]
    }
    fn is_active(grudge: &Option<Grudge>) -> bool {
        grudge.is_some()
    }

    fn start(ctx: &FaultContext, topology: Topology) -> Outcome {
        let control = ctx.control();
        let nodes = control.node_ids();
        let needs_leader = matches!(topology, Topology::Leader | Topology::LeaderMinority);
        let leader = needs_leader.then(|| control.leader()).flatten();
        let mut value = json!({ "topology": topology.name() });
        if needs_leader {
            value["leader"] = json!(leader);
            if leader.is_none() {
                value["note"] = json!("no leader known; a random node stood in");
            }
        }
        let mut st = ctx.state();
        let grudge = topology::grudge_for(topology, &nodes, leader, &mut st.rng);
        value["grudge"] = grudge_json(&grudge);
        let error = match control.partition(&grudge) {
            Ok(()) => {
                st.active.partition = Some(grudge);
                None
            }
            Err(FaultError::Unsupported(why)) => {
                drop(st);
                ctx.mark_unsupported(&why);
                Some(FaultError::Unsupported(why).to_string())
            }
            Err(e) => {
                // Some rules may be in place: remember it so heal runs.
                st.active.partition = Some(grudge);
                Some(e.to_string())
            }
        };
        Outcome { value, error }
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        let mut st = ctx.state();
        let error = match ctx.control().heal() {
            Ok(()) => {
                st.active.partition = None;
                None
            }
            Err(e) => Some(e.to_string()),
        };
        drop(st);
        Outcome {
            value: json!({ "healed": error.is_none() }),
            error,
        }
    }
}
