//! The LOGGER's log-tail hand-over to a candidate.

use super::*;
use crate::config::MemberKind;
use crate::testing::fixtures::{entries, entry, members_with};
use crate::types::{LogTail, LogTailResponse, VoteRequest};

/// Three members, node 2 a LOGGER.
fn with_logger() -> StreamMembers {
    members_with(3, 0, |i| {
        if i == 2 {
            MemberKind::Logger
        } else {
            MemberKind::Voter
        }
    })
}

fn tail(prev: (Index, Term), entries: Vec<Entry>, last: (Index, Term)) -> Message {
    Message::LogTail(LogTail {
        term: 1,
        prev_index: prev.0,
        prev_term: prev.1,
        entries,
        last_index: last.0,
        last_term: last.1,
    })
}

fn tail_response(success: bool, index: Index) -> Message {
    Message::LogTailResponse(LogTailResponse {
        term: 1,
        success,
        index,
    })
}

#[test]
fn a_logger_hands_its_fresher_entries_to_a_candidate_it_refuses() {
    let mut logger = restarted(2, with_logger(), 1, entries(1, 3, 1), 0);
    let behind = Message::VoteRequest(VoteRequest {
        term: 2,
        pre_vote: true,
        last_index: 1,
        last_term: 1,
        transfer: false,
    });
    logger.step(5, 1, behind);
    assert_eq!(
        logger.take_actions(),
        vec![
            send(2, 1, tail((1, 1), vec![entry(2, 1), entry(3, 1)], (3, 1))),
            send(2, 1, vote_response(1, true, false)),
        ]
    );
}

#[test]
fn a_candidate_takes_a_tail_only_while_the_logger_is_ahead() {
    let mut c = restarted(1, with_logger(), 1, entries(1, 1, 1), 0);
    let t = tail((1, 1), vec![entry(2, 1), entry(3, 1)], (3, 1));
    c.step(5, 2, t.clone());
    assert_eq!(
        c.take_actions(),
        vec![
            Action::AppendLog(vec![entry(2, 1), entry(3, 1)]),
            send(1, 2, tail_response(true, 3)),
        ]
    );
    c.step(6, 2, t);
    assert!(c.take_actions().is_empty(), "its log is as fresh now");
    // Nor from a node that is not a LOGGER.
    let mut c = restarted(1, with_logger(), 1, entries(1, 1, 1), 0);
    c.step(5, 3, tail((1, 1), vec![entry(2, 1)], (2, 1)));
    assert!(c.take_actions().is_empty());
}

#[test]
fn the_logger_sends_the_next_batch_after_an_answer() {
    let mut logger = restarted(2, with_logger(), 1, entries(1, 5, 1), 0);
    logger.step(5, 1, tail_response(true, 3));
    assert_eq!(
        logger.take_actions(),
        vec![send(
            2,
            1,
            tail((3, 1), vec![entry(4, 1), entry(5, 1)], (5, 1))
        )]
    );
    // A refusal: send from where the candidate said.
    logger.step(6, 1, tail_response(false, 2));
    assert_eq!(
        logger.take_actions(),
        vec![send(2, 1, tail((1, 1), entries(2, 5, 1), (5, 1)))]
    );
}
