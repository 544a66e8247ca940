//! The closed-loop load generator `dcf-harness bench` drives every system
//! with: `clients` tasks, each with its own connection, each sending its
//! next request as soon as the previous one answered. Only requests that
//! start after the warm-up and answer before the end are measured, so
//! connection set-up and a cold cache never count.

use super::client::{BenchClient, BenchOp};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// How many distinct keys the clients write and read: enough that no key
/// is hot, few enough that reads find values.
pub const KEYS: u32 = 10_000;

/// What one measurement runs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub clients: u32,
    pub warmup: Duration,
    pub measure: Duration,
    pub value_size: usize,
    pub op: BenchOp,
}

/// What one measurement saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadResult {
    pub clients: u32,
    /// Requests answered ok within the measured window.
    pub ops: u64,
    /// Requests that failed or timed out within the window (not in the
    /// latencies).
    pub errors: u64,
    /// The first error seen, to say why.
    pub first_error: Option<String>,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// One client task's tally.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `spec` against clients made by `connect` (called once per client
/// with its index) and returns the figures.
pub async fn run<F, Fut>(spec: &LoadSpec, connect: F) -> Result<LoadResult, String>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<BenchClient, String>>,
{
    let mut clients = Vec::with_capacity(spec.clients as usize);
    for i in 0..spec.clients {
        clients.push(connect(i).await?);
    }
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.measure;
    let value = "v".repeat(spec.value_size);
    let mut tasks = Vec::with_capacity(clients.len());
    for (i, mut client) in clients.into_iter().enumerate() {
        let value = value.clone();
        let op = spec.op;
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(i as u64);
            let mut tally = Tally::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let key = format!("bench-{}", rng.gen_range(0..KEYS));
                let result = match op.pick(&mut rng) {
                    BenchOp::Get => client.get(&key).await,
                    _ => client.put(&key, &value).await,
                };
                let done = Instant::now();
                if t0 < measure_from || done > end {
                    continue;
                }
                match result {
                    Ok(()) => {
                        let us = (done - t0).as_micros().min(u128::from(u32::MAX)) as u32;
                        tally.latencies_us.push(us);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.map_err(|e| format!("a client task failed: {e}"))?;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    Ok(summarise(spec.clients, spec.measure, all))
}

/// The figures of a measured window from its latencies.
fn summarise(clients: u32, window: Duration, mut t: Tally) -> LoadResult {
    t.latencies_us.sort_unstable();
    let seconds = window.as_secs_f64();
    let ops = t.latencies_us.len() as u64;
    LoadResult {
        clients,
        ops,
        errors: t.errors,
        first_error: t.first_error,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: percentile_ms(&t.latencies_us, 0.50),
        p99_ms: percentile_ms(&t.latencies_us, 0.99),
        p999_ms: percentile_ms(&t.latencies_us, 0.999),
        max_ms: t
            .latencies_us
            .last()
            .map_or(0.0, |&us| f64::from(us) / 1000.0),
    }
}

/// The nearest-rank percentile `q` of sorted latencies, in ms (0 when
/// nothing was measured).
pub fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[i]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let lat: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&lat, 0.5), 500.0);
        assert_eq!(percentile_ms(&lat, 0.99), 990.0);
        assert_eq!(percentile_ms(&lat, 0.999), 999.0);
        assert_eq!(percentile_ms(&[7000], 0.999), 7.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn throughput_counts_only_answered_requests() {
        let t = Tally {
            latencies_us: vec![3000, 1000, 2000, 4000],
            errors: 2,
            first_error: Some("timeout".into()),
        };
        let r = summarise(4, Duration::from_secs(2), t);
        assert_eq!(r.ops, 4);
        assert_eq!(r.ops_per_sec, 2.0);
        assert_eq!(r.p50_ms, 2.0);
        assert_eq!(r.max_ms, 4.0);
        assert_eq!(r.errors, 2);
    }
}
