//! Local deployment: every node is its own OS process on this machine.
//!
//! In namespace mode (root, `ip` and `iptables` present) each node runs in
//! its own network namespace with its own address (see [`super::netns`]),
//! so partitions are real kernel packet drops. Otherwise — or when
//! [`LocalMode::Loopback`] is forced — nodes run as plain processes on
//! 127.0.0.1 with distinct ports, and partitions are reported unsupported
//! with the fix, so partition faults are skipped rather than faked.
//!
//! Every resource is recorded in a [`Registry`] (mirrored to
//! `<base_dir>/deploy-resources.json`); [`LocalDeployment::teardown`] and
//! `Drop` remove exactly what it lists.

use super::corrupt;
mod clock_net;

use super::etcd::{self, System};
use super::kinds::{Choice, DeploymentKind, KindOptions};
use super::netns::{self, Network};
use super::powercut::Disks;
use super::process::{Launch, NodeProcess};
use super::registry::{self, Registry};
use super::resources::RESOURCES_FILE;
use super::{cmd, status, ClusterSpec, DeployError, Deployment, NodeSpec};
use nemesis::{
    Capability, ClockSkew, ClusterControl, FaultError, Grudge, Link, LinkDelay, MemberChange,
    MemberReply, NodeId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Local processes, chosen by `--deploy auto|namespaces|loopback`.
pub static KIND: DeploymentKind = DeploymentKind {
    name: "local",
    choices: &[
        Choice {
            value: "auto",
            help: "local processes, each in its own network namespace when run as root with iptables, else on loopback",
        },
        Choice {
            value: "namespaces",
            help: "local processes in network namespaces, or fail (needs root, ip and iptables)",
        },
        Choice {
            value: "loopback",
            help: "local processes on 127.0.0.1; partitions are unsupported",
        },
    ],
    args: Vec::new,
    validate: |_| Ok(()),
    build,
    cleanup: registry::cleanup,
};

fn build(
    choice: &str,
    spec: ClusterSpec,
    _: &KindOptions,
) -> Result<Arc<dyn Deployment>, DeployError> {
    let mode = match choice {
        "auto" => LocalMode::Auto,
        "namespaces" => LocalMode::Namespaces,
        "loopback" => LocalMode::Loopback,
        other => {
            return Err(DeployError::Other(format!(
                "the local deployment has no mode {other:?}"
            )))
        }
    };
    let opts = LocalOptions {
        mode,
        ..LocalOptions::default()
    };
    Ok(Arc::new(LocalDeployment::new(spec, opts)))
}

mod etcd_members;
mod members;
mod work_mode;

/// The peer (DCF) port of every node in namespace mode.
const NS_PEER_PORT: u16 = 7000;
/// The client port of every node in namespace mode.
const NS_CLIENT_PORT: u16 = 8000;

/// How nodes are isolated from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalMode {
    /// Namespaces when possible, else loopback (and the reason is kept for
    /// [`LocalDeployment::partitions_supported`]).
    #[default]
    Auto,
    /// Namespaces or fail.
    Namespaces,
    /// Plain processes on 127.0.0.1; no partitions.
    Loopback,
}

/// Options of a local deployment.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub mode: LocalMode,
    /// How long `stop_all` waits after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
    /// Bound on each node status query (used by `leader`).
    pub status_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            mode: LocalMode::Auto,
            stop_grace: Duration::from_secs(2),
            status_timeout: Duration::from_millis(500),
        }
    }
}

/// The message partition faults get in loopback mode.
pub fn loopback_partition_message(detail: &str) -> String {
    format!(
        "partitions need root and iptables: run as root and `apt-get install iptables iproute2` \
         (running on loopback: {detail})"
    )
}

/// Why namespaces cannot be used here, if they cannot.
pub fn namespace_prerequisites() -> Result<(), String> {
    if !cmd::is_root() {
        return Err("not running as root".into());
    }
    for tool in ["ip", "iptables", "iptables-restore"] {
        if !cmd::on_path(tool) {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Inner {
    registry: Registry,
    network: Option<Network>,
    /// Set in loopback mode: why partitions are impossible.
    loopback_reason: Option<String>,
    /// Every node slot, spares included.
    nodes: Vec<NodeSpec>,
    config: String,
    procs: BTreeMap<NodeId, NodeProcess>,
    /// The nodes in the cluster now (membership changes add and remove).
    members: BTreeSet<NodeId>,
    /// Slots never started, which a membership change can add.
    spares: BTreeSet<NodeId>,
    /// The `--config` of nodes added at run time (the members then, and
    /// the node itself); the others get `config`.
    configs: BTreeMap<NodeId, String>,
    /// Removed nodes still running, and when to stop them.
    decommission: Vec<(NodeId, std::time::Instant)>,
    /// Data directories on powercut-fs, when the spec asks for them.
    disks: Disks,
    /// The original of the file the corrupt fault damaged, per node, while
    /// the node may still refuse to start on it.
    corrupted: BTreeMap<NodeId, corrupt::Saved>,
    /// The nodes' clocks, when clock faults were requested.
    clocks: Option<super::clock::NodeClocks>,
    /// A proxy on every link, when slow links were requested.
    proxies: Option<super::slow_net::LinkProxies>,
    /// Requested capabilities that could not be prepared, with why.
    unprepared: BTreeMap<Capability, String>,
}

/// A cluster of local `dcf-node` processes.
pub struct LocalDeployment {
    spec: ClusterSpec,
    opts: LocalOptions,
    tag: String,
    inner: Mutex<Inner>,
}

/// Picks `count` free TCP ports on 127.0.0.1 (all bound at once so they
/// differ, then released for the nodes).
fn free_loopback_ports(count: usize) -> Result<Vec<u16>, DeployError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DeployError::io("cannot find free loopback ports", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| DeployError::io("cannot find free loopback ports", e))
}

pub(crate) fn config_json(nodes: &[NodeSpec]) -> String {
    let entries: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "stream_id": 1,
                "node_id": n.id,
                "ip": n.peer_addr.ip().to_string(),
                "port": n.peer_addr.port(),
                "role": if n.id == 1 { "LEADER" } else { "FOLLOWER" },
            })
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

/// Copies `src` into `dest` recursively (regular files and folders only).
/// Copies `src` into `dest`. When both are the same folder (local nodes
/// already keep their files in the run's store) there is nothing to do:
/// copying a file onto itself would truncate it to nothing.
fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dest.canonicalize()) {
        if a == b {
            return Ok(());
        }
    }
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let to = dest.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_string()
}

impl LocalDeployment {
    /// A deployment of `spec`; nothing is created until [`Deployment::setup`].
    pub fn new(spec: ClusterSpec, opts: LocalOptions) -> LocalDeployment {
        LocalDeployment {
            spec,
            opts,
            tag: netns::unique_tag(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// True once set up in namespace mode.
    pub fn uses_namespaces(&self) -> bool {
        self.lock().network.is_some()
    }

    /// The bridge's name in namespace mode.
    pub fn bridge(&self) -> Option<String> {
        self.lock().network.as_ref().map(|n| n.bridge.clone())
    }

    /// The node's network namespace in namespace mode.
    pub fn netns_of(&self, node: NodeId) -> Option<String> {
        self.lock()
            .network
            .as_ref()?
            .netns_of(node)
            .map(str::to_string)
    }

    /// `Ok` in namespace mode; on loopback, why partitions cannot be made
    /// and how to get them.
    pub fn partitions_supported(&self) -> Result<(), String> {
        let inner = self.lock();
        if inner.network.is_some() {
            return Ok(());
        }
        Err(loopback_partition_message(
            inner
                .loopback_reason
                .as_deref()
                .unwrap_or("the deployment is not set up"),
        ))
    }

    /// The pid of the node's process if it runs.
    pub fn pid_of(&self, node: NodeId) -> Option<i32> {
        self.lock().procs.get_mut(&node)?.pid()
    }

    /// The path of the resource file.
    pub fn registry_path(&self) -> PathBuf {
        self.spec.base_dir.join(RESOURCES_FILE)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Teardown must work even after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(&self, inner: &Inner, node: &NodeSpec) -> Launch {
        let config = inner.configs.get(&node.id).unwrap_or(&inner.config);
        let args = match &self.spec.system {
            System::Dcf => self.spec.node_args(node, config),
            // A node with a config of its own was added at run time: it
            // joins the cluster that exists.
            System::Etcd(_) => etcd::args(
                node,
                config,
                inner.configs.contains_key(&node.id),
                &self.tag,
            ),
        };
        Launch {
            node: node.id,
            netns: inner
                .network
                .as_ref()
                .and_then(|n| n.netns_of(node.id))
                .map(str::to_string),
            program: self.spec.program().to_path_buf(),
            args,
            env: self.node_env(inner, node.id),
            log_dir: node.dir.clone(),
        }
    }

    fn start_locked(&self, inner: &mut Inner, node: NodeId) -> Result<i32, DeployError> {
        let spec = inner
            .nodes
            .iter()
            .find(|n| n.id == node)
            .cloned()
            .ok_or(DeployError::UnknownNode(node))?;
        let launch = self.launch(inner, &spec);
        if let Some(pid) = inner.procs.entry(node).or_default().pid() {
            return Ok(pid);
        }
        self.before_spawn(inner, node)?;
        let proc = inner.procs.entry(node).or_default();
        let pid = proc.spawn(&launch)?;
        inner.registry.add_pid(pid);
        Ok(pid)
    }

    fn kill_locked(inner: &mut Inner, node: NodeId) {
        if let Some(pid) = inner.procs.get_mut(&node).and_then(NodeProcess::kill) {
            inner.registry.remove_pid(pid);
        }
    }

    /// Sets up the network (per the mode) and fills in the node specs.
    fn prepare(&self, inner: &mut Inner) -> Result<(), DeployError> {
        let use_ns = match self.opts.mode {
            LocalMode::Loopback => {
                inner.loopback_reason = Some("loopback mode was requested".into());
                false
            }
            LocalMode::Namespaces => {
                namespace_prerequisites().map_err(DeployError::Unsupported)?;
                true
            }
            LocalMode::Auto => match namespace_prerequisites() {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(%why, "network namespaces unavailable; nodes run on loopback");
                    inner.loopback_reason = Some(why);
                    false
                }
            },
        };
        let slots = self.spec.nodes + self.spec.spare_nodes;
        if use_ns {
            match netns::create(&self.tag, slots, &mut inner.registry) {
                Ok(net) => inner.network = Some(net),
                Err(e) if self.opts.mode == LocalMode::Auto => {
                    tracing::warn!(error = %e, "cannot create namespaces; nodes run on loopback");
                    let report = inner.registry.remove_all();
                    if !report.failed.is_empty() {
                        return Err(DeployError::Leftovers(report.failed));
                    }
                    inner.loopback_reason = Some(format!("namespace setup failed: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        let ports = match inner.network {
            Some(_) => Vec::new(),
            None => free_loopback_ports(2 * slots as usize)?,
        };
        inner.nodes = (1..=slots)
            .map(|id| {
                let (peer_addr, client_addr) = match &inner.network {
                    Some(net) => {
                        let ip = IpAddr::V4(net.ip_of(id).expect("every node has an address"));
                        (
                            SocketAddr::new(ip, NS_PEER_PORT),
                            SocketAddr::new(ip, NS_CLIENT_PORT),
                        )
                    }
                    None => {
                        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                        let i = 2 * (id as usize - 1);
                        (
                            SocketAddr::new(ip, ports[i]),
                            SocketAddr::new(ip, ports[i + 1]),
                        )
                    }
                };
                NodeSpec {
                    id,
                    peer_addr,
                    client_addr,
                    dir: self.spec.base_dir.join(format!("n{id}")),
                }
            })
            .collect();
        inner.members = (1..=self.spec.nodes).collect();
        inner.spares = (self.spec.nodes + 1..=slots).collect();
        let members: Vec<NodeSpec> = inner.nodes[..self.spec.nodes as usize].to_vec();
        inner.config = match self.spec.system {
            System::Dcf => config_json(&members),
            System::Etcd(_) => etcd::initial_cluster(&members),
        };
        Ok(())
    }

    /// The client endpoints of the current members.
    fn endpoints(&self) -> Vec<(NodeId, String)> {
        let inner = self.lock();
        inner
            .nodes
            .iter()
            .filter(|n| inner.members.contains(&n.id))
            .map(|n| (n.id, n.client_addr.to_string()))
            .collect()
    }

    /// What the nodes are, for descriptions: `nodes` or `etcd members`.
    fn what(&self) -> &'static str {
        match self.spec.system {
            System::Dcf => "nodes",
            System::Etcd(_) => "etcd members",
        }
    }

    /// True if `node` is one of the deployment's slots (member or not).
    fn has_slot(&self, node: NodeId) -> bool {
        (1..=self.spec.nodes + self.spec.spare_nodes).contains(&node)
    }
}

impl Deployment for LocalDeployment {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    /// The run's unique tag (in every namespace and link name).
    fn tag(&self) -> &str {
        &self.tag
    }

    fn setup(&self) -> Result<(), DeployError> {
        self.spec.prepare_base()?;
        let mut inner = self.lock();
        if !inner.nodes.is_empty() {
            return Err(DeployError::Other("setup called twice".into()));
        }
        let marker = self.spec.base_dir.display().to_string();
        inner.registry = Registry::new(&self.tag, &marker, Some(self.registry_path()));
        self.prepare(&mut inner)?;
        if self.spec.powercut_data {
            let nodes = inner.nodes.clone();
            let Inner {
                registry, disks, ..
            } = &mut *inner;
            *disks = Disks::mount_all(&nodes, registry).map_err(DeployError::Other)?;
        }
        self.prepare_faults(&mut inner)?;
        for id in 1..=self.spec.nodes {
            self.start_locked(&mut inner, id)?;
        }
        drop(inner);
        // A node that dies at once (bad flags, port in use) should fail
        // setup with its own words rather than as a missing leader later.
        std::thread::sleep(Duration::from_millis(300));
        let mut inner = self.lock();
        let nodes = inner.nodes.clone();
        for n in nodes.iter().filter(|n| n.id <= self.spec.nodes) {
            if inner
                .procs
                .get_mut(&n.id)
                .and_then(NodeProcess::pid)
                .is_none()
            {
                return Err(DeployError::Node {
                    node: n.id,
                    reason: format!("exited at start: {}", tail(&n.dir.join("stderr.log"), 2000)),
                });
            }
            let pid = inner.procs.get_mut(&n.id).and_then(NodeProcess::pid);
            if let Some(pid) = pid {
                inner
                    .disks
                    .check_seen_by(n.id, pid, &n.data_dir())
                    .map_err(DeployError::Other)?;
            }
        }
        tracing::info!(
            tag = %self.tag,
            namespaces = inner.network.is_some(),
            nodes = self.spec.nodes,
            "local cluster started"
        );
        Ok(())
    }

    /// The current members.
    fn nodes(&self) -> Vec<NodeSpec> {
        let inner = self.lock();
        inner
            .nodes
            .iter()
            .filter(|n| inner.members.contains(&n.id))
            .cloned()
            .collect()
    }

    fn config_json(&self) -> String {
        self.lock().config.clone()
    }

    fn start_all(&self) -> Result<(), DeployError> {
        let mut inner = self.lock();
        let members: Vec<NodeId> = inner.members.iter().copied().collect();
        for id in members {
            self.start_locked(&mut inner, id)?;
        }
        Ok(())
    }

    fn is_running(&self, node: NodeId) -> bool {
        self.pid_of(node).is_some()
    }

    fn stop_all(&self) {
        let mut inner = self.lock();
        let Inner {
            procs, registry, ..
        } = &mut *inner;
        for proc in procs.values_mut() {
            if let Some(pid) = proc.stop(self.opts.stop_grace) {
                registry.remove_pid(pid);
            }
        }
    }

    fn collect(&self, node: NodeId, dest: &Path) -> Result<(), DeployError> {
        let dir = self
            .lock()
            .nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| n.dir.clone())
            .ok_or(DeployError::UnknownNode(node))?;
        copy_tree(&dir, dest).map_err(|e| {
            DeployError::io(
                format!("cannot copy {} to {}", dir.display(), dest.display()),
                e,
            )
        })
    }

    fn run_command(&self, node: NodeId, argv: &[String]) -> Result<Output, DeployError> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| DeployError::Other("empty command".into()))?;
        if !self.has_slot(node) {
            return Err(DeployError::UnknownNode(node));
        }
        let mut c = match self.netns_of(node) {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns, program]);
                c
            }
            None => Command::new(program),
        };
        c.args(rest)
            .output()
            .map_err(|e| DeployError::io(format!("cannot run {argv:?} on node {node}"), e))
    }

    fn teardown(&self) -> Result<(), DeployError> {
        let mut inner = self.lock();
        let ids: Vec<NodeId> = inner.procs.keys().copied().collect();
        for id in ids {
            Self::kill_locked(&mut inner, id);
        }
        let Inner {
            registry, disks, ..
        } = &mut *inner;
        let unmount_failed = disks.unmount_all(registry);
        // Stops the strobes and closes the proxies.
        inner.clocks = None;
        inner.proxies = None;
        let mut report = inner.registry.remove_all();
        report.failed.extend(unmount_failed);
        inner.network = None;
        if let System::Etcd(o) = &self.spec.system {
            if !o.keep_data {
                for n in &inner.nodes {
                    // etcd's WAL is preallocated (64 MB a segment): the
                    // logs stay, the data goes unless asked to keep it.
                    let _ = std::fs::remove_dir_all(n.data_dir());
                }
            }
        }
        if !report.removed.is_empty() {
            tracing::info!(tag = %self.tag, removed = ?report.removed, "local deployment torn down");
        }
        if report.failed.is_empty() {
            Ok(())
        } else {
            tracing::error!(tag = %self.tag, failed = ?report.failed, "teardown left resources");
            Err(DeployError::Leftovers(report.failed))
        }
    }

    fn describe(&self) -> String {
        let inner = self.lock();
        let base = match (&inner.network, &inner.loopback_reason) {
            (Some(net), _) => format!(
                "local: {} {} in network namespaces on {}/24 (bridge {})",
                self.spec.nodes,
                self.what(),
                netns::addr(net.prefix, 0),
                net.bridge
            ),
            (None, Some(why)) => format!(
                "local: {} {} on loopback ({why})",
                self.spec.nodes,
                self.what()
            ),
            (None, None) => format!("local: {} nodes (not set up)", self.spec.nodes),
        };
        if self.spec.spare_nodes == 0 {
            return base;
        }
        // With membership changes the members are not the first nodes.
        let ids = |s: &BTreeSet<NodeId>| {
            let v: Vec<String> = s.iter().map(|n| format!("n{n}")).collect();
            v.join(",")
        };
        format!(
            "{base}; members now {}; spare slots left {}",
            ids(&inner.members),
            ids(&inner.spares)
        )
    }

    fn control(self: Arc<Self>) -> Arc<dyn ClusterControl> {
        self
    }
}

impl ClusterControl for LocalDeployment {
    /// The current members.
    fn node_ids(&self) -> Vec<NodeId> {
        members::decommission_due(self);
        self.lock().members.iter().copied().collect()
    }

    fn kill(&self, node: NodeId) -> Result<(), FaultError> {
        if !self.has_slot(node) {
            return Err(FaultError::Failed(format!("unknown node {node}")));
        }
        Self::kill_locked(&mut self.lock(), node);
        Ok(())
    }

    fn start(&self, node: NodeId) -> Result<(), FaultError> {
        self.start_locked(&mut self.lock(), node)
            .map(|_| ())
            .map_err(|e| FaultError::Failed(e.to_string()))
    }

    fn pause(&self, node: NodeId) -> Result<(), FaultError> {
        let mut inner = self.lock();
        let proc = inner
            .procs
            .get_mut(&node)
            .ok_or_else(|| FaultError::Failed(format!("node {node} was never started")))?;
        proc.pause()
            .map_err(|e| FaultError::Failed(format!("node {node}: {e}")))
    }

    fn resume(&self, node: NodeId) -> Result<(), FaultError> {
        let mut inner = self.lock();
        match inner.procs.get_mut(&node) {
            Some(proc) => proc
                .resume()
                .map_err(|e| FaultError::Failed(format!("node {node}: {e}"))),
            None => Ok(()),
        }
    }

    fn partition(&self, grudge: &Grudge) -> Result<(), FaultError> {
        self.partitions_supported()
            .map_err(FaultError::Unsupported)?;
        let inner = self.lock();
        let net = inner
            .network
            .as_ref()
            .expect("namespace mode has a network");
        let mut errors = Vec::new();
        for (id, ns, _) in &net.nodes {
            let drops: Vec<Ipv4Addr> = grudge
                .get(id)
                .into_iter()
                .flatten()
                .flat_map(|peer| Self::sources_of(&inner, net, *peer))
                .collect();
            if let Err(e) = netns::set_drops(ns, &drops) {
                errors.push(format!("node {id}: {e}"));
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
            return Ok(()); // nothing can have been partitioned
        }
        self.partition(&Grudge::new())
    }

    fn supports(&self, capability: Capability) -> Result<(), String> {
        if let (System::Etcd(_), Some(why)) = (&self.spec.system, etcd::not_applicable(capability))
        {
            return Err(format!("not with etcd: {why}"));
        }
        match capability {
            Capability::Partition => self.partitions_supported(),
            Capability::Kill
            | Capability::Start
            | Capability::Pause
            | Capability::Resume
            | Capability::Compact
            | Capability::Membership
            | Capability::WorkMode => Ok(()),
            Capability::PowerCut => self.lock().disks.supported(),
            Capability::Corrupt => Ok(()),
            Capability::Clock | Capability::SlowNet | Capability::LossyNet => {
                self.fault_supported(capability)
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        match self.spec.system {
            System::Dcf => status::leader(&self.endpoints(), self.opts.status_timeout),
            System::Etcd(_) => etcd::leader(&self.endpoints(), self.opts.status_timeout),
        }
    }

    fn compact(&self, node: NodeId) -> Result<u64, FaultError> {
        let endpoint = self
            .endpoints()
            .into_iter()
            .find(|(id, _)| *id == node)
            .map(|(_, ep)| ep)
            .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))?;
        // A checkpoint of a large state takes a while: allow for it.
        status::compact(
            &endpoint,
            self.opts.status_timeout.max(Duration::from_secs(10)),
        )
        .map_err(FaultError::Failed)
    }

    fn set_clock(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        self.set_clock_impl(node, skew)
    }

    fn shape_links(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), FaultError> {
        self.shape_links_impl(shapes)
    }

    fn drop_packets(&self, losses: &[(Link, u32)]) -> Result<(), FaultError> {
        self.drop_packets_impl(losses)
    }

    fn spare_nodes(&self) -> Vec<NodeId> {
        self.lock().spares.iter().copied().collect()
    }

    fn change_members(&self, change: MemberChange) -> Result<MemberReply, FaultError> {
        members::change(self, change)
    }

    fn set_work_mode(
        &self,
        node: NodeId,
        vote_num: Option<u64>,
    ) -> Result<MemberReply, FaultError> {
        work_mode::set_work_mode(self, node, vote_num)
    }

    fn node_status(&self, node: NodeId) -> Option<serde_json::Value> {
        work_mode::node_status(self, node)
    }

    fn power_cut(&self, nodes: &[NodeId]) -> Result<serde_json::Value, FaultError> {
        self.power_cut_locked(nodes)
    }

    fn corrupt(&self, node: NodeId, how: u64) -> Result<serde_json::Value, FaultError> {
        self.corrupt_and_restart(node, how)
    }

    fn repair(&self, node: NodeId) -> Result<serde_json::Value, FaultError> {
        self.repair_locked(node)
    }
}

impl LocalDeployment {
    /// See [`ClusterControl::power_cut`].
    fn power_cut_locked(&self, nodes: &[NodeId]) -> Result<serde_json::Value, FaultError> {
        let mut inner = self.lock();
        inner.disks.power_off(nodes)?;
        for &n in nodes {
            if let Some(p) = inner.procs.get_mut(&n) {
                p.send_kill();
            }
        }
        inner.disks.processes_killed(nodes);
        for &n in nodes {
            Self::kill_locked(&mut inner, n);
        }
        inner.disks.power_cut(nodes)
    }
}

impl LocalDeployment {
    /// See [`ClusterControl::corrupt`]: stops the node, damages one file,
    /// starts it and watches whether it comes up (answers on its client
    /// port) or refuses (exits).
    fn corrupt_and_restart(&self, node: NodeId, how: u64) -> Result<serde_json::Value, FaultError> {
        let (mut what, spec, from) = {
            let mut inner = self.lock();
            let spec = inner
                .nodes
                .iter()
                .find(|n| n.id == node)
                .cloned()
                .ok_or_else(|| FaultError::Failed(format!("unknown node {node}")))?;
            Self::kill_locked(&mut inner, node);
            let damaged = corrupt::damage(&spec.data_dir(), how);
            let (what, saved) = match damaged {
                Ok(d) => d,
                Err(e) => {
                    // Nothing was damaged: the node goes on as it was.
                    let _ = self.start_locked(&mut inner, node);
                    return Err(FaultError::Failed(e));
                }
            };
            tracing::info!(node, damage = %what, "corrupted a stored file");
            inner.corrupted.insert(node, saved);
            let from = std::fs::metadata(spec.dir.join("stderr.log")).map_or(0, |m| m.len());
            self.start_locked(&mut inner, node)
                .map_err(|e| FaultError::Failed(e.to_string()))?;
            (what, spec, from)
        };
        let endpoint = vec![(node, spec.client_addr.to_string())];
        // Long enough for a slow start on a busy machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let refused = loop {
            if !self.is_running(node) {
                break true;
            }
            if status::statuses(&endpoint, Duration::from_millis(500))[0]
                .1
                .is_some()
            {
                break false;
            }
            if std::time::Instant::now() >= deadline {
                what["note"] = serde_json::json!("no answer within 20 s; taken as started");
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        what["refused"] = serde_json::json!(refused);
        if refused {
            let words = corrupt::last_error(&spec.dir.join("stderr.log"), from);
            what["note"] = serde_json::json!(format!("n{node} refused to start: {words}"));
        } else {
            // It ran on the damaged copy: that copy is its truth now.
            self.lock().corrupted.remove(&node);
        }
        Ok(what)
    }

    /// See [`ClusterControl::repair`]: a node that refused to start gets
    /// its damaged file back as it was (it never ran on the damage) and is
    /// started.
    fn repair_locked(&self, node: NodeId) -> Result<serde_json::Value, FaultError> {
        let mut inner = self.lock();
        let running = inner
            .procs
            .get_mut(&node)
            .and_then(NodeProcess::pid)
            .is_some();
        let saved = inner.corrupted.remove(&node);
        let mut what = serde_json::json!({});
        if let (false, Some(saved)) = (running, &saved) {
            corrupt::write_synced(&saved.path, &saved.bytes).map_err(FaultError::Failed)?;
            what["restored"] = serde_json::json!(saved.path.display().to_string());
        }
        self.start_locked(&mut inner, node)
            .map_err(|e| FaultError::Failed(e.to_string()))?;
        what["started"] = serde_json::json!(true);
        Ok(what)
    }
}

impl Drop for LocalDeployment {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "teardown on drop failed");
        }
    }
}

#[cfg(test)]
mod copy_tests {
    use super::copy_tree;

    /// Regression: collecting a node into its own folder emptied its logs.
    #[test]
    fn copying_a_folder_onto_itself_keeps_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("n1");
        std::fs::create_dir_all(node.join("data")).unwrap();
        std::fs::write(node.join("stderr.log"), "hello").unwrap();
        std::fs::write(node.join("data").join("dcf-node.log"), "world").unwrap();
        copy_tree(&node, &node).unwrap();
        assert_eq!(
            std::fs::read_to_string(node.join("stderr.log")).unwrap(),
            "hello"
        );
        let other = dir.path().join("copy");
        copy_tree(&node, &other).unwrap();
        assert_eq!(
            std::fs::read_to_string(other.join("data").join("dcf-node.log")).unwrap(),
            "world"
        );
    }
}
