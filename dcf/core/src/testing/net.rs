//! An in-memory network of cores on a shared, stepped clock.

use super::disk::Disk;
use super::fixtures;
use crate::config::{NodeId, Role, StreamMembers};
use crate::stream::{Action, CoreOptions, Exception, StreamCore};
use crate::types::{Entry, Envelope, Index, Message, Term};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How the nodes' disks make appended entries durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Durable as soon as they are written.
    Instant,
    /// Written to the unsynced tail; a sync that many milliseconds after
    /// the first unsynced write makes the whole tail durable (group commit).
    SyncAfter(u64),
    /// Written to the unsynced tail until [`Net::sync`].
    Manual,
    /// Durable at once and not kept: no restarts, no reads from storage
    /// (for benchmarks, whose logs would otherwise fill the memory).
    Discard,
}

/// An append a node sent, as recorded when [`Net::record_appends`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentAppend {
    /// When it was sent (ms).
    pub at: u64,
    pub from: NodeId,
    pub to: NodeId,
    /// How many entries it carried (0: a heartbeat).
    pub entries: usize,
    /// The leader's heartbeat round.
    pub seq: u64,
}

/// A message on its way.
#[derive(Debug)]
struct InFlight {
    due: u64,
    env: Envelope,
}

/// Cores of one stream connected by an in-memory network.
///
/// Each [`Net::step`] advances the clock by `step_ms`, ticks every running
/// node, then delivers every message that is due (in the order sent; with
/// no delay, messages sent while delivering are delivered in the same
/// step). Actions are carried out at once: messages go out, entries are
/// written to the node's [`Disk`] (made durable as [`Net::storage`] says),
/// committed entries are applied and recorded.
pub struct Net {
    /// The running nodes (a crashed node is absent until restarted).
    pub nodes: BTreeMap<NodeId, StreamCore>,
    pub disks: BTreeMap<NodeId, Disk>,
    pub now: u64,
    /// Simulated milliseconds per step.
    pub step_ms: u64,
    /// One-way delay of every message (ms); see [`Net::set_delay`].
    pub delay_ms: u64,
    pub storage: Storage,
    /// Nodes whose traffic (both ways) is dropped.
    pub isolated: BTreeSet<NodeId>,
    /// Messages for which this returns true are dropped.
    pub drop_if: Option<fn(&Envelope) -> bool>,
    /// Panic on `CompactLog`, `ResetLog` and `SendSnapshot` (for scenarios
    /// that must never compact).
    pub forbid_checkpoints: bool,
    /// Record the committed entries each node applies in `applied`.
    pub record_applied: bool,
    /// Record every append sent in `appends`.
    pub record_appends: bool,

    /// Entries each node applied, in order (since its last restart
    /// without its applied index).
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Reads confirmed: (node, ctx, index).
    pub reads: Vec<(NodeId, u64, Index)>,
    pub failed_reads: Vec<(NodeId, u64)>,
    pub exceptions: Vec<(NodeId, Exception)>,
    /// Every role change: (node, role, term).
    pub roles: Vec<(NodeId, Role, Term)>,
    pub appends: Vec<SentAppend>,
    /// Checkpoint transfers the leaders asked for: (from, to).
    pub snapshot_requests: Vec<(NodeId, NodeId)>,

    options: Box<dyn Fn(NodeId) -> CoreOptions>,
    in_flight: VecDeque<InFlight>,
    /// When each node's disk syncs next (with [`Storage::SyncAfter`]).
    syncs: BTreeMap<NodeId, u64>,
    /// Loss probability, delay jitter and their random source.
    loss: f64,
    max_delay_ms: u64,
    rng: SmallRng,
}

impl Net {
    /// `n` fresh voters (node 1 the configured LEADER) with options from
    /// `options`, advancing `step_ms` per step.
    pub fn new(n: u32, step_ms: u64, options: impl Fn(NodeId) -> CoreOptions + 'static) -> Net {
        Net::with_members(fixtures::members(n, 1), step_ms, options)
    }

    /// Fresh nodes for every member of `members`, all started with it.
    pub fn with_members(
        members: StreamMembers,
        step_ms: u64,
        options: impl Fn(NodeId) -> CoreOptions + 'static,
    ) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            now: 0,
            step_ms,
            delay_ms: 0,
            storage: Storage::Instant,
            isolated: BTreeSet::new(),
            drop_if: None,
            forbid_checkpoints: false,
            record_applied: true,
            record_appends: false,
            applied: BTreeMap::new(),
            reads: Vec::new(),
            failed_reads: Vec::new(),
            exceptions: Vec::new(),
            roles: Vec::new(),
            appends: Vec::new(),
            snapshot_requests: Vec::new(),
            options: Box::new(options),
            in_flight: VecDeque::new(),
            syncs: BTreeMap::new(),
            loss: 0.0,
            max_delay_ms: 0,
            rng: SmallRng::seed_from_u64(0),
        };
        for id in members.ids().collect::<Vec<_>>() {
            net.add_node(id, members.clone());
        }
        net
    }

    /// Drops each message with probability `loss`, drawing from a random
    /// source seeded with `seed` (printed, to replay a failure).
    pub fn set_loss(&mut self, loss: f64, seed: u64) {
        eprintln!("testing::Net: message loss {loss} with seed {seed}");
        self.loss = loss;
        self.rng = SmallRng::seed_from_u64(seed);
    }

    /// Delays each message by `min_ms..=max_ms` (uniformly drawn from the
    /// random source of [`Net::set_loss`] when the two differ).
    pub fn set_delay(&mut self, min_ms: u64, max_ms: u64) {
        self.delay_ms = min_ms;
        self.max_delay_ms = max_ms.max(min_ms);
    }

    /// A fresh node with an empty disk, started with `base`.
    pub fn add_node(&mut self, id: NodeId, base: StreamMembers) {
        self.disks.insert(id, Disk::new(base));
        self.restart(id, true);
    }

    /// Starts `id` from its disk: with the host's applied index
    /// (`keep_applied`), or with none (the host rebuilds its state machine
    /// from the log, and what it applied before is forgotten).
    pub fn restart(&mut self, id: NodeId, keep_applied: bool) {
        let disk = self.disks.get_mut(&id).expect("a node with a disk");
        if !keep_applied {
            disk.applied = 0;
            self.applied.remove(&id);
        }
        let mut core = StreamCore::new(
            (self.options)(id),
            disk.base.clone(),
            disk.restored(disk.applied, 0),
            self.now,
        );
        core.restore_work_mode(disk.work_mode);
        self.nodes.insert(id, core);
    }

    /// Stops `id` at once: its unsynced writes are lost, messages to it are
    /// dropped until it restarts.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.syncs.remove(&id);
        if let Some(d) = self.disks.get_mut(&id) {
            d.crash();
        }
    }

    /// The core of a running node.
    pub fn core(&mut self, id: NodeId) -> &mut StreamCore {
        self.nodes.get_mut(&id).expect("a running node")
    }

    /// Makes node `id`'s written entries durable and tells its core.
    pub fn sync(&mut self, id: NodeId) {
        self.syncs.remove(&id);
        let synced = self.disks.get_mut(&id).and_then(|d| d.sync());
        if let (Some((index, term)), Some(core)) = (synced, self.nodes.get_mut(&id)) {
            core.on_persisted(self.now, index, term);
            self.drain(id);
        }
    }

    /// Carries out a node's actions until it has none left.
    pub fn drain(&mut self, id: NodeId) {
        loop {
            let Some(core) = self.nodes.get_mut(&id) else {
                return;
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                self.carry_out(id, a);
            }
        }
    }

    fn carry_out(&mut self, id: NodeId, action: Action) {
        let now = self.now;
        if let Action::Send(env) = action {
            return self.send(env);
        }
        let disk = self.disks.get_mut(&id).expect("a node with a disk");
        match action {
            Action::Send(_) => {}
            Action::SaveHardState(hs) => disk.hard = hs,
            Action::SaveWorkMode(m) => disk.work_mode = m,
            Action::TruncateLog { from } => disk.truncate_from(from),
            Action::AppendLog(entries) => {
                let Some(last) = entries.last().map(|e| (e.index, e.term)) else {
                    return;
                };
                match self.storage {
                    Storage::Discard => {
                        self.core(id).on_persisted(now, last.0, last.1);
                    }
                    Storage::Instant => {
                        disk.append(entries);
                        disk.sync();
                        self.core(id).on_persisted(now, last.0, last.1);
                    }
                    Storage::SyncAfter(ms) => {
                        disk.append(entries);
                        self.syncs.entry(id).or_insert(now + ms);
                    }
                    Storage::Manual => disk.append(entries),
                }
            }
            Action::Apply(entries) => {
                let Some(last) = entries.last().map(|e| e.index) else {
                    return;
                };
                assert_eq!(entries[0].index, disk.applied + 1, "n{id} applies in order");
                disk.applied = last;
                if self.record_applied {
                    self.applied.entry(id).or_default().extend(entries);
                }
                self.core(id).on_applied(last);
            }
            Action::ReadReady { ctx, index } => self.reads.push((id, ctx, index)),
            Action::ReadFailed { ctx } => self.failed_reads.push((id, ctx)),
            Action::RoleChanged { role, term, .. } => self.roles.push((id, role, term)),
            Action::Exception(e) => self.exceptions.push((id, e)),
            Action::SendWithStoredEntries { mut env, from, to } => {
                assert!(
                    disk.fill(&mut env, from, to),
                    "n{id} asks to send entries {from}..={to} its disk does not hold"
                );
                self.send(env);
            }
            a @ (Action::SendSnapshot { .. }
            | Action::CompactLog { .. }
            | Action::ResetLog { .. })
                if self.forbid_checkpoints =>
            {
                panic!("n{id}: unexpected {a:?} (this scenario never compacts)")
            }
            Action::SendSnapshot { to } => self.snapshot_requests.push((id, to)),
            Action::CompactLog { first_kept } => {
                // Storage makes the log durable before it moves its first index.
                let synced = disk.sync();
                if let Err(e) = disk.compact_to(first_kept) {
                    panic!("n{id}: {e}");
                }
                if let Some((index, term)) = synced {
                    self.core(id).on_persisted(now, index, term);
                }
            }
            Action::ResetLog { last, last_term } => disk.reset(last, last_term),
        }
    }

    fn send(&mut self, env: Envelope) {
        if self.record_appends {
            if let Message::Append(a) = &env.msg {
                self.appends.push(SentAppend {
                    at: self.now,
                    from: env.from,
                    to: env.to,
                    entries: a.entries.len(),
                    seq: a.seq,
                });
            }
        }
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        let delay = if self.max_delay_ms > self.delay_ms {
            self.rng.gen_range(self.delay_ms..=self.max_delay_ms)
        } else {
            self.delay_ms
        };
        let due = self.now + delay;
        // Kept in order of due time, and of sending among equal ones
        // (usually that is the end: the clock only moves forward).
        if self.in_flight.back().is_none_or(|m| m.due <= due) {
            self.in_flight.push_back(InFlight { due, env });
        } else {
            let pos = self.in_flight.partition_point(|m| m.due <= due);
            self.in_flight.insert(pos, InFlight { due, env });
        }
    }

    /// Delivers every message due by now (and those they cause that are
    /// due by now too), dropping those of isolated or stopped nodes.
    pub fn deliver(&mut self) {
        while self.in_flight.front().is_some_and(|m| m.due <= self.now) {
            let Some(InFlight { env, .. }) = self.in_flight.pop_front() else {
                return;
            };
            if self.isolated.contains(&env.from)
                || self.isolated.contains(&env.to)
                || self.drop_if.is_some_and(|f| f(&env))
            {
                continue;
            }
            let now = self.now;
            let Some(core) = self.nodes.get_mut(&env.to) else {
                continue;
            };
            core.step(now, env.from, env.msg);
            self.drain(env.to);
        }
    }

    /// Ticks node `id` and carries out what it does.
    pub fn tick(&mut self, id: NodeId) {
        let now = self.now;
        if let Some(core) = self.nodes.get_mut(&id) {
            core.tick(now);
            self.drain(id);
        }
    }

    /// One step: the clock advances, due syncs complete, every node ticks,
    /// then the due messages are delivered.
    pub fn step(&mut self) {
        self.now += self.step_ms;
        let due: Vec<NodeId> = self
            .syncs
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.sync(id);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
        self.deliver();
    }

    /// Steps for `ms` of simulated time.
    pub fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until `done` holds, for at most `ms`; true if it held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + ms;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Carries out every node's pending actions and delivers messages until
    /// the network is quiet, without advancing the clock.
    pub fn settle(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
        while !self.in_flight.is_empty() {
            let next = self.in_flight.front().map_or(self.now, |m| m.due);
            self.now = self.now.max(next);
            self.deliver();
        }
    }

    /// Appends a client entry at `id`, which must be a ready leader.
    pub fn propose(&mut self, id: NodeId, key: u64, data: Vec<u8>) -> (Term, Index) {
        let now = self.now;
        let r = self
            .core(id)
            .propose(now, key, data)
            .unwrap_or_else(|e| panic!("n{id} refused a proposal: {e}"));
        self.drain(id);
        r
    }

    /// `n` proposals at `id` (keys 0..n, one-byte data), sent together.
    pub fn write(&mut self, id: NodeId, n: u64) -> Vec<(Term, Index)> {
        let now = self.now;
        let out = (0..n)
            .map(|k| {
                self.core(id)
                    .propose(now, k, vec![k as u8])
                    .unwrap_or_else(|e| panic!("n{id} refused a proposal: {e}"))
            })
            .collect();
        self.drain(id);
        out
    }

    /// Every running node that believes it leads, with its term.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.node_id(), n.term()))
            .collect()
    }

    /// The leader with the lowest id, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders().first().map(|(n, _)| *n)
    }

    /// The leader of the newest term, if any.
    pub fn newest_leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|(_, t)| *t)
            .map(|(n, _)| n)
    }

    /// The leader of the newest term among the nodes that are not
    /// isolated, if any.
    pub fn reachable_leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .filter(|(n, _)| !self.isolated.contains(n))
            .max_by_key(|(_, t)| *t)
            .map(|(n, _)| n)
    }

    /// Steps until a reachable leader is ready (at most `ms`); returns it.
    pub fn ready_leader(&mut self, ms: u64) -> Option<NodeId> {
        self.run_until(ms, |n| {
            n.reachable_leader()
                .is_some_and(|l| n.nodes[&l].is_leader_ready())
        });
        self.reachable_leader()
            .filter(|l| self.nodes[l].is_leader_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::options;

    /// Long timeouts: nothing happens unless a test makes it.
    fn quiet(n: u32) -> Net {
        Net::new(n, 1, |i| options(i, 10_000, 1_000))
    }

    #[test]
    fn messages_arrive_after_their_delay() {
        let mut net = quiet(3);
        net.set_delay(3, 3);
        net.core(1).timeout_notify(0).unwrap();
        net.drain(1);
        // Pre-votes arrive at 3 ms, the answers at 6 ms.
        net.run(5);
        assert_eq!(net.nodes[&1].role(), Role::PreCandidate);
        net.run(1);
        assert_eq!(net.nodes[&1].role(), Role::Candidate);
    }

    #[test]
    fn a_crash_loses_the_writes_not_yet_synced() {
        let mut net = quiet(3);
        net.storage = Storage::SyncAfter(5);
        net.core(1).timeout_notify(0).unwrap();
        net.drain(1);
        assert_eq!(net.ready_leader(100), Some(1));
        let synced = net.disks[&2].durable_index();
        net.storage = Storage::Manual;
        net.write(1, 3);
        net.run(2);
        assert_eq!(net.disks[&2].last_index(), synced + 3);
        assert_eq!(net.nodes[&1].commit_index(), synced, "nothing acknowledged");
        net.crash(2);
        net.restart(2, true);
        assert_eq!(net.nodes[&2].last_index(), synced);
        net.sync(3);
        net.run(2);
        assert_eq!(
            net.nodes[&1].commit_index(),
            synced,
            "the leader's own copy is not durable"
        );
        net.sync(1);
        assert_eq!(
            net.nodes[&1].commit_index(),
            synced + 3,
            "durable on nodes 1 and 3"
        );
    }

    #[test]
    fn loss_follows_its_seed() {
        let run = |loss: f64, seed: u64| {
            let mut net = Net::new(3, 1, |i| options(i, 50, 10));
            net.set_loss(loss, seed);
            net.run(2000);
            net.roles
        };
        assert_eq!(run(0.5, 7), run(0.5, 7));
        let all_lost = run(1.0, 7);
        assert!(
            all_lost.iter().all(|(_, r, _)| *r != Role::Leader),
            "nobody is elected when every message is lost: {all_lost:?}"
        );
    }
}
