//! Membership changes as the nemesis asks for them and as the cluster
//! answers: what [`ClusterControl::change_members`](crate::ClusterControl::change_members)
//! takes and returns.

use crate::control::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One change, sent to the leader through the node's admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Start the spare node `node` with a fresh data directory, then add it
    /// as a FOLLOWER.
    Add { node: NodeId },
    /// Remove `node`; once the cluster acknowledged it, stop its process.
    Remove { node: NodeId },
    /// Make `node` PASSIVE (`passive`) or a FOLLOWER again.
    Role { node: NodeId, passive: bool },
    /// Hand leadership to `node`.
    Promote { node: NodeId },
    /// Set `node`'s election priority.
    Priority { node: NodeId, priority: u64 },
}

impl MemberChange {
    /// The node the change is about.
    pub fn node(self) -> NodeId {
        match self {
            MemberChange::Add { node }
            | MemberChange::Remove { node }
            | MemberChange::Role { node, .. }
            | MemberChange::Promote { node }
            | MemberChange::Priority { node, .. } => node,
        }
    }

    /// The change as recorded in the history.
    pub fn describe(self) -> Value {
        match self {
            MemberChange::Add { node } => json!({"change": "add", "node": node}),
            MemberChange::Remove { node } => json!({"change": "remove", "node": node}),
            MemberChange::Role { node, passive } => json!({
                "change": "role",
                "node": node,
                "role": if passive { "PASSIVE" } else { "FOLLOWER" },
            }),
            MemberChange::Promote { node } => json!({"change": "promote", "node": node}),
            MemberChange::Priority { node, priority } => {
                json!({"change": "priority", "node": node, "priority": priority})
            }
        }
    }
}

/// Whether the cluster acknowledged a change, as for a client write:
/// done, certainly not done, or unknown (it may still take effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberAck {
    Ok,
    Fail,
    Info,
}

/// The cluster's answer to a [`MemberChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReply {
    pub ack: MemberAck,
    /// The node that answered, if one did.
    pub via: Option<NodeId>,
    /// The node's error or a note, e.g. `not ready`.
    pub detail: Option<String>,
    /// For an unknown (`info`) add or remove: whether the node turned out
    /// to be a member when the deployment looked afterwards.
    pub member_after: Option<bool>,
}

impl MemberReply {
    /// The answer's fields as recorded in the history.
    pub fn describe(&self) -> Value {
        let mut v = json!({ "ack": self.ack });
        if let Some(n) = self.via {
            v["via"] = json!(n);
        }
        if let Some(d) = &self.detail {
            v["detail"] = json!(d);
        }
        if let Some(m) = self.member_after {
            v["member_after"] = json!(m);
        }
        v
    }
}
