//! Randomised agreement test: small register / cas-register histories with
//! crashed (info) and failed operations are decided both by the checker and
//! by an independent brute-force search over every order of operations.
//!
//! Replay one seed with `CHECKER_SEED=<n> cargo test -p checker --test random_linear`.
//! More seeds: `CHECKER_SEEDS=<count>`.

use checker::{
    check_history, CheckOptions, Checker, History, ModelKind, Op, OpType, Process, Validity,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Call {
    f: &'static str,
    arg: Value,
    result: Value,
    outcome: OpType,
    invoke: usize,
    complete: Option<usize>,
}

/// Simulate a register with linearization points, crash some operations,
/// and sometimes corrupt a result so that invalid histories are common too.
fn generate(seed: u64, cas: bool) -> (History, Vec<Call>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let procs = rng.gen_range(2..=4);
    let total = rng.gen_range(3..=8);
    let mut state = Value::Null;
    let mut ops: Vec<Op> = Vec::new();
    let mut calls: Vec<Call> = Vec::new();
    // Per process slot: (process id, pending call index, linearized?)
    let mut slots: Vec<(u64, Option<usize>, bool)> =
        (0..procs).map(|p| (p as u64, None, false)).collect();
    let mut next_pid = procs as u64;
    let mut issued = 0;
    while issued < total || slots.iter().any(|s| s.1.is_some()) {
        let s = rng.gen_range(0..slots.len());
        let (pid, pending, linearized) = slots[s];
        match pending {
            None if issued < total => {
                let f = match rng.gen_range(0..if cas { 3 } else { 2 }) {
                    0 => "read",
                    1 => "write",
                    _ => "cas",
                };
                let arg = match f {
                    "write" => json!(rng.gen_range(0..3)),
                    "cas" => json!([rng.gen_range(0..3), rng.gen_range(0..3)]),
                    _ => Value::Null,
                };
                ops.push(Op::new(
                    Process::Client(pid),
                    OpType::Invoke,
                    f,
                    arg.clone(),
                ));
                calls.push(Call {
                    f,
                    arg,
                    result: Value::Null,
                    outcome: OpType::Ok,
                    invoke: ops.len() - 1,
                    complete: None,
                });
                slots[s].1 = Some(calls.len() - 1);
                issued += 1;
            }
            None => {}
            Some(c) if !linearized => {
                // The linearization point, unless it crashes before taking effect.
                let crash_early = rng.gen_bool(0.08);
                let call = &mut calls[c];
                if !crash_early {
                    match call.f {
                        "read" => call.result = state.clone(),
                        "write" => state = call.arg.clone(),
                        _ => {
                            if call.arg[0] == state {
                                state = call.arg[1].clone();
                            } else {
                                call.outcome = OpType::Fail;
                            }
                        }
                    }
                } else {
                    call.outcome = OpType::Info;
                }
                slots[s].2 = true;
            }
            Some(c) => {
                let call = &mut calls[c];
                if call.outcome != OpType::Info && rng.gen_bool(0.1) {
                    call.outcome = OpType::Info;
                }
                if call.f == "read" && call.outcome == OpType::Ok && rng.gen_bool(0.15) {
                    call.result = json!(rng.gen_range(0..3));
                }
                let value = if call.f == "read" {
                    call.result.clone()
                } else {
                    call.arg.clone()
                };
                if call.outcome == OpType::Info && rng.gen_bool(0.3) {
                    // Never completes: the history ends with it pending.
                } else {
                    ops.push(Op::new(Process::Client(pid), call.outcome, call.f, value));
                    call.complete = Some(ops.len() - 1);
                }
                if call.outcome == OpType::Info {
                    slots[s] = (next_pid, None, false);
                    next_pid += 1;
                } else {
                    slots[s] = (pid, None, false);
                }
            }
        }
    }
    for c in calls.iter_mut() {
        if c.complete.is_none() {
            c.outcome = OpType::Info;
        }
    }
    (History::new(ops), calls)
}

/// Brute force: try every order consistent with real time; crashed ops may
/// be placed anywhere after their invocation or left out.
fn brute_force(calls: &[Call]) -> bool {
    fn apply(c: &Call, state: &Value) -> Option<Value> {
        match (c.f, c.outcome) {
            ("read", OpType::Ok) => (c.result == *state).then(|| state.clone()),
            ("read", _) => Some(state.clone()),
            ("write", OpType::Fail) => Some(state.clone()),
            ("write", _) => Some(c.arg.clone()),
            ("cas", OpType::Fail) => (c.arg[0] != *state).then(|| state.clone()),
            ("cas", OpType::Ok) => (c.arg[0] == *state).then(|| c.arg[1].clone()),
            ("cas", _) => Some(if c.arg[0] == *state {
                c.arg[1].clone()
            } else {
                state.clone()
            }),
            _ => None,
        }
    }
    fn go(calls: &[Call], done: &mut Vec<bool>, state: &Value) -> bool {
        if calls
            .iter()
            .zip(done.iter())
            .all(|(c, d)| *d || c.outcome == OpType::Info)
        {
            return true;
        }
        for i in 0..calls.len() {
            if done[i] {
                continue;
            }
            // Every op that completed before this one was invoked must come first.
            let blocked = calls.iter().enumerate().any(|(j, p)| {
                !done[j]
                    && p.outcome != OpType::Info
                    && p.complete.is_some_and(|pc| pc < calls[i].invoke)
            });
            if blocked {
                continue;
            }
            if let Some(next) = apply(&calls[i], state) {
                done[i] = true;
                if go(calls, done, &next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(calls, &mut vec![false; calls.len()], &Value::Null)
}

fn run_seed(seed: u64) -> Result<Validity, String> {
    let cas = seed.rem_euclid(3) != 0;
    let (history, calls) = generate(seed, cas);
    let model = if cas {
        ModelKind::CasRegister
    } else {
        ModelKind::Register
    };
    let options = CheckOptions {
        checker: Some(Checker::Linearizable(model)),
        ..CheckOptions::default()
    };
    let got = check_history(&history, &options).map_err(|e| format!("seed {seed}: error {e}"))?;
    let want = if brute_force(&calls) {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    // With nothing answered the availability rule makes the verdict
    // unknown; the search itself must still have found it linearizable.
    let got_valid = match got.rule.as_deref() {
        Some(checker::health::NO_OPERATION_SUCCEEDED) => Validity::Valid,
        _ => got.valid,
    };
    if got_valid != want {
        let mut text = Vec::new();
        history.write_jsonl(&mut text).unwrap();
        return Err(format!(
            "seed {seed}: checker says {:?}, brute force says {want:?} (replay with CHECKER_SEED={seed})\n{}",
            got.valid,
            String::from_utf8_lossy(&text)
        ));
    }
    Ok(want)
}

#[test]
fn checker_agrees_with_brute_force() {
    if let Ok(seed) = std::env::var("CHECKER_SEED") {
        let seed: u64 = seed.parse().expect("CHECKER_SEED must be a number");
        run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let count: u64 = std::env::var("CHECKER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..count {
        match run_seed(seed) {
            Ok(Validity::Valid) => valid += 1,
            Ok(_) => invalid += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // Both verdicts must be well represented, or the test proves little.
    assert!(
        valid > count / 10 && invalid > count / 10,
        "valid {valid}, invalid {invalid}"
    );
    eprintln!("{count} seeds: {valid} valid, {invalid} invalid, no disagreement");
}
