//! The DCF cluster configuration: the JSON array passed to `dcf_start`.
//!
//! ```json
//! [{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1711,"role":"LEADER"}, ...]
//! ```
//! Required fields: `stream_id` (1..63), `node_id` (1..255), `ip`, `port`,
//! `role` (LEADER, FOLLOWER, LOGGER, PASSIVE; case-insensitive). Optional:
//! `weight` (default 1, < 256), `group` (default 0), `priority` (default 0).
//! The configured LEADER only decides who campaigns first at start-up.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A node id, 1..=255 as in DCF.
pub type NodeId = u32;
/// A stream id, 1..=63 as in DCF.
pub type StreamId = u32;

/// DCF node roles. `PreCandidate` and `Candidate` are transient election
/// states and never appear in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Leader,
    Follower,
    /// Votes, stores the log and counts toward commit, but never campaigns
    /// and applies nothing.
    Logger,
    /// Receives and applies the log; never votes, counts or campaigns.
    Passive,
    PreCandidate,
    Candidate,
}

impl Role {
    /// The name DCF uses in its JSON (`"LEADER"`, `"PRE_CANDIDATE"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "LEADER",
            Role::Follower => "FOLLOWER",
            Role::Logger => "LOGGER",
            Role::Passive => "PASSIVE",
            Role::PreCandidate => "PRE_CANDIDATE",
            Role::Candidate => "CANDIDATE",
        }
    }

    /// Parses a configurable role, case-insensitively.
    pub fn parse_config_role(s: &str) -> Option<Role> {
        match s.to_ascii_uppercase().as_str() {
            "LEADER" => Some(Role::Leader),
            "FOLLOWER" => Some(Role::Follower),
            "LOGGER" => Some(Role::Logger),
            "PASSIVE" => Some(Role::Passive),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a member of a stream is allowed to do, derived from its configured role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberKind {
    /// LEADER or FOLLOWER in the config: votes, counts, may lead, applies.
    Voter,
    /// LOGGER: votes and counts, never leads, applies nothing.
    Logger,
    /// PASSIVE: only receives and applies.
    Passive,
}

impl MemberKind {
    /// True if the member's vote and match index count toward quorums.
    pub fn votes(self) -> bool {
        matches!(self, MemberKind::Voter | MemberKind::Logger)
    }
    /// True if the member may become leader.
    pub fn may_lead(self) -> bool {
        matches!(self, MemberKind::Voter)
    }
    /// True if the member applies committed entries to its state machine.
    pub fn applies(self) -> bool {
        matches!(self, MemberKind::Voter | MemberKind::Passive)
    }
    /// The role name this kind has in a config JSON.
    pub fn config_role(self) -> Role {
        match self {
            MemberKind::Voter => Role::Follower,
            MemberKind::Logger => Role::Logger,
            MemberKind::Passive => Role::Passive,
        }
    }
}

/// One member of one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: NodeId,
    pub ip: String,
    pub port: u16,
    pub kind: MemberKind,
    /// True if the config named this node LEADER (it campaigns first).
    pub initial_leader: bool,
    pub weight: u32,
    pub group: u32,
    pub priority: u64,
}

/// The members of one stream, in node-id order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMembers {
    pub members: Vec<Member>,
}

impl StreamMembers {
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.node_id == id)
    }
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.node_id)
    }
    /// Sum of the weights of voting members (FOLLOWER/LEADER and LOGGER).
    pub fn total_voter_weight(&self) -> u64 {
        self.members
            .iter()
            .filter(|m| m.kind.votes())
            .map(|m| m.weight as u64)
            .sum()
    }
    /// DCF's weighted quorum: floor(sum of voter weights / 2) + 1.
    pub fn quorum_weight(&self) -> u64 {
        self.total_voter_weight() / 2 + 1
    }
}

/// The whole parsed configuration: every stream and its members.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub streams: BTreeMap<StreamId, StreamMembers>,
}

/// Why a config JSON was rejected (DCF error 800, PARSE_CFG_STR).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config is not valid JSON: {0}")]
    Json(String),
    #[error("config must be a non-empty JSON array of node objects")]
    NotArray,
    #[error("config item {item}: {msg}")]
    Item { item: usize, msg: String },
    #[error("stream {stream} lists node {node} twice")]
    DuplicateNode { stream: StreamId, node: NodeId },
    #[error("node {node} does not appear in any stream of the config")]
    NodeNotInConfig { node: NodeId },
    #[error("stream {stream} has no voting member")]
    NoVoter { stream: StreamId },
    #[error("node {node} has address {a} in one stream and {b} in another")]
    AddressMismatch { node: NodeId, a: String, b: String },
}

#[derive(Deserialize)]
struct RawItem {
    stream_id: Option<serde_json::Value>,
    node_id: Option<serde_json::Value>,
    ip: Option<serde_json::Value>,
    port: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
    weight: Option<serde_json::Value>,
    group: Option<serde_json::Value>,
    priority: Option<serde_json::Value>,
}

fn as_uint(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl ClusterConfig {
    /// Parses and validates a DCF config JSON string.
    pub fn parse(json: &str) -> Result<ClusterConfig, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        let items = value.as_array().ok_or(ConfigError::NotArray)?;
        if items.is_empty() {
            return Err(ConfigError::NotArray);
        }
        let mut cfg = ClusterConfig::default();
        for (i, item) in items.iter().enumerate() {
            let err = |msg: &str| ConfigError::Item {
                item: i,
                msg: msg.to_string(),
            };
            let raw: RawItem =
                serde_json::from_value(item.clone()).map_err(|_| err("must be a JSON object"))?;
            let stream = raw
                .stream_id
                .as_ref()
                .and_then(as_uint)
                .ok_or_else(|| err("stream_id missing or not a number"))?;
            if !(1..64).contains(&stream) {
                return Err(err("stream_id must be in 1..63"));
            }
            let node = raw
                .node_id
                .as_ref()
                .and_then(as_uint)
                .ok_or_else(|| err("node_id missing or not a number"))?;
            if !(1..=255).contains(&node) {
                return Err(err("node_id must be in 1..255"));
            }
            let ip = raw
                .ip
                .as_ref()
                .and_then(|v| v.as_str())
                .ok_or_else(|| err("ip missing or not a string"))?
                .to_string();
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(err("ip is not an IP address"));
            }
            let port = raw
                .port
                .as_ref()
                .and_then(as_uint)
                .ok_or_else(|| err("port missing or not a number"))?;
            if !(1..=65535).contains(&port) {
                return Err(err("port must be in 1..65535"));
            }
            let role_s = raw
                .role
                .as_ref()
                .and_then(|v| v.as_str())
                .ok_or_else(|| err("role missing or not a string"))?;
            let role = Role::parse_config_role(role_s)
                .ok_or_else(|| err("role must be LEADER, FOLLOWER, LOGGER or PASSIVE"))?;
            let weight = match &raw.weight {
                None => 1,
                Some(v) => as_uint(v).ok_or_else(|| err("weight must be a number"))?,
            };
            if !(1..256).contains(&weight) {
                return Err(err("weight must be in 1..255"));
            }
            let group = match &raw.group {
                None => 0,
                Some(v) => as_uint(v).ok_or_else(|| err("group must be a number"))?,
            };
            if group > u32::MAX as u64 {
                return Err(err("group is too large"));
            }
            let priority = match &raw.priority {
                None => 0,
                Some(v) => as_uint(v).ok_or_else(|| err("priority must be a number"))?,
            };
            let kind = match role {
                Role::Leader | Role::Follower => MemberKind::Voter,
                Role::Logger => MemberKind::Logger,
                _ => MemberKind::Passive,
            };
            let members = cfg.streams.entry(stream as StreamId).or_default();
            if members.get(node as NodeId).is_some() {
                return Err(ConfigError::DuplicateNode {
                    stream: stream as StreamId,
                    node: node as NodeId,
                });
            }
            members.members.push(Member {
                node_id: node as NodeId,
                ip,
                port: port as u16,
                kind,
                initial_leader: role == Role::Leader,
                weight: weight as u32,
                group: group as u32,
                priority,
            });
        }
        let mut addrs: BTreeMap<NodeId, String> = BTreeMap::new();
        for (sid, members) in cfg.streams.iter_mut() {
            members.members.sort_by_key(|m| m.node_id);
            if !members.members.iter().any(|m| m.kind.votes()) {
                return Err(ConfigError::NoVoter { stream: *sid });
            }
            for m in &members.members {
                let a = format!("{}:{}", m.ip, m.port);
                if let Some(b) = addrs.get(&m.node_id) {
                    if *b != a {
                        return Err(ConfigError::AddressMismatch {
                            node: m.node_id,
                            a: b.clone(),
                            b: a,
                        });
                    }
                } else {
                    addrs.insert(m.node_id, a);
                }
            }
        }
        Ok(cfg)
    }

    /// Serialises back to DCF's JSON array format.
    pub fn to_json(&self) -> String {
        let mut items = Vec::new();
        for (sid, members) in &self.streams {
            for m in &members.members {
                items.push(member_json(*sid, m));
            }
        }
        serde_json::Value::Array(items).to_string()
    }

    /// Streams that `node` is a member of.
    pub fn streams_of(&self, node: NodeId) -> Vec<StreamId> {
        self.streams
            .iter()
            .filter(|(_, m)| m.get(node).is_some())
            .map(|(s, _)| *s)
            .collect()
    }

    /// The peer address (`ip:port`) of a node, from any stream it is in.
    pub fn address_of(&self, node: NodeId) -> Option<String> {
        self.streams
            .values()
            .find_map(|m| m.get(node))
            .map(|m| format!("{}:{}", m.ip, m.port))
    }
}

/// One member as a DCF config JSON object.
pub fn member_json(stream: StreamId, m: &Member) -> serde_json::Value {
    let role = if m.initial_leader {
        Role::Leader
    } else {
        m.kind.config_role()
    };
    serde_json::json!({
        "stream_id": stream,
        "node_id": m.node_id,
        "ip": m.ip,
        "port": m.port,
        "role": role.as_str(),
        "weight": m.weight,
        "group": m.group,
        "priority": m.priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_manual_example() {
        let cfg = ClusterConfig::parse(
            r#"[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1711,"role":"LEADER"},
                {"stream_id":1,"node_id":2,"ip":"127.0.0.1","port":1712,"role":"follower"},
                {"stream_id":1,"node_id":3,"ip":"127.0.0.1","port":1713,"role":"LOGGER","weight":2}]"#,
        )
        .unwrap();
        let s = &cfg.streams[&1];
        assert_eq!(s.members.len(), 3);
        assert!(s.get(1).unwrap().initial_leader);
        assert_eq!(s.get(3).unwrap().kind, MemberKind::Logger);
        assert_eq!(s.total_voter_weight(), 4);
        assert_eq!(s.quorum_weight(), 3);
        let again = ClusterConfig::parse(&cfg.to_json()).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn rejects_bad_configs_with_clear_errors() {
        assert!(matches!(
            ClusterConfig::parse("not json"),
            Err(ConfigError::Json(_))
        ));
        assert_eq!(ClusterConfig::parse("[]"), Err(ConfigError::NotArray));
        let e = ClusterConfig::parse(
            r#"[{"stream_id":1,"node_id":300,"ip":"127.0.0.1","port":1,"role":"LEADER"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
        let e = ClusterConfig::parse(
            r#"[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1,"role":"BOSS"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("role"), "{e}");
        let e = ClusterConfig::parse(
            r#"[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1,"role":"PASSIVE"}]"#,
        )
        .unwrap_err();
        assert_eq!(e, ConfigError::NoVoter { stream: 1 });
    }
}
