//! Unit tests per concern: each drives one core by hand and asserts the
//! exact actions a step produces.

mod checkpoint;
mod election;
mod follower;
mod leader;
mod log_tail;
mod membership;
mod work_mode;

use super::{Action, CoreOptions, Restored, StreamCore};
use crate::config::{NodeId, StreamMembers};
use crate::testing::fixtures::{members, options};
use crate::types::{
    AppendRequest, AppendResponse, Entry, Envelope, Index, Message, Term, VoteResponse,
};

fn opts(id: NodeId) -> CoreOptions {
    options(id, 100, 20)
}

/// Node `id` of `members`, restarting in `term` with `log` (from index 1)
/// and the host's applied index `applied`.
fn restarted(
    id: NodeId,
    members: StreamMembers,
    term: Term,
    log: Vec<Entry>,
    applied: Index,
) -> StreamCore {
    let restored = crate::testing::fixtures::restored(term, log, applied);
    StreamCore::new(opts(id), members, restored, 0)
}

/// A fresh node `id` of `n` voters, none of them the configured LEADER.
fn fresh(id: NodeId, n: u32) -> StreamCore {
    StreamCore::new(opts(id), members(n, 0), Restored::default(), 0)
}

fn send(from: NodeId, to: NodeId, msg: Message) -> Action {
    Action::Send(Envelope {
        stream: 1,
        from,
        to,
        msg,
    })
}

/// An append of `entries` after `prev` from a normal-mode leader whose
/// log starts at 1.
fn append_request(
    term: Term,
    prev: (Index, Term),
    entries: Vec<Entry>,
    commit: Index,
    seq: u64,
) -> AppendRequest {
    AppendRequest {
        term,
        prev_index: prev.0,
        prev_term: prev.1,
        entries,
        commit,
        first_index: 1,
        min_applied: 0,
        seq,
        minority: false,
    }
}

fn append(
    term: Term,
    prev: (Index, Term),
    entries: Vec<Entry>,
    commit: Index,
    seq: u64,
) -> Message {
    Message::Append(append_request(term, prev, entries, commit, seq))
}

fn append_response(
    term: Term,
    success: bool,
    index: Index,
    last: Index,
    applied: Index,
    seq: u64,
) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success,
        index,
        last_index: last,
        applied_index: applied,
        seq,
    })
}

fn vote_response(term: Term, pre_vote: bool, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term,
        pre_vote,
        granted,
    })
}

/// Node 1 of `n` voters, elected in term 1 with the votes of all the
/// others, its first entry (the configuration, index 1) committed and
/// applied: ready for writes, every peer's match index 1.
fn ready_leader(n: u32) -> StreamCore {
    let mut c = fresh(1, n);
    c.timeout_notify(0).expect("a voter may campaign");
    for id in 2..=n {
        c.step(0, id, vote_response(1, true, true));
    }
    for id in 2..=n {
        c.step(0, id, vote_response(1, false, true));
    }
    c.on_persisted(0, 1, 1);
    for id in 2..=n {
        c.step(0, id, append_response(1, true, 1, 1, 0, 1));
    }
    let applied = c
        .take_actions()
        .into_iter()
        .any(|a| matches!(a, Action::Apply(_)));
    assert!(applied, "the configuration entry is handed out");
    c.on_applied(1);
    assert!(c.is_leader_ready());
    assert!(c.take_actions().is_empty());
    c
}

/// Makes `c` follow `leader` in `term` with a heartbeat matching its log;
/// drops the actions that produced.
fn follow(c: &mut StreamCore, leader: NodeId, term: Term, now: u64) {
    let prev = (c.last_index(), c.log.last_term());
    c.step(now, leader, append(term, prev, vec![], c.commit_index(), 1));
    c.take_actions();
    assert_eq!(c.leader(), Some(leader));
}
