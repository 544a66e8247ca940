//! Membership changes: the single-change rule as a table, and what a
//! change emits on the leader.

use super::*;
use crate::config::{Member, MemberKind};
use crate::stream::{check_single_change, ConfigChangeError, ConfigChangeStarted};
use crate::testing::fixtures::{config_entry, member};

/// `check_single_change(old, new)`, one case a line: the old and the new
/// configuration, then the expected result. A configuration lists nodes
/// 1, 2, ... in order: `v` a voter, `l` a LOGGER, `p` a PASSIVE node,
/// followed by its weight, and `*` plus a digit for a priority; `-` is a
/// node that is not a member. Results: `ok`, `unsafe OLD NEW` (the two
/// quorums), `no-change`, `two-changes`, `no-leader`.
const SINGLE_CHANGE_CASES: &str = "
# old            | new               | result
# adding and removing voters of weight 1 is always safe
v1 v1 v1         | v1 v1 v1 v1       | ok
v1 v1 v1 v1      | v1 v1 v1 -        | ok
v1               | v1 v1             | ok
v1 v1            | v1 -              | ok
v1 v1 v1         | v1 - v1           | ok
# heavier voters: two disjoint quorums would be possible
v1 v1 v1         | v1 v1 v1 v2       | unsafe 2 3
v1 v1 v1         | v1 v1 v1 v3       | unsafe 2 4
v1 v1 v1 v2      | v1 v1 v1 -        | unsafe 3 2
v1 v1 v1         | v1 v1 v3          | unsafe 2 3
# ... unless the rest outweighs them
v1 v1 v1 v1      | v1 v1 v1 v1 v2    | ok
v2 v2 v2         | v2 v2 v2 v1       | ok
# non-voters and priorities never touch a quorum
v1 v1 v1         | v1 v1 v1 p1       | ok
v1 v1 v1 p1      | v1 v1 v1 -        | ok
v1 v1 v1 v1      | v1 v1 v1 p1       | ok
v1 v1 v1         | v1 v1*5 v1        | ok
p3 v1 v1         | p1 v1 v1          | ok
# a LOGGER votes like a voter
v1 v1 l1         | v1 v1 -           | ok
v1 v1            | v1 v1 l3          | unsafe 2 3
# one node at a time, some voter that may lead, and some change
v1 v1 v1         | v1 v1 v1 v1 v1    | two-changes
v1 v1 v1         | v1 p1 v1*2        | two-changes
v1 l1            | - l1              | no-leader
v1 v1 v1         | v1 v1 v1          | no-change
";

/// Parses one configuration of the table.
fn config(spec: &str) -> StreamMembers {
    let mut m = StreamMembers::default();
    for (i, token) in spec.split_whitespace().enumerate() {
        if token == "-" {
            continue;
        }
        let (kind, rest) = token.split_at(1);
        let kind = match kind {
            "v" => MemberKind::Voter,
            "l" => MemberKind::Logger,
            "p" => MemberKind::Passive,
            k => panic!("unknown kind {k} in {spec:?}"),
        };
        let (weight, priority) = rest.split_once('*').unwrap_or((rest, "0"));
        m.members.push(Member {
            weight: weight.parse().expect("weight"),
            priority: priority.parse().expect("priority"),
            ..member(i as NodeId + 1, kind)
        });
    }
    m
}

fn expected(result: &str) -> Result<(), ConfigChangeError> {
    let words: Vec<&str> = result.split_whitespace().collect();
    match words.as_slice() {
        ["ok"] => Ok(()),
        ["unsafe", old, new] => Err(ConfigChangeError::UnsafeQuorumChange {
            old_quorum: old.parse().expect("quorum"),
            new_quorum: new.parse().expect("quorum"),
        }),
        ["no-change"] => Err(ConfigChangeError::NoChange),
        ["two-changes"] => Err(ConfigChangeError::InvalidMember(
            "only one node may change at a time".into(),
        )),
        ["no-leader"] => Err(ConfigChangeError::NoLeaderCandidate),
        _ => panic!("unknown result {result:?}"),
    }
}

#[test]
fn single_change_rule_table() {
    let mut cases = 0;
    for line in SINGLE_CHANGE_CASES.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        let [old, new, result] = cols[..] else {
            panic!("malformed case {line:?}");
        };
        assert_eq!(
            check_single_change(&config(old), &config(new)),
            expected(result),
            "case {line:?}"
        );
        cases += 1;
    }
    assert_eq!(cases, 22);
}

#[test]
fn a_passive_member_is_appended_at_once() {
    let mut c = ready_leader(3);
    let started = c.add_member(10, member(4, MemberKind::Passive)).unwrap();
    assert_eq!(
        started,
        ConfigChangeStarted::Appended {
            ticket: 1,
            term: 1,
            index: 2
        }
    );
    let mut four = members(3, 0);
    four.members.push(member(4, MemberKind::Passive));
    let cfg = config_entry(2, 1, &four);
    let change = append(1, (1, 1), vec![cfg.clone()], 1, 1);
    // Node 4 is probed at the next heartbeat.
    assert_eq!(
        c.take_actions(),
        vec![
            Action::AppendLog(vec![cfg]),
            send(1, 2, change.clone()),
            send(1, 3, change),
        ]
    );
    assert_eq!(c.members(), &four, "in effect as soon as appended");
}

#[test]
fn a_lagging_voter_catches_up_before_its_entry_is_appended() {
    let mut c = ready_leader(3);
    for i in 2..=20 {
        c.propose(10, i, vec![i as u8]).unwrap();
    }
    c.take_actions();
    let started = c.add_member(10, member(4, MemberKind::Voter)).unwrap();
    assert_eq!(
        started,
        ConfigChangeStarted::CatchingUp { ticket: 1, node: 4 }
    );
    assert!(c.take_actions().is_empty(), "nothing appended yet");
    assert_eq!(c.members(), &members(3, 0));
    // Node 4 reports it holds everything: the entry goes in.
    c.step(11, 4, append_response(1, true, 20, 20, 0, 1));
    let actions = c.take_actions();
    let mut four = members(3, 0);
    four.members.push(member(4, MemberKind::Voter));
    assert_eq!(
        actions[0],
        Action::AppendLog(vec![config_entry(21, 1, &four)])
    );
    assert_eq!(c.members(), &four);
}
