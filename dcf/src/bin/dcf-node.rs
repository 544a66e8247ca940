//! `dcf-node`: one DCF node serving a key-value state machine on stream 1.
//!
//! ```text
//! dcf-node --node-id 1 --config '[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1711,"role":"LEADER"},...]' \
//!          --data-dir /tmp/n1 --client-addr 127.0.0.1:2711 [--param ELECTION_TIMEOUT=1000 ...]
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use dcf::kv::server::{Server, ServerOptions};
use dcf::params::Params;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Runs one DCF node with a key-value state machine on stream 1.
///
/// Clients (dcfctl, the harness) talk to --client-addr; nodes talk to each
/// other on the ip:port of their entry in --config. On first start the
/// config is persisted under --data-dir; later starts use the persisted copy.
/// Logs go to stderr and to <data-dir>/dcf-node.log (RUST_LOG filters them).
#[derive(Parser, Debug)]
#[command(name = "dcf-node", version)]
struct Args {
    /// This node's id (1..255); it must appear in --config.
    #[arg(long)]
    node_id: u32,
    /// The DCF config JSON array (stream_id, node_id, ip, port, role[, weight, group, priority]).
    #[arg(long)]
    config: String,
    /// Where metadata, logs and control files live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address for client connections, HOST:PORT.
    #[arg(long)]
    client_addr: SocketAddr,
    /// A DCF parameter, NAME=VALUE (repeatable), e.g. ELECTION_TIMEOUT=1000.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// How long a write waits to be applied before the client gets an
    /// indeterminate reply, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// A deliberate defect, for testing a harness only (repeatable):
    /// local-reads, ack-before-fsync, read-lease, unsafe-member-change,
    /// minority-without-term-bump, no-checksum, truncate-without-checkpoint,
    /// duplicate-apply, old-term-commit, vote-not-persisted, no-step-down,
    /// apply-beyond-commit (dcf/src/planted.rs says which rule each
    /// breaks). Refused unless the environment has DCF_ALLOW_PLANTED_BUGS=1.
    #[arg(long = "planted-bug", value_name = "NAME")]
    planted_bugs: Vec<dcf::planted::PlantedBug>,
    /// Deprecated spelling of `--planted-bug local-reads`.
    #[arg(long, hide = true)]
    unsafe_local_reads: bool,
    /// Applied entries between automatic checkpoints of the key-value
    /// state (written under <data-dir>/kv/); the log is then truncated
    /// below the older of the two kept checkpoints. 0 turns automatic
    /// checkpoints off (`dcfctl truncate` still takes one first).
    #[arg(long, default_value_t = dcf::kv::server::DEFAULT_SNAPSHOT_INTERVAL)]
    snapshot_interval: u64,
    /// Entries kept in the log behind the newest checkpoint, at least, so
    /// that followers slightly behind catch up from the log.
    #[arg(long, default_value_t = dcf::kv::server::DEFAULT_SNAPSHOT_RETENTION)]
    snapshot_retention: u64,
    /// Do not send checkpoints to nodes that need entries this node
    /// compacted away: they only raise MISSING_LOG, as DCF does.
    #[arg(long)]
    no_snapshot_transfer: bool,
}

fn init_logging(data_dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let path = data_dir.join("dcf-node.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file)),
        )
        .try_init()
        .context("cannot set up logging")?;
    Ok(())
}

fn parse_params(raw: &[String]) -> Result<Params> {
    let mut params = Params::default();
    for p in raw {
        let Some((name, value)) = p.split_once('=') else {
            bail!("--param {p:?} is not NAME=VALUE");
        };
        params
            .set(name, value)
            .with_context(|| format!("--param {p}"))?;
    }
    Ok(params)
}

async fn run(args: Args) -> Result<()> {
    let params = parse_params(&args.params)?;
    dcf::core::ClusterConfig::parse(&args.config).context("--config")?;
    init_logging(&args.data_dir)?;
    let mut opts = ServerOptions::new(args.node_id, args.config, args.data_dir, args.client_addr);
    opts.params = params;
    opts.request_timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    let mut planted = dcf::planted::PlantedBugs::allowed(args.planted_bugs.iter().copied())
        .map_err(anyhow::Error::msg)?;
    if args.unsafe_local_reads {
        planted = dcf::planted::PlantedBugs::of(
            planted.iter().chain([dcf::planted::PlantedBug::LocalReads]),
        );
    }
    opts.planted = planted;
    opts.snapshot_interval = args.snapshot_interval;
    opts.snapshot_retention = args.snapshot_retention;
    opts.snapshot_transfer = !args.no_snapshot_transfer;
    let server = Server::start(opts).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcf-node: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("dcf-node: {e:#}");
        std::process::exit(1);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}
