//! Targeted scenario tests for membership changes, leadership transfer,
//! priority election and minority mode, on a small lossless network with
//! crashes (durable logs survive), restarts and isolation.

use dcf_core::testing::fixtures::{member, members, options};
use dcf_core::testing::Net;
use dcf_core::*;

fn opts(i: NodeId) -> CoreOptions {
    let mut o = options(i, 100, 20);
    o.catchup_timeout_elections = 5;
    o
}

/// `n` fresh voters (node 1 the configured LEADER) stepped 1 ms at a time.
fn cluster(n: u32) -> Net {
    let mut net = Net::new(n, 1, opts);
    net.forbid_checkpoints = true;
    net
}

/// Steps until a reachable leader is ready; returns it.
fn ready_leader(net: &mut Net) -> NodeId {
    net.ready_leader(3000).expect("a leader gets ready")
}

/// Steps until the change `ticket` of `at` committed or failed (at most
/// `ms`); returns where it stands.
fn wait_status(net: &mut Net, at: NodeId, ticket: u64, ms: u64) -> ConfigChangeStatus {
    net.run_until(ms, |n| {
        matches!(
            n.nodes[&at].config_change_status(ticket),
            ConfigChangeStatus::Committed { .. } | ConfigChangeStatus::Failed(_)
        )
    });
    net.nodes[&at].config_change_status(ticket)
}

fn ids(m: &StreamMembers) -> Vec<NodeId> {
    m.ids().collect()
}

// ----- membership -------------------------------------------------------

#[test]
fn added_voter_catches_up_before_it_counts_and_second_change_is_refused() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    net.write(l, 100);
    net.run(50);
    // The new node starts with the old configuration (it learns its
    // membership from the log).
    net.add_node(4, members(3, 1));
    net.isolated.insert(4);
    let started = net
        .core(l)
        .add_member(0, member(4, MemberKind::Voter))
        .unwrap();
    let ConfigChangeStarted::CatchingUp { ticket, node: 4 } = started else {
        panic!("a lagging voter catches up first: {started:?}");
    };
    net.drain(l);
    // Not a member yet: the quorum is still that of 3 voters.
    assert_eq!(ids(net.nodes[&l].members()), vec![1, 2, 3]);
    assert!(matches!(
        net.core(l).remove_member(0, 2),
        Err(ConfigChangeError::ChangeInProgress { ticket: Some(t), .. }) if t == ticket
    ));
    assert!(matches!(
        net.nodes[&l].pending_config_change(),
        Some(PendingConfigChange { ticket: Some(t), status: ConfigChangeStatus::CatchingUp { node: 4 } }) if t == ticket
    ));
    // Writes keep committing while it catches up.
    net.run(50);
    let (_, i) = net.write(l, 1)[0];
    net.run(50);
    assert!(net.nodes[&l].commit_index() >= i);
    net.isolated.remove(&4);
    let st = wait_status(&mut net, l, ticket, 2000);
    assert!(matches!(st, ConfigChangeStatus::Committed { .. }), "{st:?}");
    net.run(200);
    assert_eq!(ids(net.nodes[&4].members()), vec![1, 2, 3, 4]);
    assert_eq!(net.nodes[&4].commit_index(), net.nodes[&l].commit_index());
    assert!(net.nodes[&l].pending_config_change().is_none());
    // The next change is accepted now.
    assert!(net.core(l).remove_member(0, 4).is_ok());
}

#[test]
fn a_node_that_never_catches_up_fails_the_change_after_the_timeout() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    net.write(l, 30);
    net.add_node(4, members(3, 1));
    net.isolated.insert(4);
    let t = net
        .core(l)
        .add_member(0, member(4, MemberKind::Voter))
        .unwrap()
        .ticket();
    let st = wait_status(&mut net, l, t, 2000);
    assert!(
        matches!(
            st,
            ConfigChangeStatus::Failed(ConfigChangeError::CatchUpTimeout { node: 4, .. })
        ),
        "{st:?}"
    );
    assert_eq!(ids(net.nodes[&l].members()), vec![1, 2, 3]);
    assert!(net.nodes[&l].pending_config_change().is_none());
    assert!(net.nodes[&l].status().peers.keys().all(|p| *p != 4));
    let now = net.now;
    assert!(net.core(l).set_election_priority(now, 2, 1).is_ok());
}

#[test]
fn a_removed_follower_cannot_disrupt_the_cluster() {
    let mut net = cluster(4);
    let l = ready_leader(&mut net);
    let victim = if l == 4 { 3 } else { 4 };
    net.isolated.insert(victim);
    let t = net.core(l).remove_member(0, victim).unwrap().ticket();
    let st = wait_status(&mut net, l, t, 1000);
    assert!(matches!(st, ConfigChangeStatus::Committed { .. }), "{st:?}");
    net.run(50);
    assert!(
        !net.nodes[&l].status().peers.contains_key(&victim),
        "leader stops replicating"
    );
    // The removed node never heard of its removal; it times out, but its
    // pre-votes are refused and nobody's term moves.
    let term = net.nodes[&l].term();
    net.isolated.remove(&victim);
    net.run(2000);
    assert_eq!(net.reachable_leader(), Some(l));
    for (id, c) in &net.nodes {
        if *id != victim {
            assert_eq!(c.term(), term, "n{id} term unchanged");
        }
    }
    assert!(net.nodes[&victim].role() != Role::Leader);
    assert!(!net
        .roles
        .iter()
        .any(|(id, r, _)| *id == victim && *r == Role::Candidate));
}

#[test]
fn a_removed_leader_steps_down_after_committing_its_removal() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let term = net.nodes[&l].term();
    let now = net.now;
    let t = net.core(l).remove_member(now, l).unwrap().ticket();
    net.drain(l);
    assert!(net.run_until(1000, |n| n.nodes[&l].role() != Role::Leader));
    assert!(matches!(
        net.nodes[&l].config_change_status(t),
        ConfigChangeStatus::Committed { .. }
    ));
    let nl = ready_leader(&mut net);
    assert_ne!(nl, l);
    assert!(net.nodes[&nl].term() > term);
    net.run(1000);
    assert!(!net.roles.iter().any(|(id, r, tt)| *id == l
        && *tt > term
        && matches!(r, Role::Candidate | Role::PreCandidate | Role::Leader)));
    assert_eq!(ids(net.nodes[&nl].members()).len(), 2);
}

#[test]
fn role_change_rules() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let other = if l == 1 { 2 } else { 1 };
    let now = net.now;
    assert_eq!(
        net.core(l).change_member_role(now, l, MemberKind::Passive),
        Err(ConfigChangeError::LeaderOwnRole)
    );
    assert_eq!(
        net.core(l)
            .change_member_role(now, other, MemberKind::Passive),
        Err(ConfigChangeError::TooFewVoters { voters: 3 })
    );
    assert_eq!(
        net.core(l)
            .change_member_role(now, other, MemberKind::Logger),
        Err(ConfigChangeError::LoggerRoleChange)
    );
    assert_eq!(
        net.core(l).add_member(now, member(2, MemberKind::Voter)),
        Err(ConfigChangeError::AlreadyMember(2))
    );
    let mut heavy = member(9, MemberKind::Voter);
    heavy.weight = 3;
    assert!(matches!(
        net.core(l).add_member(now, heavy),
        Err(ConfigChangeError::UnsafeQuorumChange { .. })
    ));
    // With 4 voters, FOLLOWER -> PASSIVE and back work.
    let mut net = cluster(4);
    let l = ready_leader(&mut net);
    let other = if l == 4 { 3 } else { 4 };
    let now = net.now;
    let t = net
        .core(l)
        .change_member_role(now, other, MemberKind::Passive)
        .unwrap()
        .ticket();
    assert!(matches!(
        wait_status(&mut net, l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    assert_eq!(
        net.nodes[&other].members().get(other).unwrap().kind,
        MemberKind::Passive
    );
    let now = net.now;
    let t = net
        .core(l)
        .change_member_role(now, other, MemberKind::Voter)
        .unwrap()
        .ticket();
    assert!(matches!(
        wait_status(&mut net, l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    assert_eq!(
        net.nodes[&l].members().get(other).unwrap().kind,
        MemberKind::Voter
    );
}

#[test]
fn no_change_before_the_leader_commits_an_entry_of_its_term() {
    let mut net = cluster(3);
    net.drop_if = Some(|e| matches!(e.msg, Message::AppendResponse(_)));
    let mut checked = false;
    for _ in 0..3000 {
        net.step();
        if let Some(l) = net.reachable_leader() {
            if !net.nodes[&l].is_leader_ready() {
                let now = net.now;
                assert_eq!(
                    net.core(l).remove_member(now, 3),
                    Err(ConfigChangeError::NotReady)
                );
                checked = true;
            }
        }
        if checked {
            break;
        }
    }
    assert!(checked, "observed a leader before it was ready");
    let f = if net.reachable_leader() == Some(1) {
        2
    } else {
        1
    };
    let now = net.now;
    assert!(matches!(
        net.core(f).remove_member(now, 3),
        Err(ConfigChangeError::NotLeader { .. })
    ));
}

#[test]
fn a_truncated_configuration_entry_rolls_the_configuration_back() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let original = net.nodes[&l].members().clone();
    net.isolated.insert(l);
    let now = net.now;
    let victim = if l == 3 { 2 } else { 3 };
    let started = net.core(l).remove_member(now, victim).unwrap();
    net.drain(l);
    assert_eq!(
        ids(net.nodes[&l].members()).len(),
        2,
        "adopted when appended"
    );
    // The others elect a new leader and commit something of their own.
    assert!(net.run_until(3000, |n| n
        .reachable_leader()
        .is_some_and(|x| x != l && n.nodes[&x].is_leader_ready())));
    let nl = net.reachable_leader().unwrap();
    net.write(nl, 3);
    net.run(100);
    net.isolated.remove(&l);
    net.run(500);
    assert_eq!(net.nodes[&l].members(), &original, "rolled back");
    assert_eq!(
        net.nodes[&l].config_change_status(started.ticket()),
        ConfigChangeStatus::Failed(ConfigChangeError::Overwritten)
    );
}

#[test]
fn single_change_quorum_overlap_rule() {
    let three = members(3, 0);
    let mut four = three.clone();
    four.members.push(member(4, MemberKind::Voter));
    assert!(check_single_change(&three, &four).is_ok());
    assert!(check_single_change(&four, &three).is_ok());
    let mut heavy = four.clone();
    heavy.members[3].weight = 2;
    assert!(check_single_change(&three, &heavy).is_err());
    let mut two_changes = four.clone();
    two_changes.members.push(member(5, MemberKind::Voter));
    assert!(check_single_change(&three, &two_changes).is_err());
    assert_eq!(
        check_single_change(&three, &three),
        Err(ConfigChangeError::NoChange)
    );
}

// ----- leadership -------------------------------------------------------

#[test]
fn promote_blocks_writes_and_hands_over() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let target = if l == 3 { 2 } else { 3 };
    let now = net.now;
    net.core(l).promote(now, target, 1000).unwrap();
    assert_eq!(
        net.core(l).propose(now, 1, vec![1]),
        Err(ProposeError::Transferring)
    );
    assert!(net.run_until(500, |n| n.reachable_leader() == Some(target)));
    // Promote to an unreachable node gives up and writes resume.
    let l = ready_leader(&mut net);
    let other = if l == 1 { 2 } else { 1 };
    net.isolated.insert(other);
    let now = net.now;
    net.core(l).promote(now, other, 150).unwrap();
    net.run(200);
    assert_eq!(net.nodes[&l].transfer_target(), None);
    let now = net.now;
    assert!(net.core(l).propose(now, 1, vec![1]).is_ok());
    assert_eq!(
        net.core(l).promote(now, 77, 100),
        Err(LeadershipError::NotEligible(77))
    );
}

#[test]
fn demote_hands_over_and_timeout_notify_respects_a_live_leader() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    net.run(100);
    let now = net.now;
    let to = net.core(l).demote(now).unwrap().expect("a successor");
    assert!(net.run_until(500, |n| n.reachable_leader() == Some(to)));
    let l = ready_leader(&mut net);
    let term = net.nodes[&l].term();
    let f = (1..=3).find(|i| *i != l).unwrap();
    let now = net.now;
    net.core(f).timeout_notify(now).unwrap();
    net.drain(f);
    net.run(50);
    assert_eq!(
        net.reachable_leader(),
        Some(l),
        "pre-vote refused while the leader is live"
    );
    assert_eq!(net.nodes[&l].term(), term);
    // With the leader really gone, timeout_notify elects a new one faster
    // than the election timeout.
    net.isolated.insert(l);
    let now = net.now;
    net.core(f).timeout_notify(now).unwrap();
    net.drain(f);
    assert_eq!(
        net.core(l).timeout_notify(now),
        Err(LeadershipError::IsLeader)
    );
    // Live-leader refusal lasts an election timeout after the last heartbeat.
    assert!(net.run_until(250, |n| n.reachable_leader().is_some_and(|x| x != l)));
}

#[test]
fn higher_priority_node_ends_up_leader() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let want = if l == 3 { 2 } else { 3 };
    let now = net.now;
    let t = net
        .core(l)
        .set_election_priority(now, want, 5)
        .unwrap()
        .ticket();
    assert!(matches!(
        wait_status(&mut net, l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    assert!(net.run_until(2000, |n| n.reachable_leader() == Some(want)));
    net.run(1000);
    assert_eq!(net.reachable_leader(), Some(want), "and stays leader");
}

/// Regression: AUTO_ELC_PRIORITY_EN = 0 was stored but ignored; with the
/// hand-over off, a higher priority changes nothing.
#[test]
fn priority_hand_over_can_be_turned_off() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    for id in 1..=3 {
        net.core(id).set_auto_priority_election(false);
    }
    let want = if l == 3 { 2 } else { 3 };
    let now = net.now;
    let t = net
        .core(l)
        .set_election_priority(now, want, 5)
        .unwrap()
        .ticket();
    assert!(matches!(
        wait_status(&mut net, l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    net.run(3000);
    assert_eq!(net.reachable_leader(), Some(l), "no hand-over");
}

// ----- minority mode --------------------------------------------------------

#[test]
fn survivor_in_minority_mode_commits_and_the_cluster_converges_after_normal() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    net.write(l, 10);
    net.run(100);
    let survivor = if l == 1 { 2 } else { 1 };
    let term = net.nodes[&survivor].term();
    for id in [1, 2, 3] {
        if id != survivor {
            net.crash(id);
        }
    }
    let now = net.now;
    assert_eq!(
        net.core(survivor)
            .set_work_mode(now, WorkMode::Minority { vote_num: 4 }),
        Err(WorkModeError::BadVoteNum {
            vote_num: 4,
            voters: 3
        })
    );
    net.core(survivor)
        .set_work_mode(now, WorkMode::Minority { vote_num: 1 })
        .unwrap();
    net.drain(survivor);
    assert_eq!(
        net.disks[&survivor].work_mode,
        WorkMode::Minority { vote_num: 1 },
        "SaveWorkMode persisted"
    );
    assert!(net.run_until(100, |n| n.nodes[&survivor].is_leader_ready()));
    assert_eq!(net.nodes[&survivor].term(), term + 1000);
    let writes = net.write(survivor, 5);
    net.run(50);
    assert!(net.nodes[&survivor].commit_index() >= writes.last().unwrap().1);
    // The minority leader does not step down without a quorum.
    net.run(1000);
    assert_eq!(net.nodes[&survivor].role(), Role::Leader);
    // The crashed nodes come back (in normal mode) and follow it.
    for id in [1, 2, 3] {
        if id != survivor {
            net.restart(id, true);
        }
    }
    net.run(300);
    let now = net.now;
    net.core(survivor)
        .set_work_mode(now, WorkMode::Normal)
        .unwrap();
    net.drain(survivor);
    let l = ready_leader(&mut net);
    let more = net.write(l, 3);
    net.run(300);
    let last = more.last().unwrap().1;
    for (id, c) in &net.nodes {
        assert!(c.commit_index() >= last, "n{id} converged");
        assert_eq!(c.entry(writes[0].1).map(|e| e.term), Some(writes[0].0));
    }
    // N2: the minority leader's entries survive the return to normal.
    assert_eq!(net.disks[&survivor].work_mode, WorkMode::Normal);
}

#[test]
fn documented_loss_writes_only_the_lost_majority_had_are_lost() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let survivor = (1..=3).find(|i| *i != l).unwrap();
    let other = (1..=3).find(|i| *i != l && *i != survivor).unwrap();
    net.run(100);
    net.isolated.insert(survivor);
    let lost = net.write(l, 4);
    net.run(100);
    let lost_index = lost.last().unwrap().1;
    assert!(
        net.nodes[&l].commit_index() >= lost_index,
        "acknowledged by the majority"
    );
    net.crash(l);
    net.crash(other);
    net.isolated.remove(&survivor);
    let now = net.now;
    net.core(survivor)
        .set_work_mode(now, WorkMode::Minority { vote_num: 1 })
        .unwrap();
    assert!(net.run_until(100, |n| n.nodes[&survivor].is_leader_ready()));
    let kept = net.write(survivor, 6);
    net.run(50);
    // L1: the survivor's log does not hold the acknowledged writes.
    assert!(net.nodes[&survivor]
        .entry(lost[0].1)
        .is_none_or(|e| e.term != lost[0].0));
    // G1: the old leader applied them: it refuses to drop them and asks to
    // be rebuilt; its commit index does not move back.
    net.restart(l, true);
    let commit_before = net.nodes[&l].commit_index();
    // N3: the other node restarts with no state machine (applied 0), so
    // nothing is committed on it: it converges to the minority leader.
    net.restart(other, false);
    net.run(1500);
    assert!(net
        .exceptions
        .iter()
        .any(|(id, e)| *id == l && matches!(e, Exception::CommittedEntryConflict { .. })));
    assert!(net.nodes[&l].commit_index() >= commit_before);
    assert_eq!(
        net.nodes[&l].entry(lost[0].1).map(|e| e.term),
        Some(lost[0].0),
        "a committed entry is never dropped by its node"
    );
    let k = kept.last().unwrap();
    assert_eq!(net.nodes[&other].entry(k.1).map(|e| e.term), Some(k.0));
    assert!(net.nodes[&other].commit_index() >= k.1);
    assert_eq!(net.nodes[&survivor].role(), Role::Leader);
}

#[test]
fn a_minority_leader_ignores_higher_terms() {
    let mut net = cluster(3);
    let l = ready_leader(&mut net);
    let now = net.now;
    net.core(l)
        .set_work_mode(now, WorkMode::Minority { vote_num: 1 })
        .unwrap();
    let term = net.nodes[&l].term();
    let now = net.now;
    net.core(l).step(
        now,
        2,
        Message::VoteRequest(VoteRequest {
            term: term + 5,
            pre_vote: false,
            last_index: 1000,
            last_term: term + 4,
            transfer: true,
        }),
    );
    assert_eq!(net.nodes[&l].role(), Role::Leader);
    assert_eq!(net.nodes[&l].term(), term);
}
