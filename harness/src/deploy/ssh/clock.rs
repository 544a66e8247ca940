//! Clock skew on SSH hosts: the same libfaketime scheme as local nodes
//! (see [`crate::deploy::clock`]), with each node's timestamp file in its
//! run directory on its host, written over SSH. A host's wall-minus-monotonic
//! clock difference is measured once at setup from `date` and
//! `/proc/uptime` (which is 10 ms coarse, so the estimate is biased to put
//! the nodes' clocks slightly behind real time, never ahead: a clock ahead
//! would make every timed wait of the node end late).

use crate::deploy::clock::{ClockFiles, LIBFAKETIME};
use nemesis::NodeId;
use ssh_host::SshHost;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Added to the estimate to keep the nodes' clocks behind real time: the
/// coarseness of `/proc/uptime` plus a command's latency.
const EPOCH_MARGIN_S: f64 = 0.03;

/// One node's file and the host it lives on.
struct NodeFile {
    host: Arc<SshHost>,
    path: String,
    epoch: f64,
}

/// The timestamp files of the nodes of an SSH run.
pub struct RemoteFiles {
    nodes: BTreeMap<NodeId, NodeFile>,
}

/// Why the host cannot run clock faults, if it cannot.
pub fn check_host(host: &SshHost) -> Result<(), String> {
    match host.run(&["test", "-f", LIBFAKETIME]) {
        Ok(o) if o.status == 0 => Ok(()),
        Ok(_) => Err(format!(
            "{}: clock faults need libfaketime ({LIBFAKETIME} is missing there): \
             `apt-get install faketime` on the host",
            host.spec()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The host's wall clock minus its monotonic clock, in seconds, biased up
/// by [`EPOCH_MARGIN_S`].
pub fn measure_epoch(host: &SshHost) -> Result<f64, String> {
    let out = host
        .check(&["sh", "-c", "date +%s.%N; cat /proc/uptime"])
        .map_err(|e| e.to_string())?;
    let mut lines = out.lines();
    let wall: f64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("{}: cannot read its clock: {out:?}", host.spec()))?;
    let uptime: f64 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{}: cannot read /proc/uptime: {out:?}", host.spec()))?;
    Ok(wall - uptime + EPOCH_MARGIN_S)
}

impl RemoteFiles {
    /// Files for `nodes`: (node, its host, its directory there, the
    /// host's measured epoch).
    pub fn new(nodes: Vec<(NodeId, Arc<SshHost>, String, f64)>) -> RemoteFiles {
        RemoteFiles {
            nodes: nodes
                .into_iter()
                .map(|(id, host, dir, epoch)| {
                    let path = format!("{dir}/faketime");
                    (id, NodeFile { host, path, epoch })
                })
                .collect(),
        }
    }
}

impl ClockFiles for RemoteFiles {
    fn path_of(&self, node: NodeId) -> String {
        self.nodes
            .get(&node)
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    fn write(&self, node: NodeId, text: &str) -> std::io::Result<()> {
        let f = self.nodes.get(&node).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("no node {node}"))
        })?;
        // Written beside and renamed: the node re-reads it on every call.
        let script = r#"printf %s "$1" > "$2.tmp" && mv -f -- "$2.tmp" "$2""#;
        f.host
            .check(&["sh", "-c", script, "sh", text, &f.path])
            .map(|_| ())
            .map_err(std::io::Error::other)
    }

    fn epoch(&self, node: NodeId) -> f64 {
        self.nodes.get(&node).map_or(0.0, |f| f.epoch)
    }
}
