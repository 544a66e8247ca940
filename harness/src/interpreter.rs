//! The generator interpreter: worker processes (Jepsen's logical threads)
//! take operations from the workload's generator at a target rate, call
//! the cluster with a timeout, and record invocations and completions. A
//! process whose operation ended `info` is retired and a new process id
//! takes its place, as in Jepsen.

use crate::recorder::Recorder;
use checker::{Op, OpType, Process};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::client::{Target, WorkloadClient};
use workloads::{Codec, Invocation, Workload};

/// Settings of the client side of a run.
#[derive(Clone)]
pub struct InterpreterOptions {
    /// How the workload's operations map to requests and replies.
    pub codec: Arc<dyn Codec>,
    /// Worker processes at once.
    pub concurrency: usize,
    /// Target operations per second over all workers (0 = as fast as possible).
    pub rate: f64,
    /// How long workers issue operations.
    pub time_limit: Duration,
    /// Timeout of every client call.
    pub op_timeout: Duration,
    /// Client addresses of the nodes.
    pub endpoints: Vec<String>,
    pub seed: u64,
    /// Retries of a write whose outcome is unknown (same tag, other nodes).
    pub write_retries: u32,
    /// The system the endpoints belong to (our node or etcd).
    pub target: Target,
}

/// Live counts for the progress line.
#[derive(Default, Debug)]
pub struct Counters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counters {
    fn count(&self, kind: OpType) {
        let c = match kind {
            OpType::Ok => &self.ok,
            OpType::Fail => &self.fail,
            OpType::Info | OpType::Invoke => &self.info,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// The generator shared by all workers.
pub type SharedWorkload = Arc<Mutex<(Box<dyn Workload>, StdRng)>>;

fn next_invocation(w: &SharedWorkload, process: u64) -> Invocation {
    let mut g = w.lock().unwrap_or_else(|e| e.into_inner());
    let (workload, rng) = &mut *g;
    workload.next(process, rng)
}

/// Records an invocation, runs it and records its completion.
pub async fn perform(
    client: &mut WorkloadClient,
    recorder: &Recorder,
    process: u64,
    inv: &Invocation,
    counters: &Counters,
) -> OpType {
    let mut op = Op::new(
        Process::Client(process),
        OpType::Invoke,
        inv.f.clone(),
        inv.value.clone(),
    );
    op.key = inv.key.clone();
    recorder.record(op);
    let c = client.invoke(inv).await;
    let mut done = Op::new(Process::Client(process), c.kind, inv.f.clone(), c.value);
    done.key = inv.key.clone();
    done.node = c.node;
    done.error = c.error;
    recorder.record(done);
    counters.count(c.kind);
    c.kind
}

/// Runs the workers until the time limit or `stop`; returns the next
/// unused process id.
pub async fn run_workers(
    opts: &InterpreterOptions,
    workload: SharedWorkload,
    recorder: Arc<Recorder>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let deadline = Instant::now() + opts.time_limit;
    let concurrency = opts.concurrency.max(1);
    let interval = if opts.rate > 0.0 {
        Duration::from_secs_f64(concurrency as f64 / opts.rate)
    } else {
        Duration::ZERO
    };
    let mut tasks = Vec::new();
    for slot in 0..concurrency {
        let workload = workload.clone();
        let recorder = recorder.clone();
        let counters = counters.clone();
        let stop = stop.clone();
        let endpoints = opts.endpoints.clone();
        let codec = opts.codec.clone();
        let timeout = opts.op_timeout;
        let retries = opts.write_retries;
        let target = opts.target.clone();
        let seed = opts.seed ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut process = slot as u64;
            let mut client = WorkloadClient::for_target(
                &target,
                codec.clone(),
                endpoints.clone(),
                timeout,
                slot,
            )
            .with_write_retries(retries);
            let mut next_at = Instant::now() + interval.mul_f64(rng.gen_range(0.0..1.0));
            let mut max_process = process;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if !interval.is_zero() {
                    let now = Instant::now();
                    if next_at > now {
                        tokio::time::sleep(next_at - now).await;
                    }
                    // Jitter keeps workers from moving in lock-step.
                    next_at =
                        Instant::now().max(next_at) + interval.mul_f64(rng.gen_range(0.5..1.5));
                    if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                let inv = next_invocation(&workload, process);
                let kind = perform(&mut client, &recorder, process, &inv, &counters).await;
                if kind == OpType::Info {
                    // The process may still have an operation in flight; it
                    // never completes again, so a fresh process takes over.
                    process += concurrency as u64;
                    max_process = process;
                    client = WorkloadClient::for_target(
                        &target,
                        codec.clone(),
                        endpoints.clone(),
                        timeout,
                        slot + 1,
                    )
                    .with_write_retries(retries);
                }
            }
            max_process
        }));
    }
    let mut next = concurrency as u64;
    for t in tasks {
        if let Ok(p) = t.await {
            next = next.max(p + 1);
        }
    }
    next
}

/// Reads the final state of everything written, retrying each read (with
/// fresh processes) until it succeeds or `within` runs out; clients use
/// `opts`' codec, endpoints and timeout. Returns how many final reads
/// succeeded, of how many.
pub async fn final_reads(
    reads: Vec<Invocation>,
    opts: &InterpreterOptions,
    recorder: &Recorder,
    counters: &Counters,
    first_process: u64,
    within: Duration,
) -> (usize, usize) {
    let deadline = Instant::now() + within;
    let client_for = |first: usize| {
        WorkloadClient::for_target(
            &opts.target,
            opts.codec.clone(),
            opts.endpoints.clone(),
            opts.op_timeout,
            first,
        )
        .with_write_retries(opts.write_retries)
    };
    let mut process = first_process;
    let mut client = client_for(0);
    let mut done = 0;
    let total = reads.len();
    for inv in reads {
        loop {
            let kind = perform(&mut client, recorder, process, &inv, counters).await;
            if kind == OpType::Ok {
                done += 1;
                break;
            }
            if kind == OpType::Info {
                process += 1;
                client = client_for(process as usize);
            }
            if Instant::now() >= deadline {
                return (done, total);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (done, total)
}
