//! Statistics for reports: outcomes per function, latency quantiles and
//! throughput over time. Nemesis events are counted separately.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::{History, OpType};

/// Outcome counts and latencies of one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionStats {
    /// Completed ok.
    pub ok: usize,
    /// Failed.
    pub fail: usize,
    /// Indeterminate (including never completed).
    pub info: usize,
    /// Latency quantiles of completed (ok or fail) operations, in milliseconds:
    /// `p50`, `p90`, `p99`, `p999`, `max`.
    pub latency_ms: BTreeMap<String, f64>,
}

/// Completions in one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, seconds since the start of the test.
    pub second: u64,
    /// Ok completions in it.
    pub ok: usize,
    /// Failed completions in it.
    pub fail: usize,
    /// Indeterminate completions in it.
    pub info: usize,
}

/// Statistics of a history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Client operations (invocations).
    pub ops: usize,
    /// Nemesis events.
    pub nemesis_events: usize,
    /// Per function.
    pub functions: BTreeMap<String, FunctionStats>,
    /// Completions per second of test time.
    pub throughput: Vec<Bucket>,
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// Compute statistics. A malformed history (bad pairing) counts only what
/// can be paired, since reports must still render.
pub fn stats(history: &History) -> Stats {
    let mut s = Stats {
        nemesis_events: history
            .ops
            .iter()
            .filter(|o| o.process.is_nemesis())
            .count(),
        ..Stats::default()
    };
    let pairs = history.pairs().unwrap_or_default();
    s.ops = pairs.len();
    let mut latencies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut buckets: BTreeMap<u64, Bucket> = BTreeMap::new();
    for pair in &pairs {
        let inv = &history.ops[pair.invoke];
        let f = s.functions.entry(inv.f.clone()).or_default();
        let outcome = history.outcome(pair);
        match outcome {
            OpType::Ok => f.ok += 1,
            OpType::Fail => f.fail += 1,
            _ => f.info += 1,
        }
        if let Some(c) = pair.complete {
            let done = &history.ops[c];
            if outcome != OpType::Info {
                latencies
                    .entry(inv.f.clone())
                    .or_default()
                    .push(done.time.saturating_sub(inv.time));
            }
            let second = done.time / 1_000_000_000;
            let b = buckets.entry(second).or_insert_with(|| Bucket {
                second,
                ..Bucket::default()
            });
            match outcome {
                OpType::Ok => b.ok += 1,
                OpType::Fail => b.fail += 1,
                _ => b.info += 1,
            }
        }
    }
    for (f, mut l) in latencies {
        l.sort_unstable();
        if let Some(fs) = s.functions.get_mut(&f) {
            for (name, q) in [
                ("p50", 0.5),
                ("p90", 0.9),
                ("p99", 0.99),
                ("p999", 0.999),
                ("max", 1.0),
            ] {
                fs.latency_ms.insert(name.into(), quantile(&l, q));
            }
        }
    }
    s.throughput = buckets.into_values().collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Process};
    use serde_json::json;

    #[test]
    fn counts_outcomes_latencies_and_throughput() {
        let c = Process::Client;
        let h = History::new(vec![
            Op::new(c(0), OpType::Invoke, "read", json!(null)).at(0),
            Op::new(c(0), OpType::Ok, "read", json!(1)).at(2_000_000),
            Op::new(c(1), OpType::Invoke, "write", json!(1)).at(1_000_000_000),
            Op::new(c(1), OpType::Info, "write", json!(1)).at(1_500_000_000),
            Op::new(Process::Nemesis, OpType::Info, "kill", json!(null)).at(1_600_000_000),
        ]);
        let s = stats(&h);
        assert_eq!(s.ops, 2);
        assert_eq!(s.nemesis_events, 1);
        assert_eq!(s.functions["read"].ok, 1);
        assert_eq!(s.functions["write"].info, 1);
        assert_eq!(s.functions["read"].latency_ms["p50"], 2.0);
        assert_eq!(s.throughput.len(), 2);
        assert_eq!(s.throughput[1].info, 1);
    }
}
