//! Minority (emergency) work mode.

use super::*;
use crate::config::Role;
use crate::stream::{HardState, WorkMode, WorkModeError};
use crate::testing::fixtures::config_entry;
use crate::types::VoteRequest;

#[test]
fn a_lone_survivor_in_minority_mode_leads_with_its_term_raised_by_1000() {
    let mut c = fresh(1, 3);
    let minority = WorkMode::Minority { vote_num: 1 };
    c.set_work_mode(5, minority).unwrap();
    let cfg = config_entry(1, 1000, &members(3, 0));
    let first = Message::Append(AppendRequest {
        minority: true,
        ..append_request(1000, (0, 0), vec![cfg.clone()], 0, 1)
    });
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SaveWorkMode(minority),
            Action::SaveHardState(HardState {
                term: 1000,
                voted_for: Some(1)
            }),
            Action::RoleChanged {
                role: Role::Candidate,
                term: 1000,
                leader: None
            },
            Action::RoleChanged {
                role: Role::Leader,
                term: 1000,
                leader: Some(1)
            },
            Action::AppendLog(vec![cfg.clone()]),
            send(1, 2, first.clone()),
            send(1, 3, first),
        ]
    );
    // It commits on its own durability alone.
    c.on_persisted(6, 1, 1000);
    assert_eq!(c.take_actions(), vec![Action::Apply(vec![cfg])]);
}

#[test]
fn a_follower_entering_minority_mode_tells_its_leader_and_campaigns() {
    let mut c = fresh(2, 3);
    follow(&mut c, 1, 1, 10);
    let minority = WorkMode::Minority { vote_num: 2 };
    c.set_work_mode(20, minority).unwrap();
    let vote = Message::VoteRequest(VoteRequest {
        term: 1001,
        pre_vote: false,
        last_index: 0,
        last_term: 0,
        transfer: false,
    });
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SaveWorkMode(minority),
            send(
                2,
                1,
                Message::WorkModeReport {
                    term: 1,
                    minority: true
                }
            ),
            Action::SaveHardState(HardState {
                term: 1001,
                voted_for: Some(2)
            }),
            Action::RoleChanged {
                role: Role::Candidate,
                term: 1001,
                leader: None
            },
            send(2, 1, vote.clone()),
            send(2, 3, vote),
        ]
    );
}

#[test]
fn a_vote_num_outside_the_voters_is_refused_and_changes_nothing() {
    let mut c = fresh(1, 3);
    for vote_num in [0, 4] {
        assert_eq!(
            c.set_work_mode(5, WorkMode::Minority { vote_num }),
            Err(WorkModeError::BadVoteNum {
                vote_num,
                voters: 3
            })
        );
    }
    assert!(c.take_actions().is_empty());
    assert_eq!(c.work_mode(), WorkMode::Normal);
}
