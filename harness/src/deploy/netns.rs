//! The namespace network: one network namespace per node, each with a veth
//! pair whose host end is enslaved to a per-run Linux bridge in the root
//! namespace. The bridge has the subnet's `.1`, so the harness reaches every
//! node directly, and node-to-node packets cross the bridge. Partitions are
//! iptables `DROP` rules in the receiving node's namespace.
//!
//! Names carry a per-run tag (`dcb<tag>` bridge, `dcv<tag>n<id>` veth host
//! ends, `dcf-<tag>-n<id>` namespaces; interface names stay within the
//! kernel's 15 characters) and the /24 is picked from 198.18.0.0/15 under a
//! host-wide file lock after checking that no interface or route uses it,
//! so runs in parallel threads and processes do not collide.

use super::cmd;
use super::registry::{link_exists, Registry};
use super::DeployError;
use nemesis::NodeId;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The third-octet space of 198.18.0.0/15: 512 /24s.
const SUBNETS: u32 = 512;

/// A run-unique 6-hex-digit tag (pid, a process-wide counter and the clock).
pub fn unique_tag() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut h = DefaultHasher::new();
        std::process::id().hash(&mut h);
        COUNTER.fetch_add(1, Ordering::SeqCst).hash(&mut h);
        SystemTime::now().hash(&mut h);
        let tag = format!("{:06x}", h.finish() & 0xff_ffff);
        if !link_exists(&bridge_name(&tag)) {
            return tag;
        }
    }
}

pub fn bridge_name(tag: &str) -> String {
    format!("dcb{tag}")
}

pub fn veth_name(tag: &str, node: NodeId) -> String {
    format!("dcv{tag}n{node}")
}

pub fn netns_name(tag: &str, node: NodeId) -> String {
    format!("dcf-{tag}-n{node}")
}

/// The first three octets of subnet number `i` of 198.18.0.0/15.
fn subnet_prefix(i: u32) -> [u8; 3] {
    [198, 18 + (i / 256) as u8, (i % 256) as u8]
}

/// The address of host `.last` in the subnet.
pub fn addr(prefix: [u8; 3], last: u8) -> Ipv4Addr {
    Ipv4Addr::new(prefix[0], prefix[1], prefix[2], last)
}

/// A node's address: `.10 + id`.
pub fn node_ip(prefix: [u8; 3], node: NodeId) -> Ipv4Addr {
    addr(prefix, (10 + node) as u8)
}

/// True when the kernel passes bridged IPv4 through iptables
/// (br_netfilter loaded and `net.bridge.bridge-nf-call-iptables = 1`), so
/// the FORWARD chain could drop our bridged traffic.
pub fn bridge_netfilter_on() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// A host-wide exclusive lock (flock) held while a subnet is chosen and
/// claimed; the kernel drops it if the process dies.
struct HostLock(std::fs::File);

impl HostLock {
    fn acquire() -> Result<HostLock, DeployError> {
        let path = std::env::temp_dir().join("dcf-harness-netns.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| DeployError::io(format!("cannot open {}", path.display()), e))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(DeployError::io("flock", std::io::Error::last_os_error()));
        }
        Ok(HostLock(f))
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // SAFETY: unlocking an fd we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// True if some root-namespace address or route already uses `prefix`.
fn subnet_in_use(prefix: [u8; 3], addrs: &str, routes: &str) -> bool {
    let needle = format!("{}.{}.{}.", prefix[0], prefix[1], prefix[2]);
    addrs.contains(&needle) || routes.contains(&needle)
}

/// The network of one run, as created.
#[derive(Debug, Clone)]
pub struct Network {
    pub tag: String,
    pub bridge: String,
    pub prefix: [u8; 3],
    /// Per node: (id, namespace, address).
    pub nodes: Vec<(NodeId, String, Ipv4Addr)>,
}

impl Network {
    pub fn netns_of(&self, node: NodeId) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.0 == node)
            .map(|n| n.1.as_str())
    }
    pub fn ip_of(&self, node: NodeId) -> Option<Ipv4Addr> {
        self.nodes.iter().find(|n| n.0 == node).map(|n| n.2)
    }
}

fn ns_run(ns: &str, args: &[&str]) -> Result<String, DeployError> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    cmd::run("ip", &full)
}

/// Creates the bridge, the namespaces and the veth pairs for `nodes`
/// nodes. Every resource is recorded in `reg` right after it is created,
/// so a failure part way leaves nothing that teardown does not know about.
pub fn create(tag: &str, nodes: u32, reg: &mut Registry) -> Result<Network, DeployError> {
    if nodes == 0 || nodes > 240 {
        return Err(DeployError::Other(format!(
            "cannot place {nodes} nodes in a /24"
        )));
    }
    let bridge = bridge_name(tag);
    let prefix = {
        let _lock = HostLock::acquire()?;
        let addrs = cmd::run("ip", &["-o", "-4", "addr", "show"])?;
        let routes = cmd::run("ip", &["-4", "route", "show", "table", "all"])?;
        let mut h = DefaultHasher::new();
        tag.hash(&mut h);
        let start = (h.finish() % SUBNETS as u64) as u32;
        let prefix = (0..SUBNETS)
            .map(|k| subnet_prefix((start + k) % SUBNETS))
            .find(|&p| !subnet_in_use(p, &addrs, &routes))
            .ok_or_else(|| DeployError::Other("every /24 of 198.18.0.0/15 is in use".into()))?;
        cmd::run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        reg.add_link(&bridge);
        let cidr = format!("{}/24", addr(prefix, 1));
        cmd::run("ip", &["addr", "add", &cidr, "dev", &bridge])?;
        prefix
    };
    cmd::run("ip", &["link", "set", &bridge, "up"])?;
    if bridge_netfilter_on() {
        // br_netfilter hands bridged frames to the FORWARD chain, whose
        // policy may be DROP (docker sets that): let our bridge through.
        let rule: Vec<String> = [
            "FORWARD",
            "-i",
            &bridge,
            "-o",
            &bridge,
            "-j",
            "ACCEPT",
            "-m",
            "comment",
            "--comment",
            &format!("dcf-harness-{tag}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Insert at the top, before any DROP rule.
        let mut args = vec!["-w", "-I"];
        args.extend(rule.iter().map(String::as_str));
        cmd::run("iptables", &args)?;
        reg.add_host_rule(rule);
    }
    let mut net = Network {
        tag: tag.to_string(),
        bridge: bridge.clone(),
        prefix,
        nodes: Vec::new(),
    };
    for id in 1..=nodes {
        let ns = netns_name(tag, id);
        let veth = veth_name(tag, id);
        let ip = node_ip(prefix, id);
        cmd::run("ip", &["netns", "add", &ns])?;
        reg.add_netns(&ns);
        cmd::run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        reg.add_link(&veth);
        cmd::run("ip", &["link", "set", &veth, "master", &bridge, "up"])?;
        ns_run(&ns, &["ip", "link", "set", "lo", "up"])?;
        ns_run(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        )?;
        ns_run(&ns, &["ip", "link", "set", "eth0", "up"])?;
        net.nodes.push((id, ns, ip));
    }
    tracing::info!(tag, bridge = %bridge, subnet = %format!("{}/24", addr(prefix, 0)), nodes, "namespace network created");
    Ok(net)
}

/// Replaces the node's filter table so that it drops every packet from
/// `sources` (an empty list removes all drops). One atomic
/// `iptables-restore` per namespace.
pub fn set_drops(ns: &str, sources: &[Ipv4Addr]) -> Result<(), DeployError> {
    let mut rules =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for s in sources {
        rules.push_str(&format!("-A INPUT -s {s}/32 -j DROP\n"));
    }
    rules.push_str("COMMIT\n");
    cmd::run_with_input(
        "ip",
        &["netns", "exec", ns, "iptables-restore", "-w"],
        Some(&rules),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_carry_the_tag() {
        let tag = unique_tag();
        assert_eq!(tag.len(), 6);
        assert!(bridge_name(&tag).len() <= 15);
        assert!(veth_name(&tag, 240).len() <= 15);
        assert!(netns_name(&tag, 3).contains(&tag));
        assert_ne!(unique_tag(), unique_tag());
    }

    #[test]
    fn subnets_stay_in_the_benchmark_range() {
        assert_eq!(subnet_prefix(0), [198, 18, 0]);
        assert_eq!(subnet_prefix(511), [198, 19, 255]);
        assert_eq!(node_ip([198, 18, 5], 3), Ipv4Addr::new(198, 18, 5, 13));
        assert!(subnet_in_use([198, 18, 1], "inet 198.18.1.1/24", ""));
        assert!(!subnet_in_use([198, 18, 1], "inet 198.18.10.1/24", ""));
    }
}
