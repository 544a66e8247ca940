//! Checkpoints: installing one, compacting, asking for one.

use super::*;
use crate::snapshot::SnapshotMeta;
use crate::testing::fixtures::entries;

/// Node 2 of 3 restarting in term 1 with entries 1..=5 of term 1, nothing
/// applied, following node 1 whose log matches up to 5.
fn follower() -> StreamCore {
    let mut c = restarted(2, members(3, 0), 1, entries(1, 5, 1), 0);
    follow(&mut c, 1, 1, 10);
    c
}

fn meta(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        members: members(3, 0),
    }
}

#[test]
fn a_checkpoint_matching_the_log_compacts_it_and_keeps_the_rest() {
    let mut c = follower();
    assert!(c.install_snapshot(20, meta(3, 1)));
    assert_eq!(
        c.take_actions(),
        vec![
            Action::CompactLog { first_kept: 4 },
            send(2, 1, append_response(1, true, 5, 5, 3, 1)),
        ]
    );
    assert_eq!(
        (
            c.first_index(),
            c.last_index(),
            c.commit_index(),
            c.applied_index()
        ),
        (4, 5, 3, 3)
    );
}

#[test]
fn a_checkpoint_the_log_contradicts_replaces_the_log() {
    let mut c = follower();
    assert!(c.install_snapshot(20, meta(4, 2)));
    assert_eq!(
        c.take_actions(),
        vec![
            Action::ResetLog {
                last: 4,
                last_term: 2
            },
            send(2, 1, append_response(1, true, 4, 4, 4, 1)),
        ]
    );
    assert_eq!((c.first_index(), c.last_index()), (5, 4));
}

#[test]
fn a_checkpoint_not_ahead_of_what_was_applied_changes_nothing() {
    let mut c = restarted(2, members(3, 0), 1, entries(1, 5, 1), 4);
    assert!(!c.wants_snapshot(4));
    assert!(!c.install_snapshot(20, meta(4, 1)));
    assert!(c.take_actions().is_empty());
    assert!(!ready_leader(3).wants_snapshot(9), "a leader takes none");
}

#[test]
fn compaction_keeps_the_unapplied_entries() {
    let mut c = restarted(2, members(3, 0), 1, entries(1, 5, 1), 2);
    assert_eq!(c.compact_log(5), 3, "only applied entries go");
    assert_eq!(c.take_actions(), vec![Action::CompactLog { first_kept: 3 }]);
    assert_eq!(c.compact_log(2), 3);
    assert!(c.take_actions().is_empty(), "nothing below the first index");
}

#[test]
fn a_peer_behind_the_first_index_gets_a_checkpoint() {
    let mut c = ready_leader(3);
    c.opts.snapshot_transfer = true;
    assert_eq!(c.propose(10, 2, vec![2]), Ok((1, 2)));
    c.on_persisted(10, 2, 1);
    c.step(10, 3, append_response(1, true, 2, 2, 0, 1));
    c.on_applied(2);
    c.take_actions();
    assert_eq!(c.compact_log(3), 3);
    assert_eq!(c.take_actions(), vec![Action::CompactLog { first_kept: 3 }]);
    // Node 2 lost everything: the entries it needs are gone.
    c.step(11, 2, append_response(1, false, 1, 0, 0, 1));
    assert!(c.take_actions().is_empty(), "no point retrying at once");
    c.tick(25);
    let heartbeat = Message::Append(AppendRequest {
        first_index: 3,
        ..append_request(1, (2, 1), vec![], 2, 2)
    });
    assert_eq!(
        c.take_actions(),
        vec![
            Action::SendSnapshot { to: 2 },
            send(1, 2, heartbeat.clone()),
            send(1, 3, heartbeat),
        ]
    );
    // Asked again only after two election timeouts.
    c.tick(50);
    assert!(!c
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::SendSnapshot { .. })));
    c.snapshot_transfer_failed(2);
    c.tick(75);
    assert!(c.take_actions().contains(&Action::SendSnapshot { to: 2 }));
}
