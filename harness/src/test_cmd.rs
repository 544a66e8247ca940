//! `dcf-harness test`: deploy → wait for a leader → run the workload with
//! the nemesis alongside → heal → wait for recovery → final reads →
//! collect logs and data → tear down → check. Teardown also runs on
//! Ctrl-C, SIGTERM, errors and panics (the deployment tears itself down
//! when dropped).

use crate::analysis;
use crate::cli::{self, NemesisList, ScheduleArg, WorkloadChoice};
use crate::deploy::{ClusterSpec, DeployChoice, Deployment, EtcdOptions, KindOptions, System};
use crate::error::HarnessError;
use crate::exit;
use crate::interpreter::{self, Counters, InterpreterOptions, SharedWorkload};
use crate::logscan;
use crate::progress::{self, CurrentFault};
use crate::recorder::Recorder;
use crate::store::RunDir;
use checker::{Op, OpType, Process, Validity};
use dcf::planted::PlantedBug;
use nemesis::{
    Action, ClusterControl, DefaultTiming, FaultChoice, FaultKind, Nemesis, NemesisEvent, Phase,
    Schedule,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use reports::run_folder::{
    DeploymentRecord, FinalReads, NodeExit, OpCounts, ResultsFile, RunObservations, TestFile,
    FORMAT_VERSION,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::client::Target;
use workloads::etcd::ReadMode;

/// Options of `dcf-harness test`. Every value is checked while the
/// command line is parsed (see [`crate::cli`]): a bad one is a usage error
/// before anything is created.
#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct TestArgs {
    /// Number of dcf-node processes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub nodes: u32,
    /// What clients do.
    #[arg(long, default_value = "register", value_parser = cli::workload())]
    pub workload: WorkloadChoice,
    /// Comma-separated fault kinds for the randomised schedule, or none.
    #[arg(long, default_value = "partition,kill,pause", value_parser = cli::nemesis())]
    pub nemesis: NemesisList,
    /// An explicit fault schedule instead of the randomised default, e.g.
    /// "5:partition:halves,15:heal,20:kill:leader,28:restart".
    #[arg(long, value_parser = cli::schedule, long_help = cli::schedule_help())]
    pub schedule: Option<ScheduleArg>,
    /// Seconds of workload.
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Check the history every few seconds while the run goes on and end
    /// the workload as soon as it is invalid (then heal, final reads and
    /// the full check as usual). For campaigns that hunt bugs: a caught
    /// bug costs seconds instead of the whole time limit. Off with
    /// minority mode.
    #[arg(long)]
    pub stop_on_invalid: bool,
    /// Target operations per second over all clients (0: as fast as possible).
    #[arg(long, default_value_t = 200.0, value_parser = cli::non_negative)]
    pub rate: f64,
    /// Client processes at once.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub concurrency: usize,
    /// Seed of every random choice (printed; pass it to reproduce a run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The dcf-node binary (default: next to dcf-harness, then $PATH).
    #[arg(long, value_parser = cli::existing_file)]
    pub node_binary: Option<PathBuf>,
    /// Name of the test in the store (default: <workload>-<nemesis>).
    #[arg(long)]
    pub name: Option<String>,
    /// Retries of a write whose outcome is unknown (a timeout, a lost
    /// connection), each with the write's tag on the next node, so the
    /// node's exactly-once rule answers it; 0 (the default, as a Jepsen
    /// client) records it as unknown at once and keeps every client on
    /// its node, which is what exposes a cut-off leader's stale reads.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub write_retries: u32,
    /// Timeout of each client call, in milliseconds.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    pub op_timeout_ms: u64,
    /// Where and how nodes are deployed.
    #[arg(long, default_value = "auto", value_parser = cli::deployment())]
    pub deploy: DeployChoice,
    /// The options of the deployment kinds.
    #[command(flatten)]
    #[serde(flatten)]
    pub deploy_options: KindOptions,
    /// A DCF parameter for every node, NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = cli::param, default_values_t = DEFAULT_PARAMS.map(String::from))]
    pub params: Vec<String>,
    /// TEST-ONLY: start every node with this deliberate defect, to show
    /// that a fault catches the class of bug it stands for (repeatable;
    /// `dcf-harness zoo --help` and dcf/src/planted.rs list them). A run
    /// with one is expected to end invalid.
    #[arg(long = "planted-bug", value_name = "NAME", value_parser = cli::planted_bug)]
    pub planted_bugs: Vec<PlantedBug>,
    /// The same as `--planted-bug local-reads` (kept for older scripts).
    #[arg(long, hide = true)]
    pub unsafe_local_reads: bool,
    /// Time limit of the checker, in seconds (then the verdict is unknown).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_timeout: u64,
    /// Accept a run in which a requested fault kind cannot be injected here
    /// (partitions without root or iptables). Without it such a run is
    /// unknown, since it did not test what was asked.
    #[arg(long)]
    pub accept_unsupported_faults: bool,
    /// The system under test: our dcf-node, or etcd members (one per
    /// node, from --etcd-binary) driven by the same workloads and faults.
    #[arg(long, value_enum, default_value_t = SystemChoice::Dcf)]
    pub system: SystemChoice,
    /// The etcd binary for --system etcd (default: `etcd` on PATH).
    #[arg(long, value_name = "PATH")]
    pub etcd_binary: Option<PathBuf>,
    /// With --system etcd: serializable reads (served by the contacted
    /// member from its own state, possibly stale) instead of etcd's
    /// default linearizable reads. Expected to end invalid under
    /// partitions.
    #[arg(long)]
    pub etcd_serializable_reads: bool,
    /// With --system etcd: keep each member's data directory in the run
    /// folder (deleted by default: etcd preallocates 64 MB of WAL per
    /// member).
    #[arg(long)]
    pub etcd_keep_data: bool,
}

/// `--system`: what runs on the nodes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemChoice {
    /// Our dcf-node.
    Dcf,
    /// etcd (3.4 and later), through its v3 gRPC API.
    Etcd,
}

/// `--param`'s default: the DCF parameters every run gets unless told
/// otherwise.
const DEFAULT_PARAMS: [&str; 2] = ["ELECTION_TIMEOUT=1000", "HEARTBEAT_INTERVAL=200"];

impl TestArgs {
    /// Checks the options together that clap checks one by one: the
    /// deployment kind's options, and the options that do not apply to
    /// the chosen system (DCF-only options and faults with `--system
    /// etcd`, etcd options without it). The error is one line naming the
    /// option and why; the caller exits 64 before anything is created.
    pub fn validate(&self) -> Result<(), String> {
        if self.system == SystemChoice::Dcf {
            self.deploy.validate(&self.deploy_options)?;
            for (given, name) in [
                (self.etcd_binary.is_some(), "--etcd-binary"),
                (self.etcd_serializable_reads, "--etcd-serializable-reads"),
                (self.etcd_keep_data, "--etcd-keep-data"),
            ] {
                if given {
                    return Err(format!("{name} applies only with --system etcd"));
                }
            }
            return Ok(());
        }
        let not_etcd = |option: &str, why: &str| {
            Err(format!("{option} does not apply to --system etcd: {why}"))
        };
        if !self.planted_bugs().is_empty() {
            return not_etcd("--planted-bug", "the planted bugs are defects of dcf-node");
        }
        if self.write_retries != 0 {
            return not_etcd(
                "--write-retries",
                "retries carry dcf-node's exactly-once tags; etcd has none, so a retried write could apply twice",
            );
        }
        if self.node_binary.is_some() {
            return not_etcd("--node-binary", "etcd members run --etcd-binary");
        }
        if self.params != DEFAULT_PARAMS.map(String::from) {
            return not_etcd(
                "--param",
                "DCF parameters; etcd members run with etcd's defaults",
            );
        }
        if self.deploy.kind.name != crate::deploy::local::KIND.name {
            return not_etcd(
                &format!("--deploy {}", self.deploy),
                "etcd runs on the local deployment only",
            );
        }
        let (choices, schedule) = fault_plan(self);
        for kind in requested_kinds(&choices, &schedule) {
            if let Some(why) = kind
                .needs()
                .iter()
                .find_map(|c| crate::deploy::etcd::not_applicable(*c))
            {
                let option = if choices.iter().any(|c| c.kind() == kind) {
                    "--nemesis"
                } else {
                    "--schedule"
                };
                return not_etcd(&format!("{option} {kind}"), why);
            }
        }
        // The member fault applies with the changes etcd's member API makes.
        let member_ops =
            choices
                .iter()
                .filter(|c| c.kind() == FaultKind::Member)
                .map(|c| match c {
                    FaultChoice::Any(_) => ("--nemesis", None),
                    FaultChoice::Exactly(f) => ("--nemesis", Some(f.arg_name())),
                })
                .chain(self.schedule.iter().flat_map(|s| &s.steps).filter_map(
                    |st| match st.action {
                        Action::Start(f) if f.kind() == FaultKind::Member => {
                            Some(("--schedule", Some(f.arg_name())))
                        }
                        _ => None,
                    },
                ));
        for (option, op) in member_ops {
            if let Some(why) = crate::deploy::etcd::member_op_not_applicable(op.as_deref()) {
                let named = op.map_or("member".to_string(), |op| format!("member:{op}"));
                return not_etcd(&format!("{option} {named}"), &why);
            }
        }
        self.deploy.validate(&self.deploy_options)
    }

    /// The planted bugs the nodes run with, `--unsafe-local-reads` included.
    pub fn planted_bugs(&self) -> BTreeSet<PlantedBug> {
        let mut bugs: BTreeSet<PlantedBug> = self.planted_bugs.iter().copied().collect();
        if self.unsafe_local_reads {
            bugs.insert(PlantedBug::LocalReads);
        }
        bugs
    }
}

/// How a test ended: a verdict, or a harness failure with its cause.
pub enum TestOutcome {
    Verdict {
        valid: Validity,
        run: PathBuf,
    },
    HarnessFailure {
        cause: HarnessError,
        run: Option<PathBuf>,
    },
}

impl TestOutcome {
    /// The process exit status (see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            TestOutcome::Verdict { valid, .. } => exit::exit_code(*valid),
            TestOutcome::HarnessFailure { .. } => exit::HARNESS_FAILURE,
        }
    }
}

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Finds the dcf-node binary: the option, next to this executable, or $PATH.
pub fn find_node_binary(opt: &Option<PathBuf>) -> Result<PathBuf, HarnessError> {
    if let Some(p) = opt {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(HarnessError::NodeBinaryMissing(p.clone()))
        };
    }
    if let Some(p) = crate::deploy::find_node_binary() {
        return Ok(p);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&paths) {
            let c = d.join("dcf-node");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    Err(HarnessError::NodeBinaryNotFound)
}

fn nemesis_op(ev: &NemesisEvent) -> Op {
    let kind = match ev.phase {
        Phase::Invoke => OpType::Invoke,
        Phase::Info => OpType::Info,
    };
    let mut op = Op::new(Process::Nemesis, kind, ev.f.clone(), ev.value.clone());
    op.error = ev.error.clone().map(Value::String);
    op
}

fn describe(ev: &NemesisEvent) -> String {
    if ev.f.starts_with("stop") {
        return String::new();
    }
    let kind = ev.f.trim_start_matches("start-");
    let what = nemesis::style_of(kind).map_or(kind, |s| s.label);
    let detail = ev
        .value
        .get("topology")
        .or_else(|| ev.value.get("targets"))
        .or_else(|| ev.value.get("op"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!("{what} {detail}").trim().to_string()
}

/// Runs one test. Never panics on bad input; all problems end up in the outcome.
pub fn run(args: TestArgs, command_line: Vec<String>) -> TestOutcome {
    let seed = args.seed.unwrap_or_else(rand::random);
    let nemesis_name = args.nemesis.to_string().replace(',', "+").replace(':', "-");
    let name = args.name.clone().unwrap_or_else(|| match args.system {
        SystemChoice::Dcf => format!("{}-{}", args.workload, nemesis_name),
        SystemChoice::Etcd => format!("etcd-{}-{}", args.workload, nemesis_name),
    });
    let run_dir = match RunDir::create(&args.store, &name) {
        Ok(r) => r,
        Err(e) => {
            return TestOutcome::HarnessFailure {
                cause: HarnessError::RunFolder {
                    store: args.store.clone(),
                    source: e,
                },
                run: None,
            }
        }
    };
    eprintln!("dcf-harness: run {} (seed {seed})", run_dir.path.display());
    let test_file = TestFile {
        format_version: FORMAT_VERSION,
        name: Some(name),
        workload: Some(args.workload.name().to_string()),
        seed: Some(seed),
        command_line,
        git_revision: git_revision(),
        start_time: Some(crate::store::timestamp()),
        options: &args,
    };
    if let Err(e) = run_dir.write_test(&test_file) {
        return TestOutcome::HarnessFailure {
            cause: HarnessError::RunFile {
                file: reports::run_folder::TEST_FILE,
                source: e,
            },
            run: Some(run_dir.path),
        };
    }
    let outcome = match run_inner(&args, seed, &run_dir) {
        Ok(known) => {
            let check_timeout = Duration::from_secs(args.check_timeout);
            match analysis::analyze(&run_dir, check_timeout, known) {
                Ok(a) => TestOutcome::Verdict {
                    valid: a.valid,
                    run: run_dir.path.clone(),
                },
                Err(e) => TestOutcome::HarnessFailure {
                    cause: e.into(),
                    run: Some(run_dir.path.clone()),
                },
            }
        }
        Err(cause) => {
            let _ = run_dir.write_results(&ResultsFile::harness_failure(cause.to_string()));
            TestOutcome::HarnessFailure {
                cause,
                run: Some(run_dir.path.clone()),
            }
        }
    };
    if let Some(report) = write_reports(&run_dir.path, &args.store) {
        println!("report: {}", report.display());
    }
    outcome
}

/// Writes the run's `report.html` and regenerates the store's index.
/// Failures are warnings: a report never changes the verdict or exit code.
pub fn write_reports(run: &std::path::Path, store: &std::path::Path) -> Option<PathBuf> {
    let report = reports::write_run_report(run)
        .map_err(|e| eprintln!("dcf-harness: warning: report.html not written: {e}"))
        .ok();
    if let Err(e) = reports::write_index(store) {
        eprintln!("dcf-harness: warning: store index not written: {e}");
    }
    report
}

/// The part of a run that needs a cluster; returns what it observed, for
/// `results.json`. The deployment is torn down before this returns, on
/// every path (explicitly, or by its `Drop` on error and panic).
fn run_inner(args: &TestArgs, seed: u64, run_dir: &RunDir) -> Result<ResultsFile, HarnessError> {
    let spec = cluster_spec(args, run_dir)?;
    let deployment = args
        .deploy
        .build(spec, &args.deploy_options)
        .map_err(HarnessError::Deploy)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let result = deployment
        .setup()
        .map_err(HarnessError::Deploy)
        .and_then(|_| drive(args, seed, run_dir, deployment.clone(), interrupted.clone()));
    let description = collect_and_tear_down(&*deployment, run_dir);
    let mut known = ResultsFile {
        run: result?,
        ..ResultsFile::default()
    };
    known.run.deployment = Some(DeploymentRecord {
        kind: Some(deployment.kind().to_string()),
        description,
        tag: Some(deployment.tag().to_string()),
    });
    if interrupted.load(Ordering::Relaxed) {
        known.run.interrupted = Some(true);
    }
    logscan::record(&mut known, &run_dir.nodes());
    Ok(known)
}

/// What to deploy: the nodes, their binary and their options.
fn cluster_spec(args: &TestArgs, run_dir: &RunDir) -> Result<ClusterSpec, HarnessError> {
    // The server answers `info` before the client gives up on a write.
    let server_timeout = (args.op_timeout_ms * 2 / 3).max(1);
    let mut extra_args = vec![
        "--request-timeout-ms".to_string(),
        server_timeout.to_string(),
    ];
    let bugs = args.planted_bugs();
    for bug in &bugs {
        extra_args.push("--planted-bug".into());
        extra_args.push(bug.name().into());
    }
    let env = if bugs.is_empty() {
        Vec::new()
    } else {
        vec![(dcf::planted::ALLOW_ENV.to_string(), "1".to_string())]
    };
    let (kinds, schedule) = fault_plan(args);
    let (node_binary, system) = match args.system {
        SystemChoice::Dcf => (find_node_binary(&args.node_binary)?, System::Dcf),
        SystemChoice::Etcd => {
            let binary = crate::deploy::etcd::find_binary(args.etcd_binary.as_deref())
                .map_err(HarnessError::EtcdBinary)?;
            let options = EtcdOptions {
                binary: binary.clone(),
                keep_data: args.etcd_keep_data,
            };
            (binary, System::Etcd(options))
        }
    };
    let powercut_data = requested_kinds(&kinds, &schedule).contains(&FaultKind::PowerLoss);
    // Capabilities to prepare before the nodes start (clock, slow-net).
    let prepare = requested_kinds(&kinds, &schedule)
        .into_iter()
        .flat_map(|k| k.needs().iter().copied())
        .collect();
    Ok(ClusterSpec {
        powercut_data,
        nodes: args.nodes,
        node_binary,
        system,
        base_dir: run_dir.nodes(),
        params: args.params.clone(),
        extra_args,
        env,
        spare_nodes: crate::membership::spare_nodes_for(args),
        prepare,
    })
}

/// Collects every node's logs and data into the run folder, then tears
/// the deployment down, whatever happened before; returns its description.
fn collect_and_tear_down(deployment: &dyn Deployment, run_dir: &RunDir) -> String {
    for id in deployment.node_ids() {
        let dest = run_dir.nodes().join(format!("n{id}"));
        if let Err(e) = deployment.collect(id, &dest) {
            eprintln!("dcf-harness: collecting node {id}: {e}");
        }
    }
    let description = deployment.describe();
    if let Err(e) = deployment.teardown() {
        eprintln!("dcf-harness: teardown: {e}");
    }
    description
}

/// The fault kinds of the randomised schedule and the schedule to follow:
/// the explicit one, none without kinds, else the randomised default.
fn fault_plan(args: &TestArgs) -> (Vec<FaultChoice>, Schedule) {
    let choices = args.nemesis.0.clone();
    let schedule = match &args.schedule {
        Some(s) if s.serial => Schedule::Serial(DefaultTiming::default()),
        Some(s) => match s.repeat {
            Some(every) => Schedule::Repeating {
                steps: s.steps.clone(),
                every,
            },
            None => Schedule::Explicit(s.steps.clone()),
        },
        None if choices.is_empty() => Schedule::Explicit(Vec::new()),
        None => Schedule::default(),
    };
    (choices, schedule)
}

/// Runs the test on a set-up deployment: start the nodes and wait for a
/// leader, run the workload with the nemesis alongside, heal, wait for
/// recovery, read the final state. Returns what the run observed.
fn drive(
    args: &TestArgs,
    seed: u64,
    run_dir: &RunDir,
    deployment: Arc<dyn Deployment>,
    interrupted: Arc<AtomicBool>,
) -> Result<RunObservations, HarnessError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(HarnessError::Runtime)?;
    let (kinds, schedule) = fault_plan(args);
    start_cluster(args, &*deployment, &requested_kinds(&kinds, &schedule))?;
    let live = Live::begin(args, rt, deployment, run_dir, interrupted)?;
    let control: Arc<dyn ClusterControl> = live.deployment.clone().control();
    let stopped_on_invalid = Arc::new(Mutex::new(None));
    let watcher = early_stop_watcher(
        args,
        &kinds,
        &schedule,
        &live,
        &run_dir.nodes(),
        &stopped_on_invalid,
    );
    let nemesis = Arc::new(Nemesis::new(control, kinds, schedule, seed));
    let nemesis_thread = live.spawn_nemesis(nemesis.clone());
    let workload = (args.workload.0.build)();
    let iopts = InterpreterOptions {
        codec: workload.codec(),
        concurrency: args.concurrency,
        rate: args.rate,
        time_limit: live.limit,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        endpoints: live.deployment.client_endpoints(),
        seed,
        write_retries: args.write_retries,
        target: client_target(args, &*live.deployment),
    };
    let workload: SharedWorkload = Arc::new(Mutex::new((workload, StdRng::seed_from_u64(seed))));
    let done = Arc::new(AtomicBool::new(false));
    let progress_task = live.rt.spawn(progress::show(
        live.counters.clone(),
        live.fault.clone(),
        live.limit,
        done.clone(),
    ));
    let next_process = live.rt.block_on(interpreter::run_workers(
        &iopts,
        workload.clone(),
        live.recorder.clone(),
        live.counters.clone(),
        live.stop.clone(),
    ));
    live.stop.store(true, Ordering::Relaxed);
    let _ = nemesis_thread.join();
    if let Some(w) = watcher {
        let _ = w.join();
    }
    let recovered = live.heal_and_recover(&nemesis);
    let node_exits = node_exits(&*live.deployment, &nemesis);
    // Final reads go to the members as they are now.
    let iopts = InterpreterOptions {
        endpoints: live.deployment.client_endpoints(),
        target: client_target(args, &*live.deployment),
        ..iopts
    };
    let final_reads = live.read_final_state(&workload, &iopts, next_process);
    done.store(true, Ordering::Relaxed);
    let _ = live.rt.block_on(progress_task);
    let (ok, fail, info) = live.finish()?;
    let stopped_on_invalid_ms = *stopped_on_invalid.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "dcf-harness: {} ops (ok {ok}, fail {fail}, info {info}); final reads {}/{}; checking",
        ok + fail + info,
        final_reads.ok,
        final_reads.total
    );
    Ok(RunObservations {
        recovered: Some(recovered),
        final_reads: Some(final_reads),
        client_ops: Some(OpCounts { ok, fail, info }),
        node_exits: Some(node_exits),
        stopped_on_invalid_ms,
        ..RunObservations::default()
    })
}

/// How the clients talk to the deployment's nodes (whose client
/// endpoints are in node-id order of its current members).
fn client_target(args: &TestArgs, deployment: &dyn Deployment) -> Target {
    match args.system {
        SystemChoice::Dcf => Target::Dcf,
        SystemChoice::Etcd => Target::Etcd {
            reads: if args.etcd_serializable_reads {
                ReadMode::Serializable
            } else {
                ReadMode::Linearizable
            },
            node_ids: deployment.nodes().iter().map(|n| n.id).collect(),
        },
    }
}

/// With `--stop-on-invalid`, a thread that ends the workload once the
/// history is invalid (not with minority mode, whose checker may allow
/// what the plain one refutes).
fn early_stop_watcher(
    args: &TestArgs,
    choices: &[FaultChoice],
    schedule: &Schedule,
    live: &Live,
    nodes_dir: &std::path::Path,
    stopped_at: &Arc<Mutex<Option<u64>>>,
) -> Option<std::thread::JoinHandle<()>> {
    if !args.stop_on_invalid {
        return None;
    }
    let checker = if requested_kinds(choices, schedule).contains(&FaultKind::Minority) {
        eprintln!("dcf-harness: --stop-on-invalid watches only node alarms with minority mode");
        None
    } else {
        crate::analysis::checker_for(&args.workload.to_string())
    };
    let watch = crate::early_stop::Watch {
        recorder: live.recorder.clone(),
        checker,
        nodes_dir: Some(nodes_dir.to_path_buf()),
    };
    Some(crate::early_stop::spawn(
        watch,
        live.stop.clone(),
        stopped_at.clone(),
    ))
}

/// Starts every node, warns about requested faults this deployment cannot
/// inject, and waits (up to 30 s) for a leader.
fn start_cluster(
    args: &TestArgs,
    deployment: &dyn Deployment,
    requested: &BTreeSet<FaultKind>,
) -> Result<(), HarnessError> {
    deployment.start_all().map_err(HarnessError::StartNodes)?;
    eprintln!(
        "dcf-harness: {} nodes up ({}), waiting for a leader",
        args.nodes,
        deployment.describe()
    );
    if !args.accept_unsupported_faults {
        warn_unsupported_faults(deployment, requested);
    }
    let leader_deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(l) = deployment.leader() {
            break l;
        }
        if Instant::now() > leader_deadline {
            return Err(HarnessError::NoLeader);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "dcf-harness: node {leader} leads; running {} for {} s",
        args.workload, args.time_limit
    );
    Ok(())
}

/// What the phases of a running test share: the runtime, the deployment,
/// the history being recorded, the live counts and the flags that end the
/// workload.
struct Live {
    rt: tokio::runtime::Runtime,
    deployment: Arc<dyn Deployment>,
    recorder: Arc<Recorder>,
    counters: Arc<Counters>,
    fault: Arc<CurrentFault>,
    /// Ends the workload and the nemesis schedule.
    stop: Arc<AtomicBool>,
    /// Set by Ctrl-C or SIGTERM.
    interrupted: Arc<AtomicBool>,
    limit: Duration,
}

impl Live {
    /// Starts recording the history and listening for Ctrl-C and SIGTERM,
    /// which end the run early (teardown still happens).
    fn begin(
        args: &TestArgs,
        rt: tokio::runtime::Runtime,
        deployment: Arc<dyn Deployment>,
        run_dir: &RunDir,
        interrupted: Arc<AtomicBool>,
    ) -> Result<Live, HarnessError> {
        let recorder =
            Arc::new(Recorder::create(&run_dir.history()).map_err(HarnessError::HistoryCreate)?);
        let live = Live {
            rt,
            deployment,
            recorder,
            counters: Arc::new(Counters::default()),
            fault: Arc::new(CurrentFault::default()),
            stop: Arc::new(AtomicBool::new(false)),
            interrupted,
            limit: Duration::from_secs(args.time_limit),
        };
        let stop = live.stop.clone();
        let interrupted = live.interrupted.clone();
        live.rt.spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("\ndcf-harness: interrupted; healing and tearing down");
            interrupted.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        });
        Ok(live)
    }

    /// Runs the nemesis's schedule in its own thread until the time limit
    /// or `stop`, recording its events.
    fn spawn_nemesis(&self, nemesis: Arc<Nemesis>) -> std::thread::JoinHandle<()> {
        let recorder = self.recorder.clone();
        let fault = self.fault.clone();
        let stop = self.stop.clone();
        let deadline = Instant::now() + self.limit;
        std::thread::spawn(move || {
            let mut on_event = |ev: NemesisEvent| {
                if ev.phase == Phase::Info {
                    fault.set(describe(&ev));
                }
                recorder.record(nemesis_op(&ev));
            };
            nemesis.run(deadline, &stop, &mut on_event);
        })
    }

    /// Heals every fault, then gives the cluster up to 30 s to elect a
    /// leader; returns whether it did.
    fn heal_and_recover(&self, nemesis: &Nemesis) -> bool {
        self.fault.set("healing");
        nemesis.heal_all(&mut |ev: NemesisEvent| {
            self.recorder.record(nemesis_op(&ev));
        });
        self.fault.set("recovering");
        let recovery_deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < recovery_deadline {
            if self.deployment.leader().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The workload's final reads, unless the run was interrupted (then
    /// none are made and none are counted).
    fn read_final_state(
        &self,
        workload: &SharedWorkload,
        iopts: &InterpreterOptions,
        next_process: u64,
    ) -> FinalReads {
        if self.interrupted.load(Ordering::Relaxed) {
            return FinalReads::default();
        }
        self.fault.set("final reads");
        let reads = workload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .final_reads();
        let (ok, total) = self.rt.block_on(interpreter::final_reads(
            reads,
            iopts,
            &self.recorder,
            &self.counters,
            next_process + 1000,
            Duration::from_secs(30),
        ));
        FinalReads {
            ok: ok as u64,
            total: total as u64,
        }
    }

    /// Stops the runtime and returns the client operations by outcome;
    /// fails if the history could not be written in full.
    fn finish(self) -> Result<(u64, u64, u64), HarnessError> {
        self.rt.shutdown_timeout(Duration::from_secs(2));
        if let Some(e) = self.recorder.take_error() {
            return Err(HarnessError::HistoryWrite(e));
        }
        Ok(self.counters.snapshot())
    }
}

/// The fault kinds a run asks for: those of `--nemesis` and those its
/// explicit schedule names.
fn requested_kinds(choices: &[FaultChoice], schedule: &Schedule) -> BTreeSet<FaultKind> {
    let mut out: BTreeSet<FaultKind> = choices.iter().map(|c| c.kind()).collect();
    if let Schedule::Explicit(steps) | Schedule::Repeating { steps, .. } = schedule {
        out.extend(steps.iter().map(|s| match s.action {
            Action::Start(f) => f.kind(),
            Action::Stop(k) => k,
        }));
    }
    out
}

/// Says which requested fault kinds this deployment cannot inject, and why,
/// before the run: such a run ends unknown.
fn warn_unsupported_faults(deployment: &dyn Deployment, requested: &BTreeSet<FaultKind>) {
    for kind in requested {
        if let Some(why) = kind
            .needs()
            .iter()
            .find_map(|c| deployment.supports(*c).err())
        {
            eprintln!(
                "dcf-harness: warning: {kind} faults cannot be injected here ({why}); the run \
                 will be unknown unless --accept-unsupported-faults is given"
            );
        }
    }
}

/// Nodes not running once every fault was healed although no fault
/// stopped them: they exited on their own (a crash, a fatal error).
fn node_exits(deployment: &dyn Deployment, nemesis: &Nemesis) -> Vec<NodeExit> {
    // Restarts that failed leave their nodes in the killed set.
    let killed = nemesis.active().killed;
    deployment
        .node_ids()
        .into_iter()
        .filter(|id| !killed.contains(id) && !deployment.is_running(*id))
        .map(|id| NodeExit {
            node: format!("n{id}"),
            note: "its process was not running after the faults were healed, and no fault had stopped it".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TestArgs,
    }

    /// `test.json` as the harness writes it reads back as the report's
    /// typed options: the names the report decides on match the flags.
    #[test]
    fn test_json_options_read_back_as_the_reports_options() {
        let args = Cli::parse_from([
            "dcf-harness",
            "--nodes",
            "3",
            "--schedule",
            "1:kill:one,2:restart",
            "--accept-unsupported-faults",
        ])
        .args;
        let written = TestFile {
            format_version: FORMAT_VERSION,
            name: None,
            workload: Some(args.workload.name().to_string()),
            seed: Some(1),
            command_line: Vec::new(),
            git_revision: None,
            start_time: None,
            options: &args,
        };
        let read: TestFile =
            serde_json::from_value(serde_json::to_value(&written).unwrap()).unwrap();
        assert_eq!(read.format_version, FORMAT_VERSION);
        assert_eq!(read.workload.as_deref(), Some("register"));
        let o = &read.options;
        assert_eq!(o.nodes, Some(3));
        assert_eq!(o.nemesis.as_deref(), Some("partition,kill,pause"));
        assert_eq!(o.schedule.as_deref(), Some("1:kill:one,2:restart"));
        assert!(o.accepts_unsupported_faults());
        assert_eq!(o.other["rate"], serde_json::json!(200.0));
    }
}
