//! The million-operation benchmark: a generated cas-register history of
//! 1,000,000 events' worth of operations over 100 keys with 20 concurrent
//! processes and 1% indeterminate operations, checked split by key.
//! Prints its setup, the check time and the peak resident memory.
//!
//! Run: `cargo bench -p checker --bench million` (`MILLION_OPS=<n>` to resize).

use std::time::Instant;

use checker::{
    check_history, CheckOptions, Checker, History, ModelKind, Op, OpType, Process, Validity,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

struct Pending {
    key: usize,
    f: &'static str,
    arg: Value,
    result: Value,
    outcome: OpType,
    linearized: bool,
}

/// Simulate `ops` operations against real registers with random
/// linearization points, so the history is linearizable by construction.
fn generate(ops: usize, keys: usize, procs: usize, info_rate: f64, seed: u64) -> History {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut state = vec![Value::Null; keys];
    let mut next_value = vec![0i64; keys];
    let mut slots: Vec<(u64, Option<Pending>)> = (0..procs).map(|p| (p as u64, None)).collect();
    let mut next_pid = procs as u64;
    let mut h = History::default();
    let mut issued = 0;
    let mut time = 0u64;
    while issued < ops || slots.iter().any(|s| s.1.is_some()) {
        time += rng.gen_range(1..2000);
        let s = rng.gen_range(0..procs);
        let pid = slots[s].0;
        match slots[s].1.take() {
            None if issued < ops => {
                let key = rng.gen_range(0..keys);
                let (f, arg) = match rng.gen_range(0..10) {
                    0..=4 => ("read", Value::Null),
                    5..=7 => {
                        next_value[key] += 1;
                        ("write", json!(next_value[key]))
                    }
                    _ => {
                        next_value[key] += 1;
                        let from = if rng.gen_bool(0.5) {
                            state[key].clone()
                        } else {
                            json!(rng.gen_range(0..5))
                        };
                        ("cas", json!([from, next_value[key]]))
                    }
                };
                h.push(
                    Op::new(Process::Client(pid), OpType::Invoke, f, arg.clone())
                        .with_key(json!(key))
                        .at(time),
                );
                slots[s].1 = Some(Pending {
                    key,
                    f,
                    arg,
                    result: Value::Null,
                    outcome: OpType::Ok,
                    linearized: false,
                });
                issued += 1;
            }
            None => {}
            Some(mut p) if !p.linearized => {
                match p.f {
                    "read" => p.result = state[p.key].clone(),
                    "write" => state[p.key] = p.arg.clone(),
                    _ => {
                        if p.arg[0] == state[p.key] {
                            state[p.key] = p.arg[1].clone();
                        } else {
                            p.outcome = OpType::Fail;
                        }
                    }
                }
                p.linearized = true;
                slots[s].1 = Some(p);
            }
            Some(p) => {
                let crashed = rng.gen_bool(info_rate);
                let outcome = if crashed { OpType::Info } else { p.outcome };
                let value = if p.f == "read" && !crashed {
                    p.result.clone()
                } else {
                    p.arg.clone()
                };
                h.push(
                    Op::new(Process::Client(pid), outcome, p.f, value)
                        .with_key(json!(p.key))
                        .at(time),
                );
                if crashed {
                    slots[s].0 = next_pid;
                    next_pid += 1;
                }
            }
        }
    }
    h
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run small.
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching { 1_000_000 } else { 20_000 };
    let ops = std::env::var("MILLION_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let (keys, procs, info) = (100, 20, 0.01);
    let t = Instant::now();
    let history = generate(ops, keys, procs, info, 42);
    println!(
        "generated {ops} operations ({} events), {keys} keys, {procs} processes, {:.0}% indeterminate in {:.2} s",
        history.len(),
        info * 100.0,
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    let options = CheckOptions {
        checker: Some(Checker::Linearizable(ModelKind::CasRegister)),
        memory_budget: 2 << 30,
        ..CheckOptions::default()
    };
    let t = Instant::now();
    let result = check_history(&history, &options).expect("the generated history checks");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "checked in {secs:.2} s: valid = {}, peak RSS {:.0} MiB (after generation: {rss_before:.0} MiB), threads {}",
        result.valid.as_str(),
        peak_rss_mib(),
        rayon::current_num_threads()
    );
    assert_eq!(result.valid, Validity::Valid, "{:?}", result.unknown_reason);
}
