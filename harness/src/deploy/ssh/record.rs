//! The resource record of an SSH deployment: which hosts, how to reach
//! them again, and what was made on each (the run directory, node
//! processes, the firewall chain). Mirrored to the run's resource file
//! after every change, so `dcf-harness cleanup RUN_DIR` can reconnect and
//! remove what a killed harness left on the hosts.

use super::firewall;
use super::KIND;
use crate::deploy::resources::{self, CleanupReport};
use crate::deploy::DeployError;
use serde::{Deserialize, Serialize};
use ssh_host::{ConnectOptions, HostKeyPolicy, HostSpec, SshHost};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What was made on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// `user@host:port`.
    pub host: String,
    /// The private key used for this host, if not the run's.
    pub key: Option<PathBuf>,
    /// The run directory may exist on the host.
    pub run_dir_made: bool,
    /// Node process ids that may be running there.
    pub pids: Vec<u32>,
    /// The firewall chain that may exist there.
    pub chain: Option<String>,
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRecord {
    pub tag: String,
    /// The run directory on every host; node processes are recognised by
    /// it on their command line before they are signalled.
    pub run_dir: String,
    /// Leave the run directory on the hosts.
    pub keep_remote: bool,
    pub key: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub hosts: Vec<HostRecord>,
    /// Where the record is mirrored (set by [`SshRecord::new`]).
    #[serde(skip)]
    pub(super) path: Option<PathBuf>,
}

impl SshRecord {
    /// A record mirrored to `path` (written at once).
    pub fn new(mut record: SshRecord, path: PathBuf) -> SshRecord {
        record.path = Some(path);
        record.save();
        record
    }

    /// Writes the file (best effort; the in-memory record drives teardown).
    pub fn save(&self) {
        if let Some(path) = &self.path {
            resources::save(path, KIND.name, self);
        }
    }

    /// Applies `f` to host `i`'s record and saves.
    pub fn update(&mut self, i: usize, f: impl FnOnce(&mut HostRecord)) {
        if let Some(h) = self.hosts.get_mut(i) {
            f(h);
            self.save();
        }
    }
}

/// Removes what `record` lists on host `i` through `host`; reports every
/// removal and failure. The record is updated as things go.
pub fn remove_on_host(
    record: &mut SshRecord,
    i: usize,
    host: &SshHost,
    report: &mut CleanupReport,
) {
    let name = record.hosts[i].host.clone();
    for pid in record.hosts[i].pids.clone() {
        match kill_if_ours(host, pid, &record.run_dir) {
            Ok(true) => report.removed.push(format!("{name}: process {pid}")),
            Ok(false) => {}
            Err(e) => {
                report.failed.push(format!("{name}: process {pid}: {e}"));
                continue;
            }
        }
        record.update(i, |h| h.pids.retain(|p| *p != pid));
    }
    if let Some(chain) = record.hosts[i].chain.clone() {
        match firewall::remove(host, &chain, &record.tag) {
            Ok(true) => report
                .removed
                .push(format!("{name}: iptables chain {chain}")),
            Ok(false) => {}
            Err(e) => {
                report
                    .failed
                    .push(format!("{name}: iptables chain {chain}: {e}"));
                return;
            }
        }
        record.update(i, |h| h.chain = None);
    }
    if record.hosts[i].run_dir_made && !record.keep_remote {
        match host.check(&["rm", "-rf", "--", &record.run_dir]) {
            Ok(_) => {
                report
                    .removed
                    .push(format!("{name}: directory {}", record.run_dir));
                record.update(i, |h| h.run_dir_made = false);
            }
            Err(e) => report.failed.push(format!("{name}: {e}")),
        }
    }
}

/// SIGKILLs `pid` if it still runs a node of this run (its command line
/// names the run directory); true if it did.
pub fn kill_if_ours(host: &SshHost, pid: u32, run_dir: &str) -> Result<bool, ssh_host::SshError> {
    let out = host.run(&["cat", &format!("/proc/{pid}/cmdline")])?;
    if out.status != 0 || !out.stdout.contains(run_dir) {
        return Ok(false);
    }
    host.signal(pid, "KILL")?;
    Ok(true)
}

/// The SSH kind's cleanup: reconnects to every host the resource file at
/// `file` lists with something left, and removes it.
pub fn cleanup(file: &Path) -> Result<CleanupReport, DeployError> {
    let mut record: SshRecord = resources::load(file)?;
    record.path = Some(file.to_path_buf());
    let mut report = CleanupReport::default();
    for i in 0..record.hosts.len() {
        let h = &record.hosts[i];
        let pending =
            !h.pids.is_empty() || h.chain.is_some() || (h.run_dir_made && !record.keep_remote);
        if !pending {
            continue;
        }
        let mut spec: HostSpec = match h.host.parse() {
            Ok(s) => s,
            Err(e) => {
                report.failed.push(format!("{}: {e}", h.host));
                continue;
            }
        };
        spec.key = h.key.clone();
        let opts = ConnectOptions {
            key: record.key.clone(),
            host_keys: HostKeyPolicy {
                known_hosts: record.known_hosts.clone(),
                accept_new: false,
            },
            timeout: Duration::from_secs(10),
        };
        match SshHost::connect(spec, opts) {
            Ok(host) => remove_on_host(&mut record, i, &host, &mut report),
            Err(e) => report.failed.push(e.to_string()),
        }
    }
    if report.failed.is_empty() {
        Ok(report)
    } else {
        Err(DeployError::Leftovers(report.failed))
    }
}
