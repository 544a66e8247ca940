//! `dcfctl`: command-line client and admin tool of `dcf-node`.
//!
//! Exit codes: 0 ok, 1 definite failure, 2 indeterminate, 64 usage.

use clap::{Parser, Subcommand};
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody, Response};
use serde_json::Value;
use std::time::Duration;

const EXIT_OK: i32 = 0;
const EXIT_FAIL: i32 = 1;
const EXIT_INDETERMINATE: i32 = 2;
const EXIT_USAGE: i32 = 64;

/// Client and admin tool for a dcf-node cluster.
///
/// Endpoints are the nodes' client addresses. Writes and reads go to the
/// leader (other endpoints are tried in turn); status, cluster-info and the
/// parameter commands go to the first endpoint that answers.
/// Exit status: 0 ok, 1 definite failure, 2 indeterminate (a write may or
/// may not have taken effect), 64 usage error.
#[derive(Parser, Debug)]
#[command(name = "dcfctl", version)]
struct Cli {
    /// Comma-separated client addresses, e.g. 127.0.0.1:2711,127.0.0.1:2712.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Timeout of each request, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write VALUE (a string) to KEY.
    Put { key: String, value: String },
    /// Print KEY's value alone on stdout (linearizable read).
    Get { key: String },
    /// Set KEY to TO if it holds FROM.
    Cas {
        key: String,
        from: String,
        to: String,
    },
    /// Print the contacted node's stream info (JSON).
    Status,
    /// Print the contacted node's cluster info (JSON).
    ClusterInfo,
    /// Set a DCF parameter on the contacted node.
    SetParam { name: String, value: String },
    /// Print a DCF parameter of the contacted node.
    GetParam { name: String },
    /// Membership changes, one node at a time (run on the leader).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Hand leadership to a node (like `cm_ctl switchover`).
    Promote {
        #[arg(long)]
        node_id: u32,
        /// How long the handover may take.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Make the leader give up leadership.
    Demote,
    /// Set the contacted node's work mode: `normal`, or `minority --vote-num N`
    /// (emergency mode when the majority is lost; see the dcf-core docs for
    /// what it does and does not guarantee).
    SetWorkMode {
        /// normal or minority.
        mode: String,
        /// Votes that make a quorum in minority mode.
        #[arg(long)]
        vote_num: Option<u64>,
    },
    /// Change a node's election priority.
    SetPriority {
        #[arg(long)]
        node_id: u32,
        #[arg(long)]
        priority: u64,
    },
    /// Pause replication from the leader to a node.
    PauseRep {
        #[arg(long)]
        node_id: u32,
        #[arg(long)]
        time_us: u64,
    },
    /// DCF's `dcf_truncate` on the first endpoint's node: drop that node's
    /// log entries below FIRST_KEPT. The node first writes a checkpoint of
    /// its state if none covers FIRST_KEPT - 1, and never drops entries it
    /// has not applied. Prints the new first index. A follower that later
    /// needs a dropped entry receives the checkpoint (with
    /// --no-snapshot-transfer it reports MISSING_LOG).
    Truncate {
        #[arg(long)]
        first_kept: u64,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Add a node; start it first with a config that lists it.
    Add {
        #[arg(long)]
        node_id: u32,
        #[arg(long)]
        ip: String,
        #[arg(long)]
        port: u16,
        /// FOLLOWER, PASSIVE or LOGGER.
        #[arg(long, default_value = "FOLLOWER")]
        role: String,
        /// How long to wait for the change to commit.
        #[arg(long, default_value_t = 10_000)]
        wait_ms: u64,
    },
    /// Remove a node.
    Remove {
        #[arg(long)]
        node_id: u32,
        #[arg(long, default_value_t = 10_000)]
        wait_ms: u64,
    },
    /// Change a node's role (FOLLOWER <-> PASSIVE, LOGGER where safe).
    Role {
        #[arg(long)]
        node_id: u32,
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = 10_000)]
        wait_ms: u64,
    },
}

fn print_value(v: &Value) {
    match v {
        Value::String(s) => println!("{s}"),
        other => println!("{other}"),
    }
}

fn exit_for(resp: &Response) -> i32 {
    match resp.outcome {
        Outcome::Ok => EXIT_OK,
        Outcome::Fail => EXIT_FAIL,
        Outcome::Info => EXIT_INDETERMINATE,
    }
}

async fn run(cli: Cli) -> i32 {
    let endpoints: Vec<String> = cli
        .endpoints
        .iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if endpoints.is_empty() {
        eprintln!("dcfctl: --endpoints is empty");
        return EXIT_USAGE;
    }
    let mut client = KvClient::new(endpoints, Duration::from_millis(cli.timeout_ms.max(1)));
    let (body, follow_leader) = match &cli.command {
        Command::Put { key, value } => (
            RequestBody::Put {
                key: key.clone(),
                value: Value::String(value.clone()),
            },
            true,
        ),
        Command::Get { key } => (RequestBody::Get { key: key.clone() }, true),
        Command::Cas { key, from, to } => (
            RequestBody::Cas {
                key: key.clone(),
                from: Value::String(from.clone()),
                to: Value::String(to.clone()),
            },
            true,
        ),
        Command::Status => (RequestBody::Status, false),
        Command::ClusterInfo => (RequestBody::ClusterInfo, false),
        Command::SetParam { name, value } => (
            RequestBody::SetParam {
                name: name.clone(),
                value: value.clone(),
            },
            false,
        ),
        Command::GetParam { name } => (RequestBody::GetParam { name: name.clone() }, false),
        Command::Member(MemberCommand::Add {
            node_id,
            ip,
            port,
            role,
            wait_ms,
        }) => (
            RequestBody::MemberAdd {
                node_id: *node_id,
                ip: ip.clone(),
                port: *port,
                role: role.clone(),
                wait_ms: *wait_ms,
            },
            true,
        ),
        Command::Member(MemberCommand::Remove { node_id, wait_ms }) => (
            RequestBody::MemberRemove {
                node_id: *node_id,
                wait_ms: *wait_ms,
            },
            true,
        ),
        Command::Member(MemberCommand::Role {
            node_id,
            role,
            wait_ms,
        }) => (
            RequestBody::MemberRole {
                node_id: *node_id,
                role: role.clone(),
                wait_ms: *wait_ms,
            },
            true,
        ),
        Command::Promote {
            node_id,
            timeout_ms,
        } => (
            RequestBody::Promote {
                node_id: *node_id,
                timeout_ms: *timeout_ms,
            },
            true,
        ),
        Command::Demote => (RequestBody::Demote, true),
        Command::SetWorkMode { mode, vote_num } => {
            match mode.as_str() {
                "normal" if vote_num.is_none() => {}
                "minority" if vote_num.is_some() => {}
                _ => {
                    eprintln!("dcfctl: set-work-mode takes `normal` or `minority --vote-num N`");
                    return EXIT_USAGE;
                }
            }
            (
                RequestBody::SetWorkMode {
                    mode: mode.clone(),
                    vote_num: *vote_num,
                },
                false,
            )
        }
        Command::SetPriority { node_id, priority } => (
            RequestBody::SetPriority {
                node_id: *node_id,
                priority: *priority,
                wait_ms: 10_000,
            },
            true,
        ),
        Command::PauseRep { node_id, time_us } => (
            RequestBody::PauseRep {
                node_id: *node_id,
                time_us: *time_us,
            },
            true,
        ),
        Command::Truncate { first_kept } => (
            RequestBody::Truncate {
                first_kept: *first_kept,
            },
            false,
        ),
    };
    let resp = client.call(body, follow_leader).await;
    if resp.outcome != Outcome::Ok {
        let what = if resp.outcome == Outcome::Info {
            "indeterminate"
        } else {
            "failed"
        };
        let code = resp.code.map(|c| format!(" ({c})")).unwrap_or_default();
        eprintln!(
            "dcfctl: {what}{code}: {}",
            resp.error.as_deref().unwrap_or("no reason given")
        );
        return exit_for(&resp);
    }
    match &cli.command {
        Command::Get { key } => {
            if resp.value.is_null() {
                eprintln!("dcfctl: key {key:?} not found");
                return EXIT_FAIL;
            }
            print_value(&resp.value);
        }
        Command::Status | Command::ClusterInfo => {
            println!(
                "{}",
                serde_json::to_string_pretty(&resp.value).unwrap_or_default()
            )
        }
        Command::GetParam { .. } => print_value(&resp.value),
        _ => match &resp.value {
            Value::Null => println!("OK"),
            v => println!("{v}"),
        },
    }
    EXIT_OK
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        EXIT_USAGE
                    } else {
                        EXIT_OK
                    },
                );
            }
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("bad usage")
                .trim_start_matches("error: ");
            eprintln!("dcfctl: {first} (see dcfctl --help)");
            std::process::exit(EXIT_USAGE);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcfctl: cannot start the runtime: {e}");
            std::process::exit(EXIT_FAIL);
        }
    };
    let code = rt.block_on(run(cli));
    std::process::exit(code);
}
