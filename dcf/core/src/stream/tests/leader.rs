//! Replication on the leader's side.

use super::*;
use crate::config::Role;
use crate::testing::fixtures::{config_entry, entry};

/// Proposes entries `2..=3` (data and key their index) at a ready leader.
fn two_proposals(c: &mut StreamCore) {
    assert_eq!(c.propose(10, 2, vec![2]), Ok((1, 2)));
    assert_eq!(c.propose(10, 3, vec![3]), Ok((1, 3)));
}

#[test]
fn proposals_share_one_append_per_peer() {
    let mut c = ready_leader(3);
    two_proposals(&mut c);
    let both = append(1, (1, 1), vec![entry(2, 1), entry(3, 1)], 1, 1);
    assert_eq!(
        c.take_actions(),
        vec![
            Action::AppendLog(vec![entry(2, 1)]),
            Action::AppendLog(vec![entry(3, 1)]),
            send(1, 2, both.clone()),
            send(1, 3, both),
        ]
    );
}

#[test]
fn an_entry_commits_once_durable_on_a_quorum() {
    let mut c = ready_leader(3);
    two_proposals(&mut c);
    c.take_actions();
    // Durable here only: one of three.
    c.on_persisted(11, 3, 1);
    assert!(c.take_actions().is_empty());
    assert_eq!(c.commit_index(), 1);
    c.step(12, 2, append_response(1, true, 3, 3, 1, 1));
    assert_eq!(
        c.take_actions(),
        vec![Action::Apply(vec![entry(2, 1), entry(3, 1)])]
    );
    assert_eq!(c.commit_index(), 3);
}

#[test]
fn a_read_is_ready_once_a_quorum_echoes_a_newer_heartbeat_round() {
    let mut c = ready_leader(3);
    c.read_index(10, 7).unwrap();
    // The read asks for a round of its own at once.
    let round = append(1, (1, 1), vec![], 1, 2);
    assert_eq!(
        c.take_actions(),
        vec![send(1, 2, round.clone()), send(1, 3, round)]
    );
    // An echo of the round before does not confirm it.
    c.step(11, 3, append_response(1, true, 1, 1, 1, 1));
    assert!(c.take_actions().is_empty());
    c.step(11, 2, append_response(1, true, 1, 1, 1, 2));
    assert_eq!(
        c.take_actions(),
        vec![Action::ReadReady { ctx: 7, index: 1 }]
    );
}

#[test]
fn a_rejection_sends_again_from_the_followers_hint() {
    let mut c = ready_leader(3);
    c.step(10, 2, append_response(1, false, 1, 0, 0, 1));
    let cfg = config_entry(1, 1, &members(3, 0));
    assert_eq!(
        c.take_actions(),
        vec![send(1, 2, append(1, (0, 0), vec![cfg], 1, 1))]
    );
}

#[test]
fn a_leader_steps_down_when_no_quorum_answered_for_two_election_timeouts() {
    let mut c = ready_leader(3);
    // The peers last answered at 0; heartbeats go out meanwhile.
    c.tick(199);
    let round = append(1, (1, 1), vec![], 1, 2);
    assert_eq!(
        c.take_actions(),
        vec![send(1, 2, round.clone()), send(1, 3, round)]
    );
    c.tick(200);
    assert_eq!(
        c.take_actions(),
        vec![Action::RoleChanged {
            role: Role::Follower,
            term: 1,
            leader: None
        }]
    );
}

#[test]
fn paused_replication_sends_heartbeats_only() {
    let mut c = ready_leader(3);
    c.pause_replication(10, 3, 50_000).unwrap();
    two_proposals(&mut c);
    let actions = c.take_actions();
    assert_eq!(
        actions[2..],
        [send(
            1,
            2,
            append(1, (1, 1), vec![entry(2, 1), entry(3, 1)], 1, 1)
        )]
    );
    c.tick(25);
    let round = append(1, (1, 1), vec![], 1, 2);
    assert_eq!(
        c.take_actions().last(),
        Some(&send(1, 3, round)),
        "node 3 gets the heartbeat without entries"
    );
}
