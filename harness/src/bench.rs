//! `dcf-harness bench`: throughput and latency of each system under the
//! same closed-loop load, in one run on one machine, so that the systems
//! are compared under the same conditions rather than across papers.
//!
//! For each system in turn a 3-node cluster is started on loopback
//! ([`cluster`]), then for each client count the generator ([`load`])
//! runs a warm-up and a measured window; the results are printed as one
//! table ([`table`]) and written to `store/bench-<timestamp>/bench.json`
//! beside the clusters' node folders (logs; data is removed unless
//! `--keep-data`).

pub mod client;
pub mod cluster;
pub mod load;
pub mod table;

use crate::exit;
use clap::Args;
use client::BenchOp;
use cluster::{BenchCluster, BenchSystem, Binaries, NODES};
use load::LoadSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;
use table::{BenchReport, Row};

/// Options of `dcf-harness bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Systems to measure, comma-separated, in this order; ratios compare
    /// the first with each other one.
    #[arg(long, value_delimiter = ',', default_value = "dcf,etcd", value_parser = BenchSystem::parse)]
    pub system: Vec<BenchSystem>,
    /// Client counts, comma-separated: one measurement each. Every client
    /// has its own connection and one request in flight.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: Vec<u32>,
    /// Bytes per written value.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub value_size: u32,
    /// Seconds measured per client count.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub time: u64,
    /// Seconds of load before each measured window, not counted.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// What the clients send.
    #[arg(long, value_enum, default_value_t = BenchOp::Put)]
    pub op: BenchOp,
    /// The dcf-node binary (default: next to dcf-harness).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary (default: `etcd` on PATH; Debian: `apt-get install
    /// etcd-server`).
    #[arg(long)]
    pub etcd_binary: Option<PathBuf>,
    /// Keep the clusters' data directories (by default only logs stay).
    #[arg(long)]
    pub keep_data: bool,
    /// Where the bench's folder goes.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
}

/// Runs the bench; returns the exit status (0 done, 255 a cluster could
/// not be started or measured, 130 interrupted).
pub fn run(args: &BenchArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dcf-harness bench: {e:#}");
            exit::HARNESS_FAILURE
        }
    }
}

fn run_inner(args: &BenchArgs) -> anyhow::Result<i32> {
    // A missing binary is found before any cluster starts.
    if args.system.contains(&BenchSystem::Etcd) {
        crate::deploy::etcd::find_binary(args.etcd_binary.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let dir = args
        .store
        .join(format!("bench-{}", crate::store::timestamp()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let setup = format!(
        "{NODES}-node clusters on loopback, fsync on, {} requests of {}-byte values, \
         clients talk to the leader; {} s warm-up + {} s measured per client count; {cores} cores",
        args.op.name(),
        args.value_size,
        args.warmup,
        args.time
    );
    println!("bench: {setup}");
    println!("bench: results in {}", dir.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let binaries = Binaries {
        node: args.node_binary.clone(),
        etcd: args.etcd_binary.clone(),
    };
    let mut rows = Vec::new();
    let mut interrupted = false;
    for &system in &args.system {
        if interrupted {
            break;
        }
        let base = dir.join(system.name());
        println!("bench: starting a {NODES}-node {} cluster", system.name());
        let cluster = BenchCluster::start(system, &base, &binaries)?;
        tracing::info!(cluster = %cluster.describe(), "bench cluster up");
        for &clients in &args.clients {
            let spec = LoadSpec {
                clients,
                warmup: Duration::from_secs(args.warmup),
                measure: Duration::from_secs(args.time),
                value_size: args.value_size as usize,
                op: args.op,
            };
            println!(
                "bench: {} with {clients} clients ({} s)",
                system.name(),
                args.warmup + args.time
            );
            let measured = rt.block_on(async {
                tokio::select! {
                    r = load::run(&spec, |i| cluster.connect(i)) => Some(r),
                    _ = tokio::signal::ctrl_c() => None,
                }
            });
            match measured {
                Some(Ok(result)) => {
                    if result.errors > 0 {
                        println!(
                            "bench: {} errors, first: {}",
                            result.errors,
                            result.first_error.as_deref().unwrap_or("?")
                        );
                    }
                    rows.push(Row {
                        system: system.name().to_string(),
                        result,
                    });
                }
                Some(Err(e)) => {
                    let _ = cluster.stop();
                    anyhow::bail!("{} with {clients} clients: {e}", system.name());
                }
                None => {
                    eprintln!("\ndcf-harness bench: interrupted; stopping the cluster");
                    interrupted = true;
                    break;
                }
            }
        }
        cluster.stop()?;
        if !args.keep_data {
            remove_data_dirs(&base);
        }
    }
    let report = BenchReport {
        command: std::env::args().collect(),
        setup,
        cores,
        op: args.op.name().to_string(),
        value_size: args.value_size as usize,
        warmup_secs: args.warmup,
        measure_secs: args.time,
        ratios: table::ratios(&rows),
        rows,
    };
    print!("{}", table::render(&report));
    let json = dir.join("bench.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)?;
    println!("bench: {}", json.display());
    Ok(if interrupted { exit::INTERRUPTED } else { 0 })
}

/// Removes `*/data` under a cluster's folder (node folders keep logs).
fn remove_data_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let data = e.path().join("data");
        if data.is_dir() {
            if let Err(err) = std::fs::remove_dir_all(&data) {
                tracing::warn!(path = %data.display(), %err, "could not remove bench data");
            }
        }
    }
}
