//! Minority mode on a local cluster: `set-work-mode` and `status` sent to
//! one node's client port (not to the leader: the work mode is local to
//! the node it is set on).

use super::members::admin;
use super::LocalDeployment;
use dcf::kv::protocol::{Outcome, RequestBody};
use nemesis::{FaultError, MemberAck, MemberReply, NodeId};
use serde_json::Value;
use std::time::Duration;

/// Bound on a work-mode switch (a candidate campaigns at once).
const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

fn endpoint(d: &LocalDeployment, node: NodeId) -> Result<String, FaultError> {
    d.lock()
        .nodes
        .iter()
        .find(|n| n.id == node)
        .map(|n| n.client_addr.to_string())
        .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))
}

/// Carries out [`nemesis::ClusterControl::set_work_mode`].
pub(super) fn set_work_mode(
    d: &LocalDeployment,
    node: NodeId,
    vote_num: Option<u64>,
) -> Result<MemberReply, FaultError> {
    let ep = endpoint(d, node)?;
    let body = RequestBody::SetWorkMode {
        mode: if vote_num.is_some() {
            "minority"
        } else {
            "normal"
        }
        .into(),
        vote_num,
    };
    let r = admin(vec![ep], body, SWITCH_TIMEOUT, false);
    let ack = match r.outcome {
        Outcome::Ok => MemberAck::Ok,
        Outcome::Fail => MemberAck::Fail,
        Outcome::Info => MemberAck::Info,
    };
    tracing::info!(node, ?vote_num, ?ack, error = ?r.error, "work mode set");
    Ok(MemberReply {
        ack,
        via: r.node,
        detail: r.error,
        member_after: None,
    })
}

/// Carries out [`nemesis::ClusterControl::node_status`].
pub(super) fn node_status(d: &LocalDeployment, node: NodeId) -> Option<Value> {
    let ep = endpoint(d, node).ok()?;
    super::status::statuses(&[(node, ep)], d.opts.status_timeout)
        .into_iter()
        .next()
        .and_then(|(_, v)| v)
}
