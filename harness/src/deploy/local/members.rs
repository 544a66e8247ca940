//! Membership changes on a local cluster: the request goes to the leader
//! through the client port's admin API; the deployment starts an added
//! node before the request (with the members' config plus itself and a
//! fresh data directory) and stops a removed one after it, so its list of
//! members follows what the cluster acknowledged.

use super::{config_json, LocalDeployment};
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody, Response};
use nemesis::{FaultError, MemberAck, MemberChange, MemberReply, NodeId};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long the leader may take over a change (an added node catches up
/// first).
const CHANGE_WAIT: Duration = Duration::from_secs(5);

/// How long a removed node keeps running before it is stopped, as a
/// decommissioned server would: a removal committed without a quorum of
/// the old configuration shows as two leaders within that time.
const DECOMMISSION_AFTER: Duration = Duration::from_secs(5);

/// Sends one admin request to whichever of `endpoints` leads (to the
/// first that answers without `follow_leader`), from a fresh thread with
/// its own runtime (the nemesis thread has none).
pub(super) fn admin(
    endpoints: Vec<String>,
    body: RequestBody,
    timeout: Duration,
    follow_leader: bool,
) -> Response {
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(rt.block_on(async move {
            let mut client = KvClient::new(endpoints, timeout);
            client.call(body, follow_leader).await
        }))
    });
    match worker.join() {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Response::info(0, dcf::kv::protocol::FailureCode::Internal, e),
        Err(_) => Response::info(
            0,
            dcf::kv::protocol::FailureCode::Internal,
            "admin request panicked",
        ),
    }
}

/// The members the leader (the highest-term node saying so) lists, once
/// one answers within `within`.
fn leader_members(d: &LocalDeployment, within: Duration) -> Option<Vec<NodeId>> {
    let deadline = Instant::now() + within;
    loop {
        let best = super::status::statuses(&d.endpoints(), d.opts.status_timeout)
            .into_iter()
            .filter_map(|(_, v)| v)
            .filter(|v| v["role"] == "LEADER")
            .max_by_key(|v| v["term"].as_u64().unwrap_or(0));
        if let Some(v) = best {
            let ids = v["nodes"]
                .as_array()?
                .iter()
                .filter_map(|n| n["node_id"].as_u64().map(|i| i as NodeId))
                .collect();
            return Some(ids);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ack_of(r: &Response) -> MemberAck {
    match r.outcome {
        Outcome::Ok => MemberAck::Ok,
        Outcome::Fail => MemberAck::Fail,
        Outcome::Info => MemberAck::Info,
    }
}

/// Carries out `change` (see [`nemesis::ClusterControl::change_members`]).
pub(super) fn change(d: &LocalDeployment, change: MemberChange) -> Result<MemberReply, FaultError> {
    if let crate::deploy::System::Etcd(_) = d.spec.system {
        return super::etcd_members::change(d, change);
    }
    let node = change.node();
    let wait_ms = CHANGE_WAIT.as_millis() as u64;
    let spec = d
        .lock()
        .nodes
        .iter()
        .find(|n| n.id == node)
        .cloned()
        .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))?;
    let body = match change {
        MemberChange::Add { .. } => {
            start_spare(d, node)?;
            RequestBody::MemberAdd {
                node_id: node,
                ip: spec.peer_addr.ip().to_string(),
                port: spec.peer_addr.port(),
                role: "FOLLOWER".into(),
                wait_ms,
            }
        }
        MemberChange::Remove { .. } => RequestBody::MemberRemove {
            node_id: node,
            wait_ms,
        },
        MemberChange::Role { passive, .. } => RequestBody::MemberRole {
            node_id: node,
            role: if passive { "PASSIVE" } else { "FOLLOWER" }.into(),
            wait_ms,
        },
        MemberChange::Promote { .. } => RequestBody::Promote {
            node_id: node,
            timeout_ms: wait_ms,
        },
        MemberChange::Priority { priority, .. } => RequestBody::SetPriority {
            node_id: node,
            priority,
            wait_ms,
        },
    };
    let endpoints = d.endpoints().into_iter().map(|(_, ep)| ep).collect();
    let r = admin(endpoints, body, CHANGE_WAIT + Duration::from_secs(3), true);
    let mut reply = MemberReply {
        ack: ack_of(&r),
        via: r.node,
        detail: r.error.clone().or_else(|| match &r.value {
            Value::Null => None,
            v => Some(v.to_string()),
        }),
        member_after: None,
    };
    tracing::info!(?change, ?reply, "membership change answered");
    match change {
        MemberChange::Add { .. } => {
            let member = match reply.ack {
                MemberAck::Ok => true,
                MemberAck::Fail => false,
                MemberAck::Info => {
                    let m = leader_members(d, Duration::from_secs(5))
                        .is_some_and(|ids| ids.contains(&node));
                    reply.member_after = Some(m);
                    m
                }
            };
            if member {
                d.lock().members.insert(node);
            } else {
                retire(d, node, reply.ack == MemberAck::Fail);
            }
        }
        MemberChange::Remove { .. } => {
            let removed = match reply.ack {
                MemberAck::Ok => true,
                MemberAck::Fail => false,
                MemberAck::Info => {
                    let gone = leader_members(d, Duration::from_secs(5))
                        .is_some_and(|ids| !ids.contains(&node));
                    reply.member_after = Some(!gone);
                    gone
                }
            };
            if removed {
                decommission_later(d, node);
            }
        }
        _ => {}
    }
    Ok(reply)
}

/// Takes the removed `node` out of the members; it is stopped after
/// [`DECOMMISSION_AFTER`].
pub(super) fn decommission_later(d: &LocalDeployment, node: NodeId) {
    let mut inner = d.lock();
    inner.members.remove(&node);
    inner
        .decommission
        .push((node, Instant::now() + DECOMMISSION_AFTER));
}

/// Stops the removed nodes whose time has come. Called by every fault
/// action on the deployment, so a removed node runs until the first
/// action after [`DECOMMISSION_AFTER`] (or teardown).
pub(super) fn decommission_due(d: &LocalDeployment) {
    let now = Instant::now();
    let due: Vec<NodeId> = {
        let mut inner = d.lock();
        let (due, later): (Vec<_>, Vec<_>) =
            inner.decommission.iter().partition(|(_, at)| *at <= now);
        inner.decommission = later;
        due.into_iter().map(|(n, _)| n).collect()
    };
    for node in due {
        tracing::info!(node, "stopping a removed node");
        retire(d, node, false);
    }
}

/// Starts spare `node` with the current members' config plus itself.
fn start_spare(d: &LocalDeployment, node: NodeId) -> Result<(), FaultError> {
    let mut inner = d.lock();
    if !inner.spares.remove(&node) {
        return Err(FaultError::Failed(format!("node {node} is not a spare")));
    }
    let mut listed: Vec<_> = inner
        .nodes
        .iter()
        .filter(|n| inner.members.contains(&n.id) || n.id == node)
        .cloned()
        .collect();
    listed.sort_by_key(|n| n.id);
    let config = config_json(&listed);
    inner.configs.insert(node, config);
    d.start_locked(&mut inner, node)
        .map(|_| ())
        .map_err(|e| FaultError::Failed(format!("cannot start spare node {node}: {e}")))
}

/// Stops `node` and takes it out of the members. With `reusable` (an add
/// the cluster certainly refused) its data directory is wiped and it is a
/// spare again.
pub(super) fn retire(d: &LocalDeployment, node: NodeId, reusable: bool) {
    let mut inner = d.lock();
    inner.members.remove(&node);
    let grace = d.opts.stop_grace;
    if let Some(pid) = inner.procs.get_mut(&node).and_then(|p| p.stop(grace)) {
        inner.registry.remove_pid(pid);
    }
    if reusable {
        if let Some(spec) = inner.nodes.iter().find(|n| n.id == node) {
            let data = spec.data_dir();
            match std::fs::remove_dir_all(&data) {
                Ok(()) => {
                    inner.spares.insert(node);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    inner.spares.insert(node);
                }
                Err(e) => tracing::warn!(node, error = %e, "cannot wipe a refused node's data"),
            }
        }
    }
}
