//! SSH deployment: nodes run on hosts the harness reaches over SSH
//! (libssh2, through the `ssh-host` crate), one session per host reused
//! for the whole run.
//!
//! Setup connects to every host first (host keys verified against
//! `known_hosts`; an unknown or changed key refuses the run naming the
//! host and fingerprint, unless `--accept-new-host-keys`), so a bad host
//! fails the run before any node starts. It then uploads `dcf-node` (skipped
//! when the host already has the same file), makes a per-run directory
//! under `--remote-root`, and starts each node detached with its own log
//! and pid files. Node `i` runs on host `(i-1) mod hosts`. Kills, pauses
//! and restarts are signals to the recorded pid; partitions are iptables
//! rules in a chain of this run (see [`firewall`]). Everything made on a
//! host is recorded (see [`record`]) before it is made.

mod clock;
mod firewall;
mod record;

use super::kinds::{Choice, DeploymentKind, KindOptions};
use super::resources::{CleanupReport, RESOURCES_FILE};
use super::{netns, status, ClusterSpec, DeployError, Deployment, NodeSpec};
use crate::deploy::clock::{NodeClocks, LIBFAKETIME};
use clap::{Arg, ArgAction};
use nemesis::{Capability, ClockSkew, ClusterControl, FaultError, Grudge, NodeId};
use record::{HostRecord, SshRecord};
use ssh_host::{ConnectOptions, HostKeyPolicy, HostSpec, SshError, SshHost};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Hosts reached over SSH, chosen by `--deploy ssh`.
pub static KIND: DeploymentKind = DeploymentKind {
    name: "ssh",
    choices: &[Choice {
        value: "ssh",
        help: "nodes on hosts reached over SSH (--hosts or --hosts-file; see --ssh-key, --known-hosts)",
    }],
    args,
    validate,
    build,
    cleanup: record::cleanup,
};

/// Default directory for run directories and the node binary on hosts.
const DEFAULT_REMOTE_ROOT: &str = "/tmp/dcf-harness";
/// Default first port: node `i` listens for peers on `BASE + i` and for
/// clients on `BASE + 100 + i`.
const DEFAULT_BASE_PORT: u16 = 27000;

fn args() -> Vec<Arg> {
    vec![
        Arg::new("hosts")
            .long("hosts")
            .value_name("USER@HOST[:PORT],...")
            .help("[ssh] The hosts, comma-separated; node i runs on host (i-1) mod hosts")
            .value_delimiter(',')
            .action(ArgAction::Append)
            .value_parser(|s: &str| s.parse::<HostSpec>().map(|_| s.to_string())),
        Arg::new("hosts_file")
            .long("hosts-file")
            .value_name("PATH")
            .help("[ssh] A file with one host per line: [user@]host[:port] [key=PATH]")
            .value_parser(crate::cli::existing_file),
        Arg::new("ssh_key")
            .long("ssh-key")
            .value_name("PATH")
            .help("[ssh] Private key for the hosts (default: the ssh-agent)")
            .value_parser(crate::cli::existing_file),
        Arg::new("known_hosts")
            .long("known-hosts")
            .value_name("PATH")
            .help("[ssh] OpenSSH known_hosts file the host keys are checked against [default: ~/.ssh/known_hosts]"),
        Arg::new("accept_new_host_keys")
            .long("accept-new-host-keys")
            .help("[ssh] Trust hosts whose key is not yet known and write their keys to the known_hosts file")
            .action(ArgAction::SetTrue),
        Arg::new("remote_root")
            .long("remote-root")
            .value_name("DIR")
            .help("[ssh] Directory on the hosts for the node binary and run directories [default: /tmp/dcf-harness]")
            .value_parser(|s: &str| {
                if s.starts_with('/') && s.len() > 1 {
                    Ok(s.to_string())
                } else {
                    Err(format!("{s:?} is not an absolute directory other than /"))
                }
            }),
        Arg::new("keep_remote")
            .long("keep-remote")
            .help("[ssh] Keep the run directory (node logs and data) on the hosts")
            .action(ArgAction::SetTrue),
        Arg::new("base_port")
            .long("base-port")
            .value_name("PORT")
            .help("[ssh] Node i listens on PORT+i (peers) and PORT+100+i (clients) [default: 27000]")
            .value_parser(clap::value_parser!(u16).range(1024..65000)),
        Arg::new("ssh_timeout")
            .long("ssh-timeout")
            .value_name("SECONDS")
            .help("[ssh] Bound on connecting to a host and on each SSH call [default: 10]")
            .value_parser(clap::value_parser!(u64).range(1..=600)),
    ]
}

/// `--deploy ssh` needs hosts; checked with the other options, before
/// anything is created.
fn validate(options: &KindOptions) -> Result<(), String> {
    if options.get_all("hosts").is_empty() && options.get("hosts_file").is_none() {
        return Err("--deploy ssh needs --hosts USER@HOST,... or --hosts-file PATH".into());
    }
    Ok(())
}

/// The options of an SSH deployment, as given.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub hosts: Vec<HostSpec>,
    pub key: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub accept_new_host_keys: bool,
    pub remote_root: String,
    pub keep_remote: bool,
    pub base_port: u16,
    pub timeout: Duration,
}

impl SshOptions {
    fn from_kind_options(o: &KindOptions) -> Result<SshOptions, DeployError> {
        validate(o).map_err(DeployError::Other)?;
        let mut hosts = Vec::new();
        for h in o.get_all("hosts") {
            hosts.push(h.parse().map_err(DeployError::Other)?);
        }
        if let Some(path) = o.get("hosts_file") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| DeployError::io(format!("cannot read {path}"), e))?;
            hosts.extend(
                ssh_host::parse_hosts_file(&text)
                    .map_err(|e| DeployError::Other(format!("{path}: {e}")))?,
            );
        }
        let parse_num = |id: &str, default: u64| -> Result<u64, DeployError> {
            o.get(id).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| DeployError::Other(format!("--{id}: {v:?} is not a number")))
            })
        };
        Ok(SshOptions {
            hosts,
            key: o.get("ssh_key").map(PathBuf::from),
            known_hosts: o
                .get("known_hosts")
                .map(PathBuf::from)
                .unwrap_or_else(|| HostKeyPolicy::default().known_hosts),
            accept_new_host_keys: o.get("accept_new_host_keys") == Some("true"),
            remote_root: o
                .get("remote_root")
                .unwrap_or(DEFAULT_REMOTE_ROOT)
                .trim_end_matches('/')
                .to_string(),
            keep_remote: o.get("keep_remote") == Some("true"),
            base_port: parse_num("base_port", DEFAULT_BASE_PORT.into())? as u16,
            timeout: Duration::from_secs(parse_num("ssh_timeout", 10)?),
        })
    }
}

fn build(_: &str, spec: ClusterSpec, o: &KindOptions) -> Result<Arc<dyn Deployment>, DeployError> {
    Ok(Arc::new(SshDeployment::new(
        spec,
        SshOptions::from_kind_options(o)?,
    )))
}

/// What a host can do beyond running processes, found at setup.
#[derive(Debug, Clone, Default)]
struct HostAbilities {
    /// Why partitions cannot be made there, if they cannot.
    no_partitions: Option<String>,
}

/// One connected host and what runs there.
struct Host {
    ssh: Arc<SshHost>,
    abilities: HostAbilities,
}

/// A node on a host.
#[derive(Debug, Clone)]
struct RemoteNode {
    spec: NodeSpec,
    host: usize,
    pid: Option<u32>,
}

#[derive(Default)]
struct Inner {
    record: SshRecord,
    hosts: Vec<Host>,
    nodes: Vec<RemoteNode>,
    config: String,
    binary: String,
    /// The nodes' clocks, when clock faults were requested and every host
    /// has libfaketime.
    clocks: Option<NodeClocks>,
    /// Why clock faults cannot run, when they were requested.
    no_clock: Option<String>,
}

/// A cluster on SSH hosts.
pub struct SshDeployment {
    spec: ClusterSpec,
    opts: SshOptions,
    tag: String,
    inner: Mutex<Inner>,
}

fn ssh_err(e: SshError) -> DeployError {
    DeployError::Other(e.to_string())
}

fn fault_err(e: SshError) -> FaultError {
    FaultError::Failed(e.to_string())
}

/// The first address `host` resolves to.
fn resolve(spec: &HostSpec) -> Result<IpAddr, DeployError> {
    (spec.host.as_str(), spec.port)
        .to_socket_addrs()
        .map_err(|e| DeployError::Other(format!("{spec}: cannot resolve: {e}")))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| DeployError::Other(format!("{spec}: no address")))
}

impl SshDeployment {
    /// A deployment of `spec` on `opts.hosts`; nothing is contacted until
    /// [`Deployment::setup`].
    pub fn new(spec: ClusterSpec, opts: SshOptions) -> SshDeployment {
        SshDeployment {
            spec,
            opts,
            tag: netns::unique_tag(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_dir(&self) -> String {
        format!("{}/{}", self.opts.remote_root, self.tag)
    }

    /// Connects to every host at once, so one that does not answer costs
    /// one timeout, and fails naming every host that could not be used.
    fn connect_all(&self) -> Result<Vec<SshHost>, DeployError> {
        let connect = |spec: HostSpec| {
            let opts = ConnectOptions {
                key: self.opts.key.clone(),
                host_keys: HostKeyPolicy {
                    known_hosts: self.opts.known_hosts.clone(),
                    accept_new: self.opts.accept_new_host_keys,
                },
                timeout: self.opts.timeout,
            };
            SshHost::connect(spec, opts)
        };
        let results: Vec<Result<SshHost, SshError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .opts
                .hosts
                .iter()
                .map(|h| {
                    let h = h.clone();
                    s.spawn(move || connect(h))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(SshError::Io {
                            host: "?".into(),
                            what: "connecting".into(),
                            reason: "the connecting thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut hosts = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(h) => hosts.push(h),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(hosts)
        } else {
            Err(DeployError::Other(errors.join("; ")))
        }
    }

    /// What the host offers: Linux is required; partitions need root and
    /// iptables there.
    fn probe(ssh: &SshHost) -> Result<HostAbilities, DeployError> {
        let name = ssh.spec().to_string();
        let os = ssh.check(&["uname", "-s"]).map_err(ssh_err)?;
        if os.trim() != "Linux" {
            return Err(DeployError::Unsupported(format!(
                "{name}: dcf-node needs Linux, the host runs {}",
                os.trim()
            )));
        }
        let uid = ssh.check(&["id", "-u"]).map_err(ssh_err)?;
        let has_iptables = ssh
            .run(&["sh", "-c", "command -v iptables"])
            .map_err(ssh_err)?
            .status
            == 0;
        let no_partitions = if uid.trim() != "0" {
            Some(format!(
                "{name}: partitions need root on the host (log in as root)"
            ))
        } else if !has_iptables {
            Some(format!(
                "{name}: partitions need iptables on the host (apt-get install iptables there)"
            ))
        } else {
            None
        };
        Ok(HostAbilities { no_partitions })
    }

    fn start_locked(&self, inner: &mut Inner, id: NodeId) -> Result<u32, DeployError> {
        let idx = inner
            .nodes
            .iter()
            .position(|n| n.spec.id == id)
            .ok_or(DeployError::UnknownNode(id))?;
        let node = inner.nodes[idx].clone();
        let ssh = &inner.hosts[node.host].ssh;
        if let Some(pid) = node.pid {
            if ssh.alive(pid).map_err(ssh_err)? {
                return Ok(pid);
            }
        }
        let dir = node.spec.dir.display().to_string();
        ssh.check(&[
            "mkdir",
            "-p",
            "--",
            &node.spec.data_dir().display().to_string(),
        ])
        .map_err(ssh_err)?;
        let mut argv = vec![inner.binary.clone()];
        argv.extend(self.spec.node_args(&node.spec, &inner.config));
        let mut env = self.spec.env.clone();
        if let Some(c) = &inner.clocks {
            c.before_spawn(id)
                .map_err(|e| DeployError::Other(format!("node {id}: its clock file: {e}")))?;
            env.extend(c.env(id));
        }
        let pid = ssh
            .spawn(
                &argv,
                &env,
                &dir,
                &format!("{dir}/stdout.log"),
                &format!("{dir}/stderr.log"),
                &format!("{dir}/pid"),
            )
            .map_err(ssh_err)?;
        inner.nodes[idx].pid = Some(pid);
        inner.record.update(node.host, |h| h.pids.push(pid));
        tracing::info!(node = id, pid, host = %inner.hosts[node.host].ssh.spec(), "node started");
        Ok(pid)
    }

    /// SIGKILLs the node and waits until it is gone.
    fn kill_locked(inner: &mut Inner, id: NodeId) -> Result<(), SshError> {
        let Some(idx) = inner.nodes.iter().position(|n| n.spec.id == id) else {
            return Ok(());
        };
        let Some(pid) = inner.nodes[idx].pid else {
            return Ok(());
        };
        let host = inner.nodes[idx].host;
        let ssh = &inner.hosts[host].ssh;
        if ssh.alive(pid)? {
            ssh.signal(pid, "KILL")?;
            wait_until(|| ssh.alive(pid).map(|a| !a), Duration::from_secs(5))?;
        }
        inner.nodes[idx].pid = None;
        inner.record.update(host, |h| h.pids.retain(|p| *p != pid));
        Ok(())
    }

    fn signal_node(&self, id: NodeId, signal: &str) -> Result<(), FaultError> {
        let inner = self.lock();
        let node = inner
            .nodes
            .iter()
            .find(|n| n.spec.id == id)
            .ok_or_else(|| FaultError::Failed(format!("unknown node {id}")))?;
        let pid = node
            .pid
            .ok_or_else(|| FaultError::Failed(format!("node {id} is not running")))?;
        inner.hosts[node.host]
            .ssh
            .signal(pid, signal)
            .map_err(fault_err)
    }

    fn endpoints(&self) -> Vec<(NodeId, String)> {
        self.lock()
            .nodes
            .iter()
            .map(|n| (n.spec.id, n.spec.client_addr.to_string()))
            .collect()
    }

    /// Why partitions cannot be made on these hosts, if they cannot.
    fn partitions_supported(&self) -> Result<(), String> {
        let inner = self.lock();
        if inner.hosts.is_empty() {
            return Err("the SSH deployment is not set up".into());
        }
        if (self.spec.nodes as usize) > inner.hosts.len() {
            return Err(format!(
                "partitions need one host per node ({} nodes on {} hosts): give more hosts with --hosts",
                self.spec.nodes,
                inner.hosts.len()
            ));
        }
        let why: Vec<String> = inner
            .hosts
            .iter()
            .filter_map(|h| h.abilities.no_partitions.clone())
            .collect();
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    /// The whole of setup after connecting; on error, teardown removes what
    /// was made.
    fn install_and_start(&self, inner: &mut Inner) -> Result<(), DeployError> {
        let run_dir = self.run_dir();
        for i in 0..inner.hosts.len() {
            inner.record.update(i, |h| h.run_dir_made = true);
            let ssh = &inner.hosts[i].ssh;
            ssh.check(&["mkdir", "-p", "--", &run_dir])
                .map_err(ssh_err)?;
            if inner.hosts[i].abilities.no_partitions.is_none() {
                let chain = firewall::chain_name(&self.tag);
                inner.record.update(i, |h| h.chain = Some(chain.clone()));
                firewall::create(&inner.hosts[i].ssh, &chain, &self.tag).map_err(ssh_err)?;
            }
            let copied = inner.hosts[i]
                .ssh
                .upload(&self.spec.node_binary, &inner.binary, 0o755)
                .map_err(ssh_err)?;
            tracing::info!(host = %inner.hosts[i].ssh.spec(), copied, "node binary in place");
        }
        let ids: Vec<NodeId> = inner.nodes.iter().map(|n| n.spec.id).collect();
        for id in &ids {
            self.start_locked(inner, *id)?;
        }
        Ok(())
    }

    /// Puts every node under libfaketime if every host has it; else
    /// remembers why clock faults are unsupported.
    fn prepare_clocks(&self, inner: &mut Inner) {
        let mut epochs = Vec::new();
        for h in &inner.hosts {
            match clock::check_host(&h.ssh).and_then(|()| clock::measure_epoch(&h.ssh)) {
                Ok(e) => epochs.push(e),
                Err(why) => {
                    tracing::warn!(%why, "clock faults unsupported");
                    inner.no_clock = Some(why);
                    return;
                }
            }
        }
        let files = inner
            .nodes
            .iter()
            .map(|n| {
                (
                    n.spec.id,
                    inner.hosts[n.host].ssh.clone(),
                    n.spec.dir.display().to_string(),
                    epochs[n.host],
                )
            })
            .collect();
        inner.clocks = Some(NodeClocks::with_files(
            LIBFAKETIME.into(),
            Arc::new(clock::RemoteFiles::new(files)),
        ));
    }

    /// `Ok` if the nodes run under libfaketime.
    fn clock_supported(&self) -> Result<(), String> {
        let inner = self.lock();
        if inner.clocks.is_some() {
            return Ok(());
        }
        Err(inner.no_clock.clone().unwrap_or_else(|| {
            "the nodes were started without libfaketime: name clock in --nemesis or in the \
             schedule so they are"
                .into()
        }))
    }

    /// Fails with the node's own words if one exited at once.
    fn check_started(&self, inner: &Inner) -> Result<(), DeployError> {
        for n in &inner.nodes {
            let ssh = &inner.hosts[n.host].ssh;
            let alive = match n.pid {
                Some(pid) => ssh.alive(pid).map_err(ssh_err)?,
                None => false,
            };
            if !alive {
                let log = format!("{}/stderr.log", n.spec.dir.display());
                let tail = ssh
                    .run(&["tail", "-c", "2000", "--", &log])
                    .map(|o| o.stdout.trim().to_string())
                    .unwrap_or_default();
                return Err(DeployError::Node {
                    node: n.spec.id,
                    reason: format!("exited at start on {}: {tail}", ssh.spec()),
                });
            }
        }
        Ok(())
    }
}

/// Polls `done` until it says true or `timeout` passes.
fn wait_until(
    mut done: impl FnMut() -> Result<bool, SshError>,
    timeout: Duration,
) -> Result<(), SshError> {
    let end = Instant::now() + timeout;
    while !done()? && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Deployment for SshDeployment {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn setup(&self) -> Result<(), DeployError> {
        self.spec.prepare_base()?;
        if self.opts.hosts.is_empty() {
            return Err(DeployError::Other("no hosts given".into()));
        }
        let mut inner = self.lock();
        if !inner.hosts.is_empty() {
            return Err(DeployError::Other("setup called twice".into()));
        }
        let run_dir = self.run_dir();
        inner.record = SshRecord::new(
            SshRecord {
                tag: self.tag.clone(),
                run_dir: run_dir.clone(),
                keep_remote: self.opts.keep_remote,
                key: self.opts.key.clone(),
                known_hosts: self.opts.known_hosts.clone(),
                hosts: self
                    .opts
                    .hosts
                    .iter()
                    .map(|h| HostRecord {
                        host: h.to_string(),
                        key: h.key.clone(),
                        ..HostRecord::default()
                    })
                    .collect(),
                ..SshRecord::default()
            },
            self.spec.base_dir.join(RESOURCES_FILE),
        );
        let ips = self
            .opts
            .hosts
            .iter()
            .map(resolve)
            .collect::<Result<Vec<_>, _>>()?;
        for ssh in self.connect_all()? {
            let abilities = Self::probe(&ssh)?;
            inner.hosts.push(Host {
                ssh: Arc::new(ssh),
                abilities,
            });
        }
        inner.binary = format!("{}/bin/dcf-node", self.opts.remote_root);
        inner.nodes = (1..=self.spec.nodes)
            .map(|id| {
                let host = (id as usize - 1) % inner.hosts.len();
                let port = |offset: u16| self.opts.base_port + offset + id as u16;
                RemoteNode {
                    spec: NodeSpec {
                        id,
                        peer_addr: SocketAddr::new(ips[host], port(0)),
                        client_addr: SocketAddr::new(ips[host], port(100)),
                        dir: PathBuf::from(format!("{run_dir}/n{id}")),
                    },
                    host,
                    pid: None,
                }
            })
            .collect();
        let specs: Vec<NodeSpec> = inner.nodes.iter().map(|n| n.spec.clone()).collect();
        inner.config = super::local::config_json(&specs);
        if self.spec.prepare.contains(&Capability::Clock) {
            self.prepare_clocks(&mut inner);
        }
        self.install_and_start(&mut inner)?;
        drop(inner);
        std::thread::sleep(Duration::from_millis(500));
        let inner = self.lock();
        self.check_started(&inner)?;
        tracing::info!(tag = %self.tag, hosts = inner.hosts.len(), nodes = self.spec.nodes, "SSH cluster started");
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeSpec> {
        self.lock().nodes.iter().map(|n| n.spec.clone()).collect()
    }

    fn config_json(&self) -> String {
        self.lock().config.clone()
    }

    fn start_all(&self) -> Result<(), DeployError> {
        let mut inner = self.lock();
        let ids: Vec<NodeId> = inner.nodes.iter().map(|n| n.spec.id).collect();
        for id in ids {
            self.start_locked(&mut inner, id)?;
        }
        Ok(())
    }

    fn is_running(&self, node: NodeId) -> bool {
        let inner = self.lock();
        let Some(n) = inner.nodes.iter().find(|n| n.spec.id == node) else {
            return false;
        };
        match n.pid {
            Some(pid) => inner.hosts[n.host].ssh.alive(pid).unwrap_or(false),
            None => false,
        }
    }

    fn stop_all(&self) {
        let mut inner = self.lock();
        for n in inner.nodes.clone() {
            if let Some(pid) = n.pid {
                let ssh = &inner.hosts[n.host].ssh;
                let _ = ssh.signal(pid, "CONT");
                let _ = ssh.signal(pid, "TERM");
                let _ = wait_until(|| ssh.alive(pid).map(|a| !a), Duration::from_secs(2));
            }
            if let Err(e) = Self::kill_locked(&mut inner, n.spec.id) {
                tracing::warn!(node = n.spec.id, error = %e, "cannot stop node");
            }
        }
    }

    fn collect(&self, node: NodeId, dest: &Path) -> Result<(), DeployError> {
        let inner = self.lock();
        let n = inner
            .nodes
            .iter()
            .find(|n| n.spec.id == node)
            .ok_or(DeployError::UnknownNode(node))?;
        inner.hosts[n.host]
            .ssh
            .download_dir(&n.spec.dir.display().to_string(), dest)
            .map(|_| ())
            .map_err(ssh_err)
    }

    fn run_command(&self, node: NodeId, argv: &[String]) -> Result<Output, DeployError> {
        use std::os::unix::process::ExitStatusExt;
        let inner = self.lock();
        let n = inner
            .nodes
            .iter()
            .find(|n| n.spec.id == node)
            .ok_or(DeployError::UnknownNode(node))?;
        let out = inner.hosts[n.host].ssh.run(argv).map_err(ssh_err)?;
        Ok(Output {
            status: std::process::ExitStatus::from_raw((out.status & 0xff) << 8),
            stdout: out.stdout.into_bytes(),
            stderr: out.stderr.into_bytes(),
        })
    }

    fn teardown(&self) -> Result<(), DeployError> {
        let mut inner = self.lock();
        // Stops the strobes before the files go.
        inner.clocks = None;
        let Inner { record, hosts, .. } = &mut *inner;
        let mut report = CleanupReport::default();
        for (i, host) in hosts.iter().enumerate() {
            record::remove_on_host(record, i, &host.ssh, &mut report);
        }
        for n in inner.nodes.iter_mut() {
            n.pid = None;
        }
        if !report.removed.is_empty() {
            tracing::info!(tag = %self.tag, removed = ?report.removed, "SSH deployment torn down");
        }
        if report.failed.is_empty() {
            Ok(())
        } else {
            tracing::error!(tag = %self.tag, failed = ?report.failed, "teardown left resources");
            Err(DeployError::Leftovers(report.failed))
        }
    }

    fn describe(&self) -> String {
        let hosts: Vec<String> = self.opts.hosts.iter().map(|h| h.to_string()).collect();
        format!(
            "ssh: {} nodes on {} (run directory {})",
            self.spec.nodes,
            hosts.join(", "),
            self.run_dir()
        )
    }

    fn control(self: Arc<Self>) -> Arc<dyn ClusterControl> {
        self
    }
}

impl ClusterControl for SshDeployment {
    fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.spec.nodes).collect()
    }

    fn leader(&self) -> Option<NodeId> {
        status::leader(&self.endpoints(), Duration::from_millis(500))
    }

    fn supports(&self, capability: Capability) -> Result<(), String> {
        match capability {
            Capability::Partition => self.partitions_supported(),
            Capability::Kill
            | Capability::Start
            | Capability::Pause
            | Capability::Resume
            | Capability::Compact => Ok(()),
            Capability::PowerCut => Err(
                "power-loss needs the data directories on the harness's own FUSE file system, \
                 which runs only beside local nodes (use --deploy namespaces)"
                    .into(),
            ),
            Capability::Clock => self.clock_supported(),
            Capability::Membership
            | Capability::WorkMode
            | Capability::Corrupt
            | Capability::SlowNet
            | Capability::LossyNet => Err(format!(
                "the SSH deployment cannot yet {} (use --deploy namespaces)",
                capability.what()
            )),
        }
    }

    fn kill(&self, node: NodeId) -> Result<(), FaultError> {
        Self::kill_locked(&mut self.lock(), node).map_err(fault_err)
    }

    fn start(&self, node: NodeId) -> Result<(), FaultError> {
        self.start_locked(&mut self.lock(), node)
            .map(|_| ())
            .map_err(|e| FaultError::Failed(e.to_string()))
    }

    fn pause(&self, node: NodeId) -> Result<(), FaultError> {
        self.signal_node(node, "STOP")
    }

    fn resume(&self, node: NodeId) -> Result<(), FaultError> {
        match self.signal_node(node, "CONT") {
            Err(FaultError::Failed(e)) if e.contains("is not running") => Ok(()),
            other => other,
        }
    }

    fn partition(&self, grudge: &Grudge) -> Result<(), FaultError> {
        self.partitions_supported()
            .map_err(FaultError::Unsupported)?;
        let inner = self.lock();
        let chain = firewall::chain_name(&self.tag);
        let node = |id: NodeId| inner.nodes.iter().find(|n| n.spec.id == id);
        let mut errors = Vec::new();
        for n in &inner.nodes {
            let drops: Vec<firewall::Drop> = grudge
                .get(&n.spec.id)
                .into_iter()
                .flatten()
                .filter_map(|peer| node(*peer))
                .flat_map(|peer| {
                    // Connections the peer opened to this node, and the
                    // replies on connections this node opened to the peer.
                    [
                        firewall::Drop {
                            source: peer.spec.peer_addr.ip(),
                            dport: Some(n.spec.peer_addr.port()),
                            sport: None,
                        },
                        firewall::Drop {
                            source: peer.spec.peer_addr.ip(),
                            dport: None,
                            sport: Some(peer.spec.peer_addr.port()),
                        },
                    ]
                })
                .collect();
            if let Err(e) = firewall::set(&inner.hosts[n.host].ssh, &chain, &drops) {
                errors.push(format!("node {}: {e}", n.spec.id));
            }
        }
        if errors.is_empty() {
            tracing::info!(?grudge, "partition in effect");
            Ok(())
        } else {
            Err(FaultError::Failed(errors.join("; ")))
        }
    }

    fn heal(&self) -> Result<(), FaultError> {
        if self.partitions_supported().is_err() {
            return Ok(());
        }
        self.partition(&Grudge::new())
    }

    fn set_clock(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        self.clock_supported().map_err(FaultError::Unsupported)?;
        let inner = self.lock();
        let clocks = inner.clocks.as_ref().expect("checked above");
        clocks
            .set(node, skew)
            .map_err(|e| FaultError::Failed(format!("node {node}: cannot set its clock: {e}")))
    }

    fn compact(&self, node: NodeId) -> Result<u64, FaultError> {
        let endpoint = self
            .endpoints()
            .into_iter()
            .find(|(id, _)| *id == node)
            .map(|(_, ep)| ep)
            .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))?;
        status::compact(&endpoint, Duration::from_secs(10)).map_err(FaultError::Failed)
    }
}

impl Drop for SshDeployment {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "teardown on drop failed");
        }
    }
}
