//! Synthetic runs for benchmarks, browser tests and demos: a register
//! workload with partitions and kills whose latencies and timeouts follow
//! the faults, written as a run folder like the harness writes one. No
//! cluster is needed, so report generation can be measured at any size.

use std::path::Path;

use checker::{CheckOptions, Checker, History, ModelKind, Op, OpType, Process, Validity};
use serde_json::{json, Value};

use crate::error::{write_atomic, ReportError};
use crate::run_folder::{
    self, LogFinding, ResultsFile, RunObservations, TestFile, TestOptions, FORMAT_VERSION,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    /// Client operations (invocations).
    pub ops: usize,
    /// Concurrent client processes.
    pub concurrency: u64,
    /// Target operations per second over all clients.
    pub rate: f64,
    /// Make one read return a value never written, so the run is invalid.
    pub inject_stale_read: bool,
    /// Run the linearizability checker (skip it to time reports alone).
    pub check: bool,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions {
            ops: 3000,
            concurrency: 10,
            rate: 200.0,
            inject_stale_read: false,
            check: true,
            seed: 7,
        }
    }
}

/// A small, fast, deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Planned {
    process: u64,
    key: u64,
    f: &'static str,
    arg: Value,
    invoke: u64,
    done: u64,
    outcome: OpType,
    lin: u64,
    result: Value,
}

const SEC: u64 = 1_000_000_000;

/// Faults every 20 s: a partition for 8 s, then a kill for 4 s.
fn fault_at(t: u64) -> Option<&'static str> {
    match (t / SEC) % 20 {
        5..=12 => Some("partition"),
        15..=18 => Some("kill"),
        _ => None,
    }
}

/// Builds the history: operations are planned first, their effects applied
/// in linearization-point order (so reads see a legal state), then events
/// are emitted in time order with the nemesis events among them.
pub fn history(o: &SyntheticOptions) -> History {
    let mut rng = Rng(o.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let gap = (o.concurrency as f64 / o.rate.max(1e-3) * 1e9) as u64;
    let mut next_free: Vec<u64> = (0..o.concurrency)
        .map(|p| p * gap / o.concurrency)
        .collect();
    let mut ids: Vec<u64> = (0..o.concurrency).collect();
    let mut next_id = o.concurrency;
    let mut planned = Vec::with_capacity(o.ops);
    for n in 0..o.ops {
        let slot = n % o.concurrency as usize;
        let invoke = next_free[slot] + gap / 2 + rng.below(gap + 1);
        let fault = fault_at(invoke);
        let base = 0.4e6 + rng.unit().powi(3) * 6e6;
        let (latency, outcome) = match fault {
            Some(_) if rng.unit() < 0.03 => (3 * SEC, OpType::Info),
            Some("partition") => ((base * (4.0 + rng.unit() * 40.0)) as u64, OpType::Ok),
            Some(_) => ((base * (2.0 + rng.unit() * 8.0)) as u64, OpType::Ok),
            None => (base as u64, OpType::Ok),
        };
        let (f, arg) = match rng.below(10) {
            0..=4 => ("read", Value::Null),
            5..=7 => ("write", json!(rng.below(5))),
            _ => ("cas", json!([rng.below(5), rng.below(5)])),
        };
        let done = invoke + latency.max(1000);
        planned.push(Planned {
            process: ids[slot],
            key: rng.below(8),
            f,
            arg,
            invoke,
            done,
            outcome,
            lin: invoke + (done - invoke) / 2,
            result: Value::Null,
        });
        next_free[slot] = done + 1000;
        if outcome == OpType::Info {
            ids[slot] = next_id;
            next_id += 1;
        }
    }
    let mut by_lin: Vec<usize> = (0..planned.len()).collect();
    by_lin.sort_by_key(|&i| planned[i].lin);
    let mut state: Vec<Value> = vec![Value::Null; 8];
    for i in by_lin {
        let p = &mut planned[i];
        if p.outcome == OpType::Info {
            continue; // an indeterminate op that never took effect: legal
        }
        let cur = &mut state[p.key as usize];
        match p.f {
            "read" => p.result = cur.clone(),
            "write" => {
                *cur = p.arg.clone();
                p.result = p.arg.clone();
            }
            _ => {
                if *cur == p.arg[0] {
                    *cur = p.arg[1].clone();
                    p.result = p.arg.clone();
                } else {
                    p.outcome = OpType::Fail;
                    p.result = p.arg.clone();
                }
            }
        }
    }
    if o.inject_stale_read {
        if let Some(p) = planned
            .iter_mut()
            .skip(o.ops / 2)
            .find(|p| p.f == "read" && p.outcome == OpType::Ok)
        {
            p.result = json!(99);
        }
    }
    let mut events: Vec<(u64, Op)> = Vec::with_capacity(o.ops * 2 + 64);
    for p in &planned {
        let inv = Op::new(
            Process::Client(p.process),
            OpType::Invoke,
            p.f,
            p.arg.clone(),
        )
        .with_key(json!(p.key))
        .at(p.invoke);
        events.push((p.invoke, inv));
        let mut done = Op::new(Process::Client(p.process), p.outcome, p.f, p.result.clone())
            .with_key(json!(p.key))
            .at(p.done);
        done.node = Some(format!("{}", 1 + p.process % 3));
        if p.outcome == OpType::Info {
            done.error = Some(json!("timeout"));
        }
        events.push((p.done, done));
    }
    let end = planned.iter().map(|p| p.done).max().unwrap_or(0);
    let mut t = 0;
    while t < end {
        for (sec, f, value) in [
            (5, "start-partition", json!({"topology": "one"})),
            (13, "stop-partition", json!({"healed": true})),
            (15, "start-kill", json!({"targets": [1]})),
            (19, "stop-kill", json!({"targets": [1]})),
        ] {
            let at = t + sec * SEC;
            if at < end {
                let inv =
                    Op::new(Process::Nemesis, OpType::Invoke, f, Value::Null).at(at - SEC / 50);
                events.push((at - SEC / 50, inv));
                events.push((at, Op::new(Process::Nemesis, OpType::Info, f, value).at(at)));
            }
        }
        t += 20 * SEC;
    }
    events.sort_by_key(|(t, op)| (*t, op.kind != OpType::Invoke));
    History::new(events.into_iter().map(|(_, op)| op).collect())
}

/// Writes a run folder (`test.json`, `history.jsonl`, `results.json`,
/// `nodes/n1..n3` with logs) like the harness does.
pub fn write_run(dir: &Path, o: &SyntheticOptions) -> Result<(), ReportError> {
    let werr = |source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(werr)?;
    let h = history(o);
    let mut buf = Vec::with_capacity(h.ops.len() * 110);
    h.write_jsonl(&mut buf).map_err(werr)?;
    write_atomic(&dir.join(run_folder::HISTORY_FILE), &buf)?;
    let test = TestFile {
        format_version: FORMAT_VERSION,
        name: Some("synthetic-register".into()),
        workload: Some("register".into()),
        seed: Some(o.seed),
        command_line: [
            "dcf-harness",
            "test",
            "--nodes",
            "3",
            "--nemesis",
            "partition,kill",
        ]
        .map(String::from)
        .to_vec(),
        options: TestOptions {
            nodes: Some(3),
            nemesis: Some("partition,kill".into()),
            other: [
                ("rate".to_string(), json!(o.rate)),
                ("concurrency".to_string(), json!(o.concurrency)),
            ]
            .into(),
            ..TestOptions::default()
        },
        ..TestFile::default()
    };
    run_folder::write(&dir.join(run_folder::TEST_FILE), &test)?;
    for n in 1..=3 {
        let nd = dir.join(format!("nodes/n{n}/data"));
        std::fs::create_dir_all(&nd).map_err(werr)?;
        std::fs::write(nd.join("dcf-node.log"), "2026-01-01T00:00:00Z INFO dcf: started\n2026-01-01T00:00:05Z ERROR dcf: send to n1 failed: timed out\n").map_err(werr)?;
        std::fs::write(dir.join(format!("nodes/n{n}/stderr.log")), "").map_err(werr)?;
    }
    let findings = (1..=3)
        .map(|n| LogFinding {
            node: format!("n{n}"),
            file: "dcf-node.log".into(),
            line: 2,
            kind: "error".into(),
            text: "2026-01-01T00:00:05Z ERROR dcf: send to n1 failed: timed out".into(),
        })
        .collect();
    let mut results = ResultsFile {
        format_version: FORMAT_VERSION,
        node_panics: Some(0),
        log_findings: Some(findings),
        run: RunObservations {
            recovered: Some(true),
            ..RunObservations::default()
        },
        ..ResultsFile::default()
    };
    if o.check {
        let opts = CheckOptions {
            checker: Some(Checker::Linearizable(ModelKind::CasRegister)),
            ..CheckOptions::default()
        };
        let r = checker::check_history(&h, &opts).map_err(|e| ReportError::Parse {
            path: dir.join(run_folder::HISTORY_FILE),
            message: e.to_string(),
        })?;
        results.valid = Some(r.valid);
        results.checker = Some(r);
    } else {
        results.valid = Some(Validity::Unknown);
    }
    run_folder::write(&dir.join(run_folder::RESULTS_FILE), &results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_histories_are_linearizable_unless_a_read_is_injected() {
        let dir = tempfile::tempdir().unwrap();
        let o = SyntheticOptions {
            ops: 1500,
            ..SyntheticOptions::default()
        };
        write_run(dir.path(), &o).unwrap();
        let r: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(r["valid"], true, "{}", r["checker"]);
        let o = SyntheticOptions {
            inject_stale_read: true,
            ..o
        };
        write_run(dir.path(), &o).unwrap();
        let r: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(r["valid"], false);
        assert!(r["checker"]["explanation"].is_object());
        assert_eq!(
            history(&o)
                .ops
                .iter()
                .filter(|o| o.process.is_nemesis())
                .count()
                % 2,
            0
        );
    }
}
