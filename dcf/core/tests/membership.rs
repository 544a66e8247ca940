//! Targeted scenario tests for membership changes, leadership transfer,
//! priority election and minority mode, on a small lossless network with
//! crashes (durable logs survive), restarts and isolation.

use dcf_core::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct Disk {
    hard: HardState,
    log: Vec<Entry>,
    applied: Index,
    work_mode: WorkMode,
    base: StreamMembers,
}

struct Net {
    nodes: BTreeMap<NodeId, StreamCore>,
    disks: BTreeMap<NodeId, Disk>,
    queue: VecDeque<Envelope>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    exceptions: Vec<(NodeId, Exception)>,
    roles: Vec<(NodeId, Role, Term)>,
    isolated: BTreeSet<NodeId>,
    /// Drop every AppendResponse (nothing commits).
    drop_acks: bool,
    now: u64,
}

fn member(i: NodeId, kind: MemberKind) -> Member {
    Member {
        node_id: i,
        ip: "127.0.0.1".into(),
        port: 1700 + i as u16,
        kind,
        initial_leader: false,
        weight: 1,
        group: 0,
        priority: 0,
    }
}

fn members(n: u32, leader: NodeId) -> StreamMembers {
    let mut m = StreamMembers::default();
    for i in 1..=n {
        let mut x = member(i, MemberKind::Voter);
        x.initial_leader = i == leader;
        m.members.push(x);
    }
    m
}

fn opts(i: NodeId) -> CoreOptions {
    let mut o = CoreOptions::new(i, 1);
    o.election_timeout_ms = 100;
    o.heartbeat_interval_ms = 20;
    o.catchup_timeout_elections = 5;
    o
}

impl Net {
    fn new(n: u32) -> Net {
        let m = members(n, 1);
        let mut net = Net {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: VecDeque::new(),
            applied: BTreeMap::new(),
            exceptions: vec![],
            roles: vec![],
            isolated: BTreeSet::new(),
            drop_acks: false,
            now: 0,
        };
        for i in 1..=n {
            net.add_node(i, m.clone());
        }
        net
    }

    /// A fresh node with an empty disk, started with `base`.
    fn add_node(&mut self, i: NodeId, base: StreamMembers) {
        self.disks.insert(
            i,
            Disk {
                hard: HardState::default(),
                log: vec![],
                applied: 0,
                work_mode: WorkMode::Normal,
                base,
            },
        );
        self.start(i, true);
    }

    fn start(&mut self, i: NodeId, keep_applied: bool) {
        let d = &self.disks[&i];
        let restored = Restored {
            hard_state: d.hard,
            first_index: 1,
            prev_term: 0,
            entries: d.log.clone(),
            applied_index: if keep_applied { d.applied } else { 0 },
            config_index: 0,
        };
        let mut core = StreamCore::new(opts(i), d.base.clone(), restored, self.now);
        core.restore_work_mode(d.work_mode);
        if !keep_applied {
            self.disks.get_mut(&i).unwrap().applied = 0;
            self.applied.remove(&i);
        }
        self.nodes.insert(i, core);
    }

    fn crash(&mut self, i: NodeId) {
        self.nodes.remove(&i);
    }

    fn core(&mut self, i: NodeId) -> &mut StreamCore {
        self.nodes.get_mut(&i).unwrap()
    }

    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(core) = self.nodes.get_mut(&id) else {
                return;
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                let now = self.now;
                match a {
                    Action::Send(env) => self.queue.push_back(env),
                    Action::SaveHardState(hs) => self.disks.get_mut(&id).unwrap().hard = hs,
                    Action::SaveWorkMode(m) => self.disks.get_mut(&id).unwrap().work_mode = m,
                    Action::TruncateLog { from } => {
                        self.disks
                            .get_mut(&id)
                            .unwrap()
                            .log
                            .truncate((from - 1) as usize);
                    }
                    Action::AppendLog(es) => {
                        let last = es.last().unwrap().clone();
                        self.disks.get_mut(&id).unwrap().log.extend(es);
                        self.core(id).on_persisted(now, last.index, last.term);
                    }
                    Action::Apply(es) => {
                        let last = es.last().unwrap().index;
                        let seen = self.applied.entry(id).or_default();
                        assert_eq!(
                            seen.last()
                                .map(|e| e.index)
                                .unwrap_or(self.disks[&id].applied)
                                + 1,
                            es[0].index,
                            "n{id} applies in order"
                        );
                        seen.extend(es);
                        self.disks.get_mut(&id).unwrap().applied = last;
                        self.core(id).on_applied(last);
                    }
                    Action::RoleChanged { role, term, .. } => self.roles.push((id, role, term)),
                    Action::Exception(e) => self.exceptions.push((id, e)),
                    Action::ReadReady { .. } | Action::ReadFailed { .. } => {}
                    Action::SendWithStoredEntries { mut env, from, to } => {
                        if let Some(entries) = env.msg.entries_mut() {
                            let log = &self.disks[&id].log;
                            *entries = log[(from - 1) as usize..to as usize].to_vec();
                        }
                        self.queue.push_back(env);
                    }
                    a @ (Action::SendSnapshot { .. }
                    | Action::CompactLog { .. }
                    | Action::ResetLog { .. }) => {
                        panic!("n{id}: unexpected {a:?} (these tests never compact)")
                    }
                }
            }
        }
    }

    fn step_ms(&mut self) {
        self.now += 1;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            let now = self.now;
            self.core(*id).tick(now);
            self.drain(*id);
        }
        while let Some(env) = self.queue.pop_front() {
            if self.isolated.contains(&env.from)
                || self.isolated.contains(&env.to)
                || !self.nodes.contains_key(&env.to)
                || (self.drop_acks && matches!(env.msg, Message::AppendResponse(_)))
            {
                continue;
            }
            let now = self.now;
            self.core(env.to).step(now, env.from, env.msg);
            self.drain(env.to);
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step_ms();
        }
    }

    fn run_until(&mut self, ms: u64, mut f: impl FnMut(&Net) -> bool) -> bool {
        for _ in 0..ms {
            if f(self) {
                return true;
            }
            self.step_ms();
        }
        f(self)
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader && !self.isolated.contains(&n.node_id()))
            .max_by_key(|n| n.term())
            .map(|n| n.node_id())
    }

    fn ready_leader(&mut self) -> NodeId {
        assert!(
            self.run_until(3000, |n| n
                .leader()
                .is_some_and(|l| n.nodes[&l].is_leader_ready())),
            "a leader gets ready"
        );
        self.leader().unwrap()
    }

    fn write(&mut self, at: NodeId, n: u64) -> Vec<(Term, Index)> {
        let mut out = vec![];
        for k in 0..n {
            let now = self.now;
            out.push(self.core(at).propose(now, k, vec![k as u8]).unwrap());
        }
        self.drain(at);
        out
    }

    fn wait_status(&mut self, at: NodeId, ticket: u64, ms: u64) -> ConfigChangeStatus {
        self.run_until(ms, |n| {
            matches!(
                n.nodes[&at].config_change_status(ticket),
                ConfigChangeStatus::Committed { .. } | ConfigChangeStatus::Failed(_)
            )
        });
        self.nodes[&at].config_change_status(ticket)
    }
}

fn ids(m: &StreamMembers) -> Vec<NodeId> {
    m.ids().collect()
}

// ----- membership -------------------------------------------------------

#[test]
fn added_voter_catches_up_before_it_counts_and_second_change_is_refused() {
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
    let st = net.wait_status(l, ticket, 2000);
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
    net.write(l, 30);
    net.add_node(4, members(3, 1));
    net.isolated.insert(4);
    let t = net
        .core(l)
        .add_member(0, member(4, MemberKind::Voter))
        .unwrap()
        .ticket();
    let st = net.wait_status(l, t, 2000);
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
    let mut net = Net::new(4);
    let l = net.ready_leader();
    let victim = if l == 4 { 3 } else { 4 };
    net.isolated.insert(victim);
    let t = net.core(l).remove_member(0, victim).unwrap().ticket();
    let st = net.wait_status(l, t, 1000);
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
    assert_eq!(net.leader(), Some(l));
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
    let term = net.nodes[&l].term();
    let now = net.now;
    let t = net.core(l).remove_member(now, l).unwrap().ticket();
    net.drain(l);
    assert!(net.run_until(1000, |n| n.nodes[&l].role() != Role::Leader));
    assert!(matches!(
        net.nodes[&l].config_change_status(t),
        ConfigChangeStatus::Committed { .. }
    ));
    let nl = net.ready_leader();
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
    let mut net = Net::new(4);
    let l = net.ready_leader();
    let other = if l == 4 { 3 } else { 4 };
    let now = net.now;
    let t = net
        .core(l)
        .change_member_role(now, other, MemberKind::Passive)
        .unwrap()
        .ticket();
    assert!(matches!(
        net.wait_status(l, t, 1000),
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
        net.wait_status(l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    assert_eq!(
        net.nodes[&l].members().get(other).unwrap().kind,
        MemberKind::Voter
    );
}

#[test]
fn no_change_before_the_leader_commits_an_entry_of_its_term() {
    let mut net = Net::new(3);
    net.drop_acks = true;
    let mut checked = false;
    for _ in 0..3000 {
        net.step_ms();
        if let Some(l) = net.leader() {
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
    let f = if net.leader() == Some(1) { 2 } else { 1 };
    let now = net.now;
    assert!(matches!(
        net.core(f).remove_member(now, 3),
        Err(ConfigChangeError::NotLeader { .. })
    ));
}

#[test]
fn a_truncated_configuration_entry_rolls_the_configuration_back() {
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
        .leader()
        .is_some_and(|x| x != l && n.nodes[&x].is_leader_ready())));
    let nl = net.leader().unwrap();
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
    let target = if l == 3 { 2 } else { 3 };
    let now = net.now;
    net.core(l).promote(now, target, 1000).unwrap();
    assert_eq!(
        net.core(l).propose(now, 1, vec![1]),
        Err(ProposeError::Transferring)
    );
    assert!(net.run_until(500, |n| n.leader() == Some(target)));
    // Promote to an unreachable node gives up and writes resume.
    let l = net.ready_leader();
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
    net.run(100);
    let now = net.now;
    let to = net.core(l).demote(now).unwrap().expect("a successor");
    assert!(net.run_until(500, |n| n.leader() == Some(to)));
    let l = net.ready_leader();
    let term = net.nodes[&l].term();
    let f = (1..=3).find(|i| *i != l).unwrap();
    let now = net.now;
    net.core(f).timeout_notify(now).unwrap();
    net.drain(f);
    net.run(50);
    assert_eq!(
        net.leader(),
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
    assert!(net.run_until(250, |n| n.leader().is_some_and(|x| x != l)));
}

#[test]
fn higher_priority_node_ends_up_leader() {
    let mut net = Net::new(3);
    let l = net.ready_leader();
    let want = if l == 3 { 2 } else { 3 };
    let now = net.now;
    let t = net
        .core(l)
        .set_election_priority(now, want, 5)
        .unwrap()
        .ticket();
    assert!(matches!(
        net.wait_status(l, t, 1000),
        ConfigChangeStatus::Committed { .. }
    ));
    assert!(net.run_until(2000, |n| n.leader() == Some(want)));
    net.run(1000);
    assert_eq!(net.leader(), Some(want), "and stays leader");
}

// ----- minority mode --------------------------------------------------------

#[test]
fn survivor_in_minority_mode_commits_and_the_cluster_converges_after_normal() {
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
            net.start(id, true);
        }
    }
    net.run(300);
    let now = net.now;
    net.core(survivor)
        .set_work_mode(now, WorkMode::Normal)
        .unwrap();
    net.drain(survivor);
    let l = net.ready_leader();
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
    net.start(l, true);
    let commit_before = net.nodes[&l].commit_index();
    // N3: the other node restarts with no state machine (applied 0), so
    // nothing is committed on it: it converges to the minority leader.
    net.start(other, false);
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
    let mut net = Net::new(3);
    let l = net.ready_leader();
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
