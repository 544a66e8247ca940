//! DCF's query JSON (`dcf_query_stream_info`, `dcf_query_cluster_info`,
//! `dcf_query_leader_info`) with DCF's field names.

use crate::core::{ClusterConfig, NodeId, Role, StreamId, StreamStatus, WorkMode};
use crate::params::Params;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn run_mode_name(v: u64) -> &'static str {
    match v {
        1 => "MANUAL",
        2 => "DISABLE",
        _ => "AUTO",
    }
}

/// Stream info of one stream, as DCF's `dcf_query_stream_info` returns it.
pub fn stream_info(s: &StreamStatus, config: &ClusterConfig, params: &Params) -> Value {
    let me = s.members.get(s.node_id);
    let leader = s.leader_id.and_then(|id| s.members.get(id));
    let nodes: Vec<Value> = s
        .members
        .members
        .iter()
        .map(|m| {
            let role = if Some(m.node_id) == s.leader_id {
                Role::Leader
            } else {
                m.kind.config_role()
            };
            let mut n = json!({
                "node_id": m.node_id,
                "ip": m.ip,
                "port": m.port,
                "role": role.as_str(),
                "weight": m.weight,
                "group": m.group,
                "priority": m.priority,
            });
            if s.role == Role::Leader {
                if let Some(p) = s.peers.get(&m.node_id) {
                    n["next_index"] = json!(p.next_index);
                    n["match_index"] = json!(p.match_index);
                    n["apply_index"] = json!(p.apply_index);
                } else if m.node_id == s.node_id {
                    n["next_index"] = json!(s.last_index + 1);
                    n["match_index"] = json!(s.durable_index);
                    n["apply_index"] = json!(s.applied_index);
                }
            }
            n
        })
        .collect();
    let (work_mode, vote_num) = match s.work_mode {
        WorkMode::Normal => ("NORMAL", Value::Null),
        WorkMode::Minority { vote_num } => ("MINORITY", json!(vote_num)),
    };
    let _ = config;
    json!({
        "stream_id": s.stream_id,
        "local_node_id": s.node_id,
        "role": s.role.as_str(),
        "term": s.term,
        "run_mode": run_mode_name(params.get_u64("RUN_MODE")),
        "work_mode": work_mode,
        "vote_num": vote_num,
        "hb_interval": params.get_u64("HEARTBEAT_INTERVAL"),
        "elc_timeout": params.get_u64("ELECTION_TIMEOUT"),
        "auto_elc_pri_en": params.get_u64("AUTO_ELC_PRIORITY_EN"),
        "elc_switch_thd": params.get_u64("ELECTION_SWITCH_THRESHOLD"),
        "group": me.map(|m| m.group).unwrap_or(0),
        "priority": me.map(|m| m.priority).unwrap_or(0),
        "leader_group": leader.map(|m| m.group),
        "is_in_major": s.leader_id.is_some(),
        "applied_index": s.applied_index,
        "commit_index": s.commit_index,
        "first_index": s.first_index,
        "last_index": s.last_index,
        "disk_index": s.durable_index,
        "cluster_min_apply_idx": s.cluster_min_applied,
        "leader_id": s.leader_id,
        "leader_ip": leader.map(|m| m.ip.clone()),
        "leader_port": leader.map(|m| m.port),
        "nodes": nodes,
        // Flow control (not in DCF's JSON; extra fields for `dcfctl status`):
        // the send-pacing value (gap of value × 100 µs between appends to a
        // peer, 0 = off) and the entries-per-message factor for PASSIVE peers.
        "mec_batch_size": params.get_u64("MEC_BATCH_SIZE"),
        "flow_control_value": s.pacing_value,
        "passive_batch_factor": s.passive_batch_factor,
    })
}

/// Cluster info: every stream of this node.
pub fn cluster_info(
    node_id: NodeId,
    streams: &BTreeMap<StreamId, StreamStatus>,
    config: &ClusterConfig,
    params: &Params,
) -> Value {
    let list: Vec<Value> = streams
        .values()
        .map(|s| stream_info(s, config, params))
        .collect();
    json!({ "local_node_id": node_id, "stream_list": list })
}

/// Leader info of one stream.
pub fn leader_info(s: &StreamStatus, _config: &ClusterConfig) -> Value {
    let leader = s.leader_id.and_then(|id| s.members.get(id));
    json!({
        "stream_id": s.stream_id,
        "leader_id": s.leader_id,
        "leader_ip": leader.map(|m| m.ip.clone()),
        "leader_port": leader.map(|m| m.port),
        "term": s.term,
    })
}
