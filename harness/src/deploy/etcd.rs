//! etcd as the system under test (`dcf-harness test --system etcd`).
//!
//! The local deployment runs one etcd member per node slot instead of a
//! `dcf-node`, in the same network namespaces (or on loopback), with the
//! same process control, so the faults that act on processes and links
//! (kill, pause, partition, slow and lossy links, power loss) work
//! unchanged. What differs is here: the binary, each member's flags (a
//! static initial cluster), how the leader is found (each member's
//! status) and which faults do not apply ([`not_applicable`],
//! [`member_op_not_applicable`]); membership changes go through etcd's
//! member API (`local/etcd_members.rs`).
//!
//! Members are named `n<id>`; a member listens for peers on its node's
//! peer address and for clients on its client address, both plain HTTP.
//! etcd writes its log to stderr, which the deployment keeps as
//! `nodes/n<id>/stderr.log`.

use super::NodeSpec;
use dcf::kv::protocol::FailureCode;
use nemesis::{Capability, NodeId};
use std::path::{Path, PathBuf};
use std::time::Duration;
use workloads::etcd::{Certainty, EtcdError, EtcdKv};

/// The system a deployment runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum System {
    /// Our `dcf-node` ([`super::ClusterSpec::node_binary`]).
    #[default]
    Dcf,
    /// etcd members.
    Etcd(EtcdOptions),
}

impl System {
    /// The name `--system` gives it.
    pub fn name(&self) -> &'static str {
        match self {
            System::Dcf => "dcf",
            System::Etcd(_) => "etcd",
        }
    }
}

/// How etcd members are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// The `etcd` binary.
    pub binary: PathBuf,
    /// Keep each member's data directory at teardown. By default it is
    /// deleted (the logs stay): etcd preallocates every WAL segment at
    /// 64 MB, so five members would leave over 300 MB in each run folder.
    pub keep_data: bool,
}

impl EtcdOptions {
    /// Members run by `binary`, data deleted at teardown.
    pub fn new(binary: impl Into<PathBuf>) -> EtcdOptions {
        EtcdOptions {
            binary: binary.into(),
            keep_data: false,
        }
    }
}

/// The apt command that installs etcd, for error messages.
pub const INSTALL_HINT: &str = "apt-get install etcd-server etcd-client";

/// The etcd binary: `explicit` if given (it must exist), else `etcd` on
/// `PATH`; the error says how to install it.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("etcd binary {} not found", p.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("etcd is not installed (no `etcd` on PATH): {INSTALL_HINT}, or give --etcd-binary PATH")
        })
}

/// A member's name in the cluster.
pub fn member_name(id: NodeId) -> String {
    format!("n{id}")
}

fn url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// `--initial-cluster` for `members`: `n1=http://peer1,n2=...`.
pub fn initial_cluster(members: &[NodeSpec]) -> String {
    members
        .iter()
        .map(|n| format!("{}={}", member_name(n.id), url(n.peer_addr)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd arguments of `node`: its name, data directory and URLs, the
/// initial cluster, and whether it founds the cluster (`new`) or joins
/// one that exists (a member added at run time). `token` keeps members
/// of different runs from ever taking each other for peers.
pub fn args(node: &NodeSpec, initial_cluster: &str, joining: bool, token: &str) -> Vec<String> {
    let peer = url(node.peer_addr);
    let client = url(node.client_addr);
    let state = if joining { "existing" } else { "new" };
    [
        ("--name", member_name(node.id)),
        ("--data-dir", node.data_dir().display().to_string()),
        ("--listen-peer-urls", peer.clone()),
        ("--initial-advertise-peer-urls", peer),
        ("--listen-client-urls", client.clone()),
        ("--advertise-client-urls", client),
        ("--initial-cluster", initial_cluster.to_string()),
        ("--initial-cluster-state", state.to_string()),
        ("--initial-cluster-token", token.to_string()),
        ("--logger", "zap".to_string()),
        ("--log-outputs", "stderr".to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// The member fault's changes etcd's member API can make: adding and
/// removing members (`burst` is several of one or the other). Roles,
/// priorities and promotions are DCF's.
pub const MEMBER_OPS: [&str; 3] = ["add", "remove", "burst"];

/// Why the member fault with argument `op` (`None`: chosen at random)
/// does not apply to etcd, if it does not.
pub fn member_op_not_applicable(op: Option<&str>) -> Option<String> {
    match op {
        Some(op) if MEMBER_OPS.contains(&op) => None,
        _ => Some(format!(
            "etcd's member API adds and removes members; role, promote and priority changes are \
             DCF's: pin the fault to one of member:{}",
            MEMBER_OPS.join(", member:")
        )),
    }
}

/// Why a fault capability does not apply to etcd, if it does not. Checked
/// on the command line (`--system etcd` refuses the fault kinds that need
/// one) and by the deployment's `supports`.
pub fn not_applicable(capability: Capability) -> Option<&'static str> {
    match capability {
        Capability::Compact => Some(
            "compaction asks dcf-node to checkpoint and truncate its log; etcd has no such call",
        ),
        Capability::WorkMode => Some("minority mode is DCF's; etcd has no such mode"),
        Capability::Corrupt => {
            Some("the corrupt fault knows dcf-node's files (log segments, checkpoints, metadata)")
        }
        Capability::Clock => Some(
            "libfaketime cannot skew etcd's clock: Go reads the time through the vDSO, not \
             through libc's clock_gettime, so the preloaded library is never called",
        ),
        Capability::Kill
        | Capability::Membership
        | Capability::Start
        | Capability::Pause
        | Capability::Resume
        | Capability::Partition
        | Capability::PowerCut
        | Capability::SlowNet
        | Capability::LossyNet => None,
    }
}

/// Runs `call` on a client of the first member of `endpoints` that
/// accepts a connection (a refused one was sent nothing), on a runtime of
/// its own in a thread of its own, so it works from the nemesis thread.
pub fn on_any_member<T, F, Fut>(
    endpoints: Vec<String>,
    timeout: Duration,
    call: F,
) -> Result<T, EtcdError>
where
    T: Send + 'static,
    F: FnOnce(EtcdKv) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, EtcdError>>,
{
    let worker = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EtcdError {
                code: FailureCode::Internal,
                certainty: Certainty::NotApplied,
                message: format!("cannot start a runtime: {e}"),
            })?;
        rt.block_on(async move {
            let mut errors = Vec::new();
            for ep in &endpoints {
                match EtcdKv::connect(ep, timeout).await {
                    Ok(c) => return call(c).await,
                    Err(e) => errors.push(e.message),
                }
            }
            Err(EtcdError {
                code: FailureCode::Unreachable,
                certainty: Certainty::NotApplied,
                message: format!("no member reachable ({})", errors.join("; ")),
            })
        })
    };
    std::thread::spawn(worker).join().unwrap_or_else(|_| {
        Err(EtcdError {
            code: FailureCode::Internal,
            certainty: Certainty::Unknown,
            message: "the etcd call panicked".into(),
        })
    })
}

/// A member's peer URL, as `--initial-advertise-peer-urls` gives it.
pub fn peer_url(node: &NodeSpec) -> String {
    url(node.peer_addr)
}

/// Asks every member of `endpoints` for its status and returns the node
/// that reports itself leader (its own member id is the leader it knows),
/// as `dcf-node`'s status does. Blocking: the calls run on a runtime of
/// their own in a thread of their own, so this works from any thread,
/// the nemesis's included.
pub fn leader(endpoints: &[(NodeId, String)], timeout: Duration) -> Option<NodeId> {
    let endpoints = endpoints.to_vec();
    let query = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let asks = endpoints.into_iter().map(|(id, ep)| async move {
                let mut c = EtcdKv::connect(&ep, timeout).await.ok()?;
                let (me, leader) = c.status().await.ok()?;
                (me != 0 && me == leader).then_some(id)
            });
            futures_first(asks).await
        })
    };
    std::thread::spawn(query).join().ok().flatten()
}

/// The first `Some` of the futures, all run at once.
async fn futures_first<F>(futures: impl Iterator<Item = F>) -> Option<NodeId>
where
    F: std::future::Future<Output = Option<NodeId>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while let Some(r) = set.join_next().await {
        if let Ok(Some(id)) = r {
            return Some(id);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node(id: NodeId) -> NodeSpec {
        NodeSpec {
            id,
            peer_addr: SocketAddr::from(([10, 0, 0, id as u8], 7000)),
            client_addr: SocketAddr::from(([10, 0, 0, id as u8], 8000)),
            dir: PathBuf::from(format!("/run/n{id}")),
        }
    }

    #[test]
    fn members_get_a_static_initial_cluster_on_their_addresses() {
        let nodes = [node(1), node(2)];
        let ic = initial_cluster(&nodes);
        assert_eq!(ic, "n1=http://10.0.0.1:7000,n2=http://10.0.0.2:7000");
        let a = args(&nodes[1], &ic, false, "tag");
        let get = |k: &str| a[a.iter().position(|x| x == k).unwrap() + 1].clone();
        assert_eq!(get("--name"), "n2");
        assert_eq!(get("--data-dir"), "/run/n2/data");
        assert_eq!(get("--listen-client-urls"), "http://10.0.0.2:8000");
        assert_eq!(get("--initial-advertise-peer-urls"), "http://10.0.0.2:7000");
        assert_eq!(get("--initial-cluster-state"), "new");
        let joining = args(&nodes[1], &ic, true, "tag");
        assert!(joining.contains(&"existing".to_string()));
    }

    #[test]
    fn dcf_only_capabilities_are_refused_with_a_reason() {
        for c in [
            Capability::Compact,
            Capability::WorkMode,
            Capability::Corrupt,
            Capability::Clock,
        ] {
            assert!(not_applicable(c).is_some(), "{c:?}");
        }
        assert!(member_op_not_applicable(Some("add")).is_none());
        assert!(member_op_not_applicable(Some("promote")).is_some());
        assert!(member_op_not_applicable(None).is_some());
        for c in [
            Capability::Membership,
            Capability::Partition,
            Capability::Kill,
            Capability::Pause,
            Capability::SlowNet,
        ] {
            assert!(not_applicable(c).is_none(), "{c:?}");
        }
        let e = find_binary(Some(Path::new("/nonexistent/etcd"))).unwrap_err();
        assert!(e.contains("/nonexistent/etcd"), "{e}");
    }
}
