//! Replication on the follower's side.

use super::*;
use crate::config::Role;
use crate::stream::Exception;
use crate::testing::fixtures::{entries, entry};

/// Node 2 of 3 restarting in term 2 with entries 1..=3 of term 1, the
/// first one applied (so committed), following node 1.
fn follower() -> StreamCore {
    let mut c = restarted(2, members(3, 0), 2, entries(1, 3, 1), 1);
    follow(&mut c, 1, 2, 10);
    c
}

#[test]
fn a_heartbeat_from_a_new_leader_is_followed_and_acknowledged() {
    let mut c = restarted(2, members(3, 0), 2, entries(1, 3, 1), 1);
    c.step(10, 1, append(2, (3, 1), vec![], 1, 4));
    assert_eq!(
        c.take_actions(),
        vec![
            Action::RoleChanged {
                role: Role::Follower,
                term: 2,
                leader: Some(1)
            },
            send(2, 1, append_response(2, true, 3, 3, 1, 4)),
        ]
    );
}

#[test]
fn entries_conflicting_above_the_commit_index_replace_the_tail() {
    // The leader's log matches ours only up to index 1.
    let mut c = restarted(2, members(3, 0), 2, entries(1, 3, 1), 1);
    c.step(10, 1, append(2, (1, 1), vec![], 1, 4));
    c.take_actions();
    let new = vec![entry(2, 2), entry(3, 2)];
    c.step(20, 1, append(2, (1, 1), new.clone(), 1, 5));
    // The new entries are not durable yet: only index 1 is acknowledged.
    assert_eq!(
        c.take_actions(),
        vec![
            Action::TruncateLog { from: 2 },
            Action::AppendLog(new),
            send(2, 1, append_response(2, true, 1, 3, 1, 5)),
        ]
    );
    c.on_persisted(21, 3, 2);
    assert_eq!(
        c.take_actions(),
        vec![send(2, 1, append_response(2, true, 3, 3, 1, 5))]
    );
}

#[test]
fn entries_already_held_are_skipped_and_the_commit_index_moves() {
    let mut c = follower();
    c.step(
        20,
        1,
        append(2, (1, 1), vec![entry(2, 1), entry(3, 1), entry(4, 2)], 3, 6),
    );
    assert_eq!(
        c.take_actions(),
        vec![
            Action::AppendLog(vec![entry(4, 2)]),
            Action::Apply(vec![entry(2, 1), entry(3, 1)]),
            send(2, 1, append_response(2, true, 3, 4, 1, 6)),
        ]
    );
    assert_eq!(c.commit_index(), 3);
}

#[test]
fn entries_after_an_unknown_or_different_entry_are_rejected_with_a_hint() {
    let mut c = follower();
    // Past our log: retry from our last index + 1.
    c.step(20, 1, append(2, (7, 2), vec![entry(8, 2)], 1, 6));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 1, append_response(2, false, 4, 3, 1, 6))]
    );
    // A different term at 3: retry from the first entry of our term 1
    // above the commit index.
    c.step(20, 1, append(2, (3, 2), vec![entry(4, 2)], 1, 6));
    assert_eq!(
        c.take_actions(),
        vec![send(2, 1, append_response(2, false, 2, 3, 1, 6))]
    );
    assert_eq!(c.last_index(), 3, "nothing changed");
}

#[test]
fn a_conflict_with_a_committed_entry_is_refused_and_reported() {
    let mut c = follower();
    c.step(
        20,
        1,
        append(2, (1, 1), vec![entry(2, 1), entry(3, 1)], 3, 6),
    );
    c.take_actions();
    c.step(30, 1, append(2, (1, 1), vec![entry(2, 2)], 3, 7));
    assert_eq!(
        c.take_actions(),
        vec![Action::Exception(Exception::CommittedEntryConflict {
            leader: 1,
            index: 2,
            local_commit: 3
        })]
    );
    assert_eq!(c.entry(2), Some(&entry(2, 1)), "the committed entry stays");
    // Reported at most once a second.
    c.step(40, 1, append(2, (1, 1), vec![entry(2, 2)], 3, 8));
    assert!(c.take_actions().is_empty());
}

#[test]
fn a_follower_behind_the_leaders_first_index_raises_missing_log() {
    let mut c = follower();
    let behind = Message::Append(AppendRequest {
        first_index: 10,
        ..append_request(2, (12, 2), vec![], 1, 6)
    });
    c.step(20, 1, behind);
    assert_eq!(
        c.take_actions(),
        vec![
            Action::Exception(Exception::MissingLog {
                leader: 1,
                leader_first_index: 10,
                local_last_index: 3
            }),
            send(2, 1, append_response(2, false, 4, 3, 1, 6)),
        ]
    );
}
