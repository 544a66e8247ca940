//! Elections: pre-vote, vote, the term rules, becoming leader.

use super::*;
use crate::config::Role;
use crate::stream::HardState;
use crate::testing::fixtures::{config_entry, entries};
use crate::types::VoteRequest;

fn vote_request(term: Term, pre_vote: bool, last: (Index, Term), transfer: bool) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        pre_vote,
        last_index: last.0,
        last_term: last.1,
        transfer,
    })
}

#[test]
fn election_timeout_starts_a_pre_vote_without_a_new_term() {
    let mut c = fresh(1, 3);
    // The first deadline is at most two election timeouts away.
    c.tick(201);
    let pre_vote = vote_request(1, true, (0, 0), false);
    assert_eq!(
        c.take_actions(),
        vec![
            Action::RoleChanged {
                role: Role::PreCandidate,
                term: 0,
                leader: None
            },
            send(1, 2, pre_vote.clone()),
            send(1, 3, pre_vote),
        ]
    );
    assert_eq!(c.term(), 0, "a pre-vote changes no term");
}

#[test]
fn a_pre_vote_quorum_starts_the_election() {
    let mut c = fresh(1, 3);
    c.tick(201);
    c.take_actions();
    // A refusal does not count; a grant makes a quorum with our own vote.
    c.step(202, 3, vote_response(0, true, false));
    assert!(c.take_actions().is_empty());
    c.step(202, 2, vote_response(1, true, true));
    let vote = vote_request(1, false, (0, 0), false);
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SaveHardState(HardState {
                term: 1,
                voted_for: Some(1)
            }),
            Action::RoleChanged {
                role: Role::Candidate,
                term: 1,
                leader: None
            },
            send(1, 2, vote.clone()),
            send(1, 3, vote),
        ]
    );
}

#[test]
fn a_won_election_appends_the_configuration_and_sends_it() {
    let mut c = fresh(1, 3);
    c.tick(201);
    c.step(202, 2, vote_response(1, true, true));
    c.take_actions();
    c.step(203, 3, vote_response(1, false, true));
    let cfg = config_entry(1, 1, &members(3, 0));
    let first_append = append(1, (0, 0), vec![cfg.clone()], 0, 1);
    assert_eq!(
        c.take_actions(),
        vec![
            Action::RoleChanged {
                role: Role::Leader,
                term: 1,
                leader: Some(1)
            },
            Action::AppendLog(vec![cfg]),
            send(1, 2, first_append.clone()),
            send(1, 3, first_append),
        ]
    );
    assert!(!c.is_leader_ready(), "not before its first entry commits");
}

#[test]
fn a_vote_is_saved_before_it_is_sent() {
    let mut c = fresh(2, 3);
    c.step(5, 1, vote_request(1, false, (0, 0), false));
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SaveHardState(HardState {
                term: 1,
                voted_for: None
            }),
            Action::RoleChanged {
                role: Role::Follower,
                term: 1,
                leader: None
            },
            Action::SaveHardState(HardState {
                term: 1,
                voted_for: Some(1)
            }),
            send(2, 1, vote_response(1, false, true)),
        ]
    );
    // One vote per term.
    c.step(6, 3, vote_request(1, false, (0, 0), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 3, vote_response(1, false, false))]
    );
}

#[test]
fn a_node_that_hears_its_leader_refuses_votes_without_taking_their_term() {
    let mut c = fresh(2, 3);
    follow(&mut c, 1, 3, 10);
    c.step(20, 3, vote_request(4, false, (9, 9), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 3, vote_response(3, false, false))]
    );
    c.step(20, 3, vote_request(4, true, (9, 9), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 3, vote_response(3, true, false))]
    );
    assert_eq!(c.term(), 3);
    // A leader handing over (promote) gets the vote all the same.
    c.step(20, 3, vote_request(4, false, (9, 9), true));
    let actions = c.take_actions();
    assert_eq!(
        actions.last(),
        Some(&send(2, 3, vote_response(4, false, true)))
    );
    assert_eq!(c.term(), 4);
}

#[test]
fn a_candidate_with_an_older_log_gets_no_vote() {
    let mut c = restarted(2, members(3, 0), 2, entries(1, 3, 2), 0);
    c.step(5, 1, vote_request(3, true, (5, 1), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 1, vote_response(2, true, false))]
    );
    c.step(5, 1, vote_request(3, true, (3, 2), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 1, vote_response(3, true, true))]
    );
}

#[test]
fn a_message_of_an_older_term_is_answered_with_the_newer_one() {
    let mut c = fresh(2, 3);
    follow(&mut c, 1, 5, 10);
    c.step(11, 3, append(4, (0, 0), vec![], 0, 7));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 3, append_response(5, false, 0, 0, 0, 0))]
    );
    c.step(11, 3, vote_request(4, false, (0, 0), false));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 3, vote_response(5, false, false))]
    );
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn stepping_down_fails_the_pending_reads() {
    let mut c = ready_leader(3);
    c.read_index(10, 7).unwrap();
    c.take_actions();
    c.step(11, 2, append_response(2, false, 0, 0, 0, 0));
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SaveHardState(HardState {
                term: 2,
                voted_for: None
            }),
            Action::ReadFailed { ctx: 7 },
            Action::RoleChanged {
                role: Role::Follower,
                term: 2,
                leader: None
            },
        ]
    );
    assert!(c.leader_state().is_none(), "the leader's state is gone");
}
