//! The linearizability search (Wing & Gong, with Lowe's memoisation).
//!
//! Per independent part, the completed operations' invocation and completion
//! events form a doubly linked list in real-time order. The search
//! linearizes any call that precedes the first remaining completion, lifts it
//! out of the list, and backtracks when a completion is reached with no call
//! that the model accepts. Visited (linearized set, state) pairs are
//! memoised, keyed by a Zobrist hash of the set, so no configuration is
//! explored twice.
//!
//! Indeterminate operations have no completion: they live in a second list
//! and may be linearized whenever invoked before the first remaining
//! completion, or never (the search succeeds once every completed operation
//! is linearized). A blind indeterminate write is only worth linearizing
//! right before an operation that observes it; the search enforces that,
//! which keeps crashed writes from multiplying the search space.
//!
//! Limits: a deadline, a cancellation flag shared by parallel parts, and a
//! memory budget for the memo tables. Hitting one yields `unknown`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::CheckError;
use crate::explain::{self, Explanation};
use crate::history::History;
use crate::models::{Compiled, Model, Values};
use crate::result::{CheckResult, KeyResult, Validity};

/// Options for [`check`].
#[derive(Debug, Clone)]
pub struct LinearOptions {
    /// Split the history by key and check parts independently (only for
    /// models whose keys are independent).
    pub split_by_key: bool,
    /// Give up with `unknown` after this long (wall clock, all parts).
    pub timeout: Option<Duration>,
    /// Give up with `unknown` when the memo tables of all running parts
    /// exceed this many bytes.
    pub memory_budget: usize,
    /// Build an explanation for a non-linearizable part.
    pub explain: bool,
    /// Time limit of the explanation, which runs after the verdict and
    /// never delays or changes it.
    pub explain_timeout: Duration,
    /// Check every part even after one is refuted (otherwise the first
    /// refutation stops the rest, whose verdicts stay unknown).
    pub all_keys: bool,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            split_by_key: true,
            timeout: None,
            memory_budget: 1 << 30,
            explain: true,
            explain_timeout: Duration::from_secs(10),
            all_keys: false,
        }
    }
}

/// One operation of a part, ready for the search.
#[derive(Debug, Clone)]
pub struct PartOp<O> {
    /// The compiled operation.
    pub op: O,
    /// Position of the invocation in the history.
    pub invoke: usize,
    /// Position of the completion, `None` if indeterminate.
    pub complete: Option<usize>,
    /// Whether the model calls it blind.
    pub blind: bool,
    /// Whether it is completed and never changes the state.
    pub read_only: bool,
    /// Whether the model calls it monotone.
    pub monotone: bool,
}

impl<O> PartOp<O> {
    fn determinate(&self) -> bool {
        self.complete.is_some()
    }
}

/// A part of a history: the operations on one key (or all of them).
#[derive(Debug, Clone)]
pub struct Part<O> {
    /// The key, as text.
    pub key: Option<String>,
    /// Operations in invocation order.
    pub ops: Vec<PartOp<O>>,
}

/// The parts of a history and its number of client operations.
pub type Partitioned<O> = (Vec<Part<O>>, usize);

/// Memo: set hash → (linearized set, state) entries with that hash.
type Memo<S> = HashMap<u64, Vec<(Box<[u64]>, S)>, BuildHasherDefault<IdHasher>>;

/// Compile a history for a model and split it into parts.
pub fn partition<M: Model>(
    model: &M,
    history: &History,
    split_by_key: bool,
    values: &mut Values,
) -> Result<Partitioned<M::Op>, CheckError> {
    let pairs = history.pairs()?;
    let mut index: HashMap<Option<String>, usize> = HashMap::new();
    let mut parts: Vec<Part<M::Op>> = Vec::new();
    let split = split_by_key && model.splittable();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let complete = pair.complete.map(|c| &history.ops[c]);
        let outcome = history.outcome(pair);
        let (op, determinate) = match model.compile(invoke, outcome, complete, values)? {
            Compiled::Skip => continue,
            Compiled::Determinate(op) => (op, true),
            Compiled::Indeterminate(op) => (op, false),
        };
        let key = if split {
            invoke.key.as_ref().map(|k| match k {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        } else {
            None
        };
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            parts.push(Part {
                key,
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        let blind = model.is_blind(&op);
        let read_only = determinate && model.is_read_only(&op);
        let monotone = model.is_monotone(&op);
        parts[slot].ops.push(PartOp {
            op,
            invoke: pair.invoke,
            complete: if determinate { pair.complete } else { None },
            blind,
            read_only,
            monotone,
        });
    }
    Ok((parts, pairs.len()))
}

/// Shared limits of one check.
pub struct Limits {
    /// When to give up.
    pub deadline: Option<Instant>,
    /// Set to stop every part (timeout elsewhere, or an invalid part found).
    pub cancel: AtomicBool,
    /// Why the parts were stopped, as the first to stop them said.
    pub cancelled_because: std::sync::OnceLock<String>,
    /// Bytes held by all memo tables.
    pub memory: AtomicUsize,
    /// The budget for `memory`.
    pub budget: usize,
}

impl Limits {
    /// Limits with a timeout from now and a memory budget.
    pub fn new(timeout: Option<Duration>, budget: usize) -> Limits {
        Limits {
            deadline: timeout.map(|t| Instant::now() + t),
            cancel: AtomicBool::new(false),
            cancelled_because: std::sync::OnceLock::new(),
            memory: AtomicUsize::new(0),
            budget,
        }
    }

    /// Stops every part, recording why (the first reason wins).
    pub fn stop_all(&self, why: &str) {
        let _ = self.cancelled_because.set(why.to_string());
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// What a part stopped by [`Limits::stop_all`] says about itself.
    fn not_checked(&self) -> String {
        format!(
            "not checked: {}",
            self.cancelled_because
                .get()
                .map_or("cancelled", String::as_str)
        )
    }
}

/// The longest linearizable prefix the search found, for explanations.
#[derive(Debug, Clone)]
pub struct Failure<S> {
    /// Part-local indices of the linearized ops, in order, with the state after each.
    pub prefix: Vec<(usize, S)>,
    /// Distinct states reached by prefixes of that length (the prefix's own first).
    pub states: Vec<S>,
    /// The op (part-local index) whose completion no linearization could pass.
    pub failing: usize,
}

/// The verdict on one part.
#[derive(Debug, Clone)]
pub enum Outcome<S> {
    /// Linearizable.
    Valid,
    /// Not linearizable; with the failure if recorded.
    Invalid(Option<Failure<S>>),
    /// Gave up, with the reason.
    Unknown(String),
}

/// A fast hasher for states and memo keys (hashing is on the hot path; no
/// adversary controls these keys).
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

fn hash_of<T: Hash>(v: &T) -> u64 {
    let mut h = FastHasher::default();
    v.hash(&mut h);
    h.finish()
}

/// A per-op random number; XOR over a set gives an order-free set hash.
fn zobrist(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Passes a precomputed u64 through as the hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// Scanning completed ops' calls; the node to look at.
    Main(u32),
    /// Scanning indeterminate ops; the node to look at.
    Info(u32),
    /// At the start of a level: linearize a fitting read first, if any.
    Fresh,
    /// No alternatives at this level (it was a forced read).
    Exhausted,
}

struct Frame<S> {
    op: u32,
    state: S,
    hash: u64,
    must_observe: bool,
    forced: bool,
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [PartOp<M::Op>],
    limits: &'a Limits,
    /// Main list: node 0 is the head, op i has call node 2i+1 and return node 2i+2.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Indeterminate list: node 0 is the head, op i is node i+1.
    inext: Vec<u32>,
    iprev: Vec<u32>,
    bits: Vec<u64>,
    cache: Memo<M::State>,
    memory: usize,
    reported_memory: usize,
    /// The loop's own state between slices (`None` once finished).
    walk: Option<Walk<M::State>>,
}

/// Everything the search loop keeps, so a search can stop after a slice
/// of steps and resume later (parts are interleaved; see [`check_parts`]).
struct Walk<S> {
    record: bool,
    remaining: usize,
    total: usize,
    zob: Vec<u64>,
    state: S,
    set_hash: u64,
    must_observe: bool,
    stack: Vec<Frame<S>>,
    cursor: Cursor,
    bound: usize,
    best: Option<Failure<S>>,
    best_len: usize,
    steps: u64,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, ops: &'a [PartOp<M::Op>], limits: &'a Limits, record: bool) -> Self {
        let n = ops.len();
        let mut events: Vec<(usize, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            if let Some(c) = op.complete {
                events.push((op.invoke, 2 * i as u32 + 1));
                events.push((c, 2 * i as u32 + 2));
            }
        }
        events.sort_unstable();
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = HEAD;
        for &(_, node) in &events {
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        let mut inext = vec![NIL; n + 1];
        let mut iprev = vec![NIL; n + 1];
        let mut last = HEAD;
        for (i, op) in ops.iter().enumerate() {
            if !op.determinate() {
                let node = i as u32 + 1;
                inext[last as usize] = node;
                iprev[node as usize] = last;
                last = node;
            }
        }
        let remaining = ops.iter().filter(|o| o.determinate()).count();
        let walk = Walk {
            record,
            remaining,
            total: remaining,
            zob: (0..n).map(zobrist).collect(),
            state: model.init(),
            set_hash: 0,
            must_observe: false,
            stack: Vec::new(),
            cursor: Cursor::Fresh,
            bound: usize::MAX,
            best: None,
            best_len: 0,
            steps: 0,
        };
        Search {
            model,
            ops,
            limits,
            next,
            prev,
            inext,
            iprev,
            bits: vec![0; n.div_ceil(64)],
            cache: HashMap::default(),
            memory: 0,
            reported_memory: 0,
            walk: Some(walk),
        }
    }

    fn unlink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = n;
        if n != NIL {
            prev[n as usize] = p;
        }
    }

    fn relink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = x;
        if n != NIL {
            prev[n as usize] = x;
        }
    }

    fn lift(&mut self, i: usize) {
        if self.ops[i].determinate() {
            Self::unlink(&mut self.next, &mut self.prev, 2 * i as u32 + 1);
            Self::unlink(&mut self.next, &mut self.prev, 2 * i as u32 + 2);
        } else {
            Self::unlink(&mut self.inext, &mut self.iprev, i as u32 + 1);
        }
        self.bits[i / 64] |= 1 << (i % 64);
    }

    fn unlift(&mut self, i: usize) {
        if self.ops[i].determinate() {
            Self::relink(&mut self.next, &mut self.prev, 2 * i as u32 + 2);
            Self::relink(&mut self.next, &mut self.prev, 2 * i as u32 + 1);
        } else {
            Self::relink(&mut self.inext, &mut self.iprev, i as u32 + 1);
        }
        self.bits[i / 64] &= !(1 << (i % 64));
    }

    fn node_op(node: u32) -> usize {
        ((node - 1) / 2) as usize
    }

    fn is_call(node: u32) -> bool {
        node & 1 == 1
    }

    /// History position of the first remaining completion (`usize::MAX` if none).
    fn first_return(&self) -> (usize, Option<usize>) {
        let mut n = self.next[HEAD as usize];
        while n != NIL {
            if !Self::is_call(n) {
                let op = Self::node_op(n);
                return (self.ops[op].complete.unwrap_or(usize::MAX), Some(op));
            }
            n = self.next[n as usize];
        }
        (usize::MAX, None)
    }

    /// Looks at the completed read-only ops that can be linearized now.
    /// `Ok(Some(i))`: op i fits `state` (linearize it without branching).
    /// `Err(())`: some read can never fit any more, because no non-monotone
    /// op can come before its completion (a dead end).
    fn fitting_read(&self, state: &M::State) -> Result<Option<usize>, ()> {
        // Completions of reads that can be linearized now bound the walk below.
        let mut horizon = 0;
        let mut n = self.next[HEAD as usize];
        while n != NIL && Self::is_call(n) {
            let o = &self.ops[Self::node_op(n)];
            if o.read_only {
                horizon = horizon.max(o.complete.unwrap_or(0));
            }
            n = self.next[n as usize];
        }
        if horizon == 0 {
            return Ok(None);
        }
        // Invocation of the first op that could reset the state.
        let mut reset = usize::MAX;
        let mut n = self.next[HEAD as usize];
        while n != NIL {
            if Self::is_call(n) {
                if self.ops[Self::node_op(n)].invoke > horizon {
                    break;
                }
                let o = &self.ops[Self::node_op(n)];
                if !o.monotone {
                    reset = o.invoke;
                    break;
                }
            }
            n = self.next[n as usize];
        }
        let mut m = self.inext[HEAD as usize];
        while m != NIL {
            let o = &self.ops[(m - 1) as usize];
            if o.invoke >= reset {
                break;
            }
            if !o.monotone {
                reset = o.invoke;
                break;
            }
            m = self.inext[m as usize];
        }
        let mut n = self.next[HEAD as usize];
        while n != NIL && Self::is_call(n) {
            let i = Self::node_op(n);
            let o = &self.ops[i];
            if o.read_only {
                if self.model.step(state, &o.op).is_some() {
                    return Ok(Some(i));
                }
                if o.complete.unwrap_or(usize::MAX) < reset && self.model.read_is_dead(state, &o.op)
                {
                    return Err(());
                }
            }
            n = self.next[n as usize];
        }
        Ok(None)
    }

    /// Could some op other than `skip`, linearizable right now, observe `state`?
    fn observable(&self, skip: usize, state: &M::State, bound: usize) -> bool {
        let mut n = self.next[HEAD as usize];
        while n != NIL && Self::is_call(n) {
            let o = &self.ops[Self::node_op(n)];
            if !o.blind && self.model.step(state, &o.op).is_some() {
                return true;
            }
            n = self.next[n as usize];
        }
        let mut m = self.inext[HEAD as usize];
        while m != NIL {
            let i = (m - 1) as usize;
            let o = &self.ops[i];
            if o.invoke >= bound {
                break;
            }
            if i != skip && !o.blind && self.model.step(state, &o.op).is_some() {
                return true;
            }
            m = self.inext[m as usize];
        }
        false
    }

    /// Insert (current bits, state) into the memo; false if already there.
    fn remember(&mut self, hash: u64, state: &M::State) -> bool {
        let len = self.bits.iter().rposition(|w| *w != 0).map_or(0, |p| p + 1);
        let bits = &self.bits[..len];
        let bucket = self.cache.entry(hash).or_default();
        if bucket.iter().any(|(b, s)| &**b == bits && s == state) {
            return false;
        }
        self.memory += len * 8 + self.model.state_bytes(state) + 64;
        bucket.push((bits.into(), state.clone()));
        true
    }

    fn over_limits(&mut self) -> Option<String> {
        let delta = self.memory - self.reported_memory;
        let total = self.limits.memory.fetch_add(delta, Ordering::Relaxed) + delta;
        self.reported_memory = self.memory;
        if total > self.limits.budget {
            let why = format!("memory budget of {} MiB exceeded", self.limits.budget >> 20);
            self.limits.stop_all(&why);
            return Some(why);
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            let why = "time limit reached";
            self.limits.stop_all(why);
            return Some(why.into());
        }
        if self.limits.cancel.load(Ordering::Relaxed) {
            return Some(self.limits.not_checked());
        }
        None
    }

    /// Runs about `budget` more steps: `None` if the search needs more,
    /// else the part's outcome (its memory is then released).
    fn resume(&mut self, budget: u64) -> Option<Outcome<M::State>> {
        let w = self.walk.take()?;
        match self.walk_for(w, budget) {
            Err(w) => {
                self.walk = Some(*w);
                None
            }
            Ok(outcome) => {
                self.limits
                    .memory
                    .fetch_sub(self.reported_memory, Ordering::Relaxed);
                self.reported_memory = 0;
                self.cache = HashMap::default();
                Some(outcome)
            }
        }
    }

    /// The search loop, on locals (the hot path keeps them in registers):
    /// `Err` hands the walk back when `budget` steps are used up.
    fn walk_for(
        &mut self,
        walk: Walk<M::State>,
        budget: u64,
    ) -> Result<Outcome<M::State>, Box<Walk<M::State>>> {
        let ops = self.ops;
        let Walk {
            record,
            mut remaining,
            total,
            zob,
            mut state,
            mut set_hash,
            mut must_observe,
            mut stack,
            mut cursor,
            mut bound,
            mut best,
            mut best_len,
            mut steps,
        } = walk;
        let stop_at = steps.saturating_add(budget);
        loop {
            if remaining == 0 {
                return Ok(Outcome::Valid);
            }
            steps += 1;
            if steps & 4095 == 0 {
                if let Some(reason) = self.over_limits() {
                    return Ok(Outcome::Unknown(reason));
                }
            }
            if steps >= stop_at {
                return Err(Box::new(Walk {
                    record,
                    remaining,
                    total,
                    zob,
                    state,
                    set_hash,
                    must_observe,
                    stack,
                    cursor,
                    bound,
                    best,
                    best_len,
                    steps,
                }));
            }
            let mut forced = false;
            let candidate = match cursor {
                Cursor::Fresh => {
                    cursor = Cursor::Main(self.next[HEAD as usize]);
                    match self.fitting_read(&state) {
                        Ok(Some(i)) => {
                            forced = true;
                            cursor = Cursor::Exhausted;
                            Some(i)
                        }
                        Ok(None) => continue,
                        Err(()) => None,
                    }
                }
                Cursor::Exhausted => None,
                Cursor::Main(n) if n != NIL && Self::is_call(n) => {
                    cursor = Cursor::Main(self.next[n as usize]);
                    Some(Self::node_op(n))
                }
                Cursor::Main(n) => {
                    bound = if n == NIL {
                        usize::MAX
                    } else {
                        ops[Self::node_op(n)].complete.unwrap_or(usize::MAX)
                    };
                    cursor = Cursor::Info(self.inext[HEAD as usize]);
                    continue;
                }
                Cursor::Info(m) if m != NIL && ops[(m - 1) as usize].invoke < bound => {
                    cursor = Cursor::Info(self.inext[m as usize]);
                    Some((m - 1) as usize)
                }
                Cursor::Info(_) => None,
            };
            if let Some(i) = candidate {
                let o = &ops[i];
                if must_observe && o.blind {
                    continue;
                }
                let Some(next_state) = self.model.step(&state, &o.op) else {
                    continue;
                };
                let blind_info = o.blind && !o.determinate();
                let new_hash = set_hash ^ zob[i];
                if blind_info {
                    if !self.observable(i, &next_state, bound) {
                        continue;
                    }
                } else {
                    self.bits[i / 64] |= 1 << (i % 64);
                    let fresh = self.remember(new_hash ^ hash_of(&next_state), &next_state);
                    self.bits[i / 64] &= !(1 << (i % 64));
                    if !fresh {
                        continue;
                    }
                }
                stack.push(Frame {
                    op: i as u32,
                    state: std::mem::replace(&mut state, next_state),
                    hash: set_hash,
                    must_observe,
                    forced,
                });
                set_hash = new_hash;
                must_observe = blind_info;
                self.lift(i);
                if o.determinate() {
                    remaining -= 1;
                }
                cursor = Cursor::Fresh;
            } else {
                if record {
                    let depth = total - remaining;
                    if depth > best_len || best.is_none() {
                        best_len = depth;
                        let mut prefix = Vec::with_capacity(stack.len());
                        for (k, f) in stack.iter().enumerate() {
                            let after = stack.get(k + 1).map_or(&state, |g| &g.state);
                            prefix.push((f.op as usize, after.clone()));
                        }
                        let failing = self.first_return().1.unwrap_or(0);
                        best = Some(Failure {
                            prefix,
                            states: vec![state.clone()],
                            failing,
                        });
                    } else if depth == best_len {
                        if let Some(b) = best.as_mut() {
                            if b.states.len() < 8 && !b.states.contains(&state) {
                                b.states.push(state.clone());
                            }
                        }
                    }
                }
                let Some(frame) = stack.pop() else {
                    return Ok(Outcome::Invalid(best));
                };
                let i = frame.op as usize;
                self.unlift(i);
                state = frame.state;
                set_hash = frame.hash;
                must_observe = frame.must_observe;
                if frame.forced {
                    remaining += 1;
                    cursor = Cursor::Exhausted;
                } else if ops[i].determinate() {
                    remaining += 1;
                    cursor = Cursor::Main(self.next[2 * i + 1]);
                } else {
                    bound = self.first_return().0;
                    cursor = Cursor::Info(self.inext[i + 1]);
                }
            }
        }
    }
}

/// Check one part. `record` keeps the longest prefix for an explanation
/// (slower, so it is used only to explain a part already found invalid).
pub fn check_part<M: Model>(
    model: &M,
    ops: &[PartOp<M::Op>],
    limits: &Limits,
    record: bool,
) -> Outcome<M::State> {
    Search::new(model, ops, limits, record)
        .resume(u64::MAX)
        .unwrap_or_else(|| Outcome::Unknown("search ended without a verdict".into()))
}

/// Steps of a part's first slice (a few milliseconds): enough to finish
/// most parts of a valid history at once, so interleaving costs them
/// nothing, and to refute a cheaply refutable part in the first round.
/// Each later slice of the same part is twice as long, up to [`MAX_SLICE`].
const FIRST_SLICE: u64 = 1 << 15;
/// The longest slice, so no part keeps a worker for long.
const MAX_SLICE: u64 = 1 << 20;

/// Checks every part, interleaving their searches in slices of growing
/// length on the worker pool, the way porcupine runs one goroutine per
/// part: a part that is refuted cheaply is found before an expensive part
/// finishes, and unless `all_keys` the first refutation stops the others.
pub fn check_parts<M: Model>(
    model: &M,
    parts: &[Part<M::Op>],
    limits: &Limits,
    all_keys: bool,
) -> Vec<Outcome<M::State>> {
    match parts {
        [] => return Vec::new(),
        [one] => return vec![check_part(model, &one.ops, limits, false)],
        _ => {}
    }
    enum Job<'a, M: Model> {
        Fresh(usize),
        Running(usize, Box<Search<'a, M>>, u64),
    }
    let queue: Mutex<VecDeque<Job<M>>> = Mutex::new((0..parts.len()).map(Job::Fresh).collect());
    let results: Mutex<Vec<Option<Outcome<M::State>>>> =
        Mutex::new((0..parts.len()).map(|_| None).collect());
    let refuted = AtomicBool::new(false);
    let worker = || loop {
        if !all_keys && refuted.load(Ordering::Relaxed) {
            return;
        }
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let (k, mut search, budget) = match job {
            None => return,
            Some(Job::Fresh(k)) => (
                k,
                Box::new(Search::new(model, &parts[k].ops, limits, false)),
                FIRST_SLICE,
            ),
            Some(Job::Running(k, search, budget)) => (k, search, budget),
        };
        match search.resume(budget) {
            None => queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Job::Running(k, search, (budget * 2).min(MAX_SLICE))),
            Some(outcome) => {
                if matches!(outcome, Outcome::Invalid(_)) && !all_keys {
                    refuted.store(true, Ordering::Relaxed);
                    limits.stop_all("another key is invalid");
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(outcome);
            }
        }
    };
    let workers = rayon::current_num_threads().clamp(1, parts.len());
    rayon::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|_| worker());
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Unknown(limits.not_checked())))
        .collect()
}

/// Check a history for linearizability against `model`. The verdict comes
/// first; an explanation of the first refuted part (if asked for) is then
/// computed under its own time limit and never delays or changes it.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    values: &mut Values,
    options: &LinearOptions,
) -> Result<CheckResult, CheckError> {
    let started = Instant::now();
    let (mut parts, op_count) = partition(model, history, options.split_by_key, values)?;
    // Big parts first, so the parallel tail is short.
    parts.sort_by_key(|p| std::cmp::Reverse(p.ops.len()));
    let limits = Limits::new(options.timeout, options.memory_budget);
    let outcomes = check_parts(model, &parts, &limits, options.all_keys);

    let mut result = CheckResult::new("linearizable", model.name());
    result.op_count = op_count;
    let mut first_invalid: Option<usize> = None;
    let mut overall = Validity::Valid;
    for (k, (part, outcome)) in parts.iter().zip(&outcomes).enumerate() {
        let (valid, reason) = match outcome {
            Outcome::Valid => (Validity::Valid, None),
            Outcome::Invalid(_) => {
                first_invalid.get_or_insert(k);
                (Validity::Invalid, None)
            }
            Outcome::Unknown(r) => (Validity::Unknown, Some(r.clone())),
        };
        overall = overall.and(valid);
        result.keys.push(KeyResult {
            key: part.key.clone(),
            valid,
            ops: part.ops.len(),
            unknown_reason: reason,
        });
    }
    result.keys.sort_by(|a, b| a.key.cmp(&b.key));
    if overall == Validity::Unknown {
        // The reason of a part that hit a limit, not of one it stopped.
        result.unknown_reason = result
            .keys
            .iter()
            .filter_map(|k| k.unknown_reason.clone())
            .find(|r| !r.starts_with("not checked"))
            .or_else(|| result.keys.iter().find_map(|k| k.unknown_reason.clone()));
    }
    result.valid = overall;
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let (Some(k), true) = (first_invalid, options.explain) {
        let explained = Instant::now();
        result.explanation = explain_part(model, history, &parts[k], values, options);
        result.explain_ms = Some(explained.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(result)
}

/// The explanation of a part known to be invalid: the search again,
/// recording the longest linearizable prefix, under the explanation's own
/// time limit (`None` if it runs out).
fn explain_part<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    values: &Values,
    options: &LinearOptions,
) -> Option<Explanation> {
    let limits = Limits::new(Some(options.explain_timeout), options.memory_budget);
    match check_part(model, &part.ops, &limits, true) {
        Outcome::Invalid(Some(failure)) => {
            Some(explain::explain(model, history, part, &failure, values))
        }
        _ => None,
    }
}

/// Explains an invalid part of `history` after the verdict: the part with
/// `key` (the first invalid key of a [`check`] result).
pub fn explain_key<M: Model>(
    model: &M,
    history: &History,
    values: &mut Values,
    options: &LinearOptions,
    key: Option<&str>,
) -> Result<Option<Explanation>, CheckError> {
    let (parts, _) = partition(model, history, options.split_by_key, values)?;
    Ok(parts
        .iter()
        .find(|p| p.key.as_deref() == key)
        .and_then(|p| explain_part(model, history, p, values, options)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use crate::models::RegisterModel;
    use serde_json::json;

    fn ev(p: u64, kind: OpType, f: &str, v: serde_json::Value) -> Op {
        Op::new(Process::Client(p), kind, f, v)
    }

    fn verdict(ops: Vec<Op>) -> Validity {
        let model = RegisterModel {
            cas: true,
            initial: 0,
            semantics: crate::history::Semantics::Tagged,
        };
        let mut values = Values::default();
        check(
            &model,
            &History::new(ops),
            &mut values,
            &LinearOptions::default(),
        )
        .unwrap()
        .valid
    }

    #[test]
    fn concurrent_write_and_read_is_linearizable() {
        use OpType::*;
        assert_eq!(
            verdict(vec![
                ev(0, Invoke, "write", json!(1)),
                ev(1, Invoke, "read", json!(null)),
                ev(1, Ok, "read", json!(1)),
                ev(0, Ok, "write", json!(1)),
            ]),
            Validity::Valid
        );
    }

    #[test]
    fn stale_read_after_write_is_not() {
        use OpType::*;
        assert_eq!(
            verdict(vec![
                ev(0, Invoke, "write", json!(1)),
                ev(0, Ok, "write", json!(1)),
                ev(1, Invoke, "read", json!(null)),
                ev(1, Ok, "read", json!(null)),
            ]),
            Validity::Invalid
        );
    }

    #[test]
    fn crashed_write_may_take_effect_late_or_never() {
        use OpType::*;
        let base = vec![
            ev(0, Invoke, "write", json!(1)),
            ev(0, Info, "write", json!(1)),
            ev(1, Invoke, "read", json!(null)),
            ev(1, Ok, "read", json!(null)),
            ev(1, Invoke, "read", json!(null)),
            ev(1, Ok, "read", json!(1)),
        ];
        assert_eq!(verdict(base.clone()), Validity::Valid);
        let mut back = base;
        back.push(ev(1, Invoke, "read", json!(null)));
        back.push(ev(1, Ok, "read", json!(null)));
        assert_eq!(verdict(back), Validity::Invalid);
    }

    #[test]
    fn failed_cas_observed_another_value() {
        use OpType::*;
        assert_eq!(
            verdict(vec![
                ev(0, Invoke, "write", json!(1)),
                ev(0, Ok, "write", json!(1)),
                ev(1, Invoke, "cas", json!([1, 2])),
                ev(1, Fail, "cas", json!([1, 2])),
            ]),
            Validity::Invalid
        );
    }

    #[test]
    fn a_history_with_nothing_to_search_is_linearizable() {
        use OpType::*;
        // Only failed writes and reads: every part is empty, none is searched.
        assert_eq!(
            verdict(vec![
                ev(0, Invoke, "write", json!(1)),
                ev(0, Fail, "write", json!(1)),
                ev(1, Invoke, "read", json!(null)),
                ev(1, Fail, "read", json!(null)),
            ]),
            Validity::Valid
        );
        assert_eq!(verdict(vec![]), Validity::Valid);
    }

    #[test]
    fn timeout_gives_unknown() {
        use OpType::*;
        let mut ops = Vec::new();
        for p in 0..12 {
            ops.push(ev(p, Invoke, "write", json!(p)));
        }
        for p in 0..12 {
            ops.push(ev(p, Ok, "write", json!(p)));
        }
        ops.push(ev(0, Invoke, "read", json!(null)));
        ops.push(ev(0, Ok, "read", json!(99)));
        let model = RegisterModel {
            cas: true,
            initial: 0,
            semantics: crate::history::Semantics::Tagged,
        };
        let mut values = Values::default();
        let opts = LinearOptions {
            timeout: Some(Duration::from_millis(0)),
            memory_budget: 1 << 30,
            ..LinearOptions::default()
        };
        let r = check(&model, &History::new(ops.clone()), &mut values, &opts).unwrap();
        // Either the search finished before the first limit check or it gave up:
        // never a wrong "valid".
        assert_ne!(r.valid, Validity::Valid);
        let tiny = LinearOptions {
            memory_budget: 16,
            ..LinearOptions::default()
        };
        let r = check(&model, &History::new(ops), &mut values, &tiny).unwrap();
        assert_ne!(r.valid, Validity::Valid);
    }
}
