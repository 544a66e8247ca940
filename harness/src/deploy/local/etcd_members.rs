//! Membership changes on a local etcd cluster, through etcd's member API:
//! an added member is announced first (`member add` with its peer URL)
//! and only then started, with the members' initial cluster plus itself
//! and `--initial-cluster-state existing`, as etcd requires; a removed
//! member is removed by its member id and stopped a little later, as a
//! decommissioned server would be (etcd also stops it itself once it
//! learns it was removed).

use super::members::{decommission_later, retire};
use super::LocalDeployment;
use crate::deploy::etcd::{self, on_any_member};
use nemesis::{FaultError, MemberAck, MemberChange, MemberReply, NodeId};
use std::time::Duration;
use workloads::etcd::{Certainty, EtcdError, MemberInfo};

/// How long a change may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

fn ack_of(r: &Result<(), EtcdError>) -> MemberAck {
    match r {
        Ok(()) => MemberAck::Ok,
        Err(e) if e.certainty == Certainty::NotApplied => MemberAck::Fail,
        Err(_) => MemberAck::Info,
    }
}

/// The cluster's member list, asked of any member.
fn member_list(d: &LocalDeployment) -> Option<Vec<MemberInfo>> {
    on_any_member(member_endpoints(d), CHANGE_TIMEOUT, |mut c| async move {
        c.member_list().await
    })
    .ok()
}

fn member_endpoints(d: &LocalDeployment) -> Vec<String> {
    d.endpoints().into_iter().map(|(_, ep)| ep).collect()
}

/// Carries out `change` on etcd (see [`nemesis::ClusterControl::change_members`]).
pub(super) fn change(d: &LocalDeployment, change: MemberChange) -> Result<MemberReply, FaultError> {
    let node = change.node();
    let spec = d
        .lock()
        .nodes
        .iter()
        .find(|n| n.id == node)
        .cloned()
        .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))?;
    let peer = etcd::peer_url(&spec);
    let (result, member_after) = match change {
        MemberChange::Add { .. } => {
            if !d.lock().spares.remove(&node) {
                return Err(FaultError::Failed(format!("node {node} is not a spare")));
            }
            let url = peer.clone();
            let r = on_any_member(
                member_endpoints(d),
                CHANGE_TIMEOUT,
                move |mut c| async move { c.member_add(&url).await.map(|_| ()) },
            );
            let member = match ack_of(&r) {
                MemberAck::Ok => true,
                MemberAck::Fail => false,
                MemberAck::Info => {
                    member_list(d).is_some_and(|ms| ms.iter().any(|m| m.peer_urls.contains(&peer)))
                }
            };
            if member {
                start_added(d, node)?;
            } else {
                // Never announced: the slot can be used again.
                retire(d, node, ack_of(&r) == MemberAck::Fail);
            }
            let after = (ack_of(&r) == MemberAck::Info).then_some(member);
            (r, after)
        }
        MemberChange::Remove { .. } => {
            let name = etcd::member_name(node);
            let Some(id) = member_list(d).and_then(|ms| {
                ms.into_iter()
                    .find(|m| m.name == name || m.peer_urls.contains(&peer))
                    .map(|m| m.id)
            }) else {
                let reply = MemberReply {
                    ack: MemberAck::Fail,
                    via: None,
                    detail: Some(format!(
                        "{name} is not in the member list (or none answered)"
                    )),
                    member_after: None,
                };
                return Ok(reply);
            };
            let r = on_any_member(
                member_endpoints(d),
                CHANGE_TIMEOUT,
                move |mut c| async move { c.member_remove(id).await },
            );
            let removed = match ack_of(&r) {
                MemberAck::Ok => true,
                MemberAck::Fail => false,
                MemberAck::Info => member_list(d).is_some_and(|ms| !ms.iter().any(|m| m.id == id)),
            };
            if removed {
                decommission_later(d, node);
            }
            let after = (ack_of(&r) == MemberAck::Info).then_some(!removed);
            (r, after)
        }
        other => {
            return Err(FaultError::Unsupported(
                etcd::member_op_not_applicable(Some(&format!("{other:?}"))).unwrap_or_default(),
            ))
        }
    };
    let reply = MemberReply {
        ack: ack_of(&result),
        via: None,
        detail: result.err().map(|e| e.message),
        member_after,
    };
    tracing::info!(?change, ?reply, "etcd membership change answered");
    Ok(reply)
}

/// Starts the announced member `node` with the current members and
/// itself as its initial cluster, joining the existing cluster.
fn start_added(d: &LocalDeployment, node: NodeId) -> Result<(), FaultError> {
    let mut inner = d.lock();
    let mut listed: Vec<_> = inner
        .nodes
        .iter()
        .filter(|n| inner.members.contains(&n.id) || n.id == node)
        .cloned()
        .collect();
    listed.sort_by_key(|n| n.id);
    // A config of its own marks the member as joining (state existing).
    inner.configs.insert(node, etcd::initial_cluster(&listed));
    inner.members.insert(node);
    d.start_locked(&mut inner, node)
        .map(|_| ())
        .map_err(|e| FaultError::Failed(format!("cannot start added member {node}: {e}")))
}
