//! The record of every resource a local deployment created: kept in
//! memory and mirrored to the run's resource file (see
//! [`super::resources`]) after every change, so that `dcf-harness cleanup`
//! can remove what a killed harness left behind. Removal is driven by this
//! record alone, which is what makes teardown idempotent and safe after a
//! partial setup.

use super::resources::{self, CleanupReport};
use super::{cmd, local, powercut, DeployError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An iptables rule in a node's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRule {
    pub netns: String,
    /// `filter`, `nat`, `mangle`, ...
    pub table: String,
    /// The arguments after `-A`/`-D`, chain first.
    pub rule: Vec<String>,
}

impl NsRule {
    fn run(&self, op: &str) -> Result<String, DeployError> {
        let mut args = vec![
            "netns",
            "exec",
            &self.netns,
            "iptables",
            "-w",
            "-t",
            &self.table,
            op,
        ];
        args.extend(self.rule.iter().map(String::as_str));
        cmd::run("ip", &args)
    }
    /// Adds the rule (at the end of its chain).
    pub fn add(&self) -> Result<(), DeployError> {
        self.run("-A").map(|_| ())
    }
    /// Deletes every copy of the rule; true if one was there.
    pub fn delete(&self) -> bool {
        let mut deleted = false;
        while self.run("-D").is_ok() {
            deleted = true;
        }
        deleted
    }
    /// True while the rule is in place.
    pub fn present(&self) -> bool {
        self.run("-C").is_ok()
    }
}

/// Resources to remove, in the order [`Registry::remove_all`] removes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// The run's unique tag (part of every name below).
    pub tag: String,
    /// A string every node process's command line contains (the run's
    /// base folder), so a recorded pid is only killed if it is still ours.
    pub cmdline_marker: String,
    /// Node process ids that may be running.
    pub pids: Vec<i32>,
    /// Network namespaces (`ip netns`).
    pub netns: Vec<String>,
    /// Links in the root namespace (bridge, host ends of veth pairs).
    pub links: Vec<String>,
    /// Root-namespace iptables rules, each as the arguments after `-A`/`-D`
    /// (chain first).
    pub host_rules: Vec<Vec<String>>,
    /// FUSE mounts (powercut-fs on data directories), by mount point.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// iptables rules inside node namespaces (removed before the
    /// namespaces, though deleting a namespace removes them too).
    #[serde(default)]
    pub ns_rules: Vec<NsRule>,
    /// Files written for the nodes (libfaketime's timestamp files).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl Registry {
    /// An empty registry mirrored to `path` (written at once).
    pub fn new(tag: &str, cmdline_marker: &str, path: Option<PathBuf>) -> Self {
        let r = Registry {
            tag: tag.to_string(),
            cmdline_marker: cmdline_marker.to_string(),
            path,
            ..Registry::default()
        };
        r.save();
        r
    }

    /// Reads a resource file written by a local deployment.
    pub fn load(path: &Path) -> Result<Registry, DeployError> {
        let mut r: Registry = resources::load(path)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }

    /// True if nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
            && self.netns.is_empty()
            && self.links.is_empty()
            && self.host_rules.is_empty()
            && self.mounts.is_empty()
            && self.ns_rules.is_empty()
            && self.files.is_empty()
    }

    /// Writes the file (best effort: a failed write must not abort a run,
    /// the in-memory copy still drives teardown).
    pub fn save(&self) {
        if let Some(path) = &self.path {
            resources::save(path, local::KIND.name, self);
        }
    }

    pub fn add_pid(&mut self, pid: i32) {
        self.pids.push(pid);
        self.save();
    }
    pub fn remove_pid(&mut self, pid: i32) {
        self.pids.retain(|&p| p != pid);
        self.save();
    }
    pub fn add_netns(&mut self, name: &str) {
        self.netns.push(name.to_string());
        self.save();
    }
    pub fn add_link(&mut self, name: &str) {
        self.links.push(name.to_string());
        self.save();
    }
    pub fn add_host_rule(&mut self, rule: Vec<String>) {
        self.host_rules.push(rule);
        self.save();
    }
    pub fn add_mount(&mut self, point: &str) {
        self.mounts.push(point.to_string());
        self.save();
    }
    pub fn remove_mount(&mut self, point: &str) {
        self.mounts.retain(|m| m != point);
        self.save();
    }
    pub fn add_ns_rule(&mut self, rule: NsRule) {
        self.ns_rules.push(rule);
        self.save();
    }
    /// Forgets a namespace rule (once deleted).
    pub fn remove_ns_rule(&mut self, rule: &NsRule) {
        self.ns_rules.retain(|r| r != rule);
        self.save();
    }
    pub fn add_file(&mut self, path: PathBuf) {
        if !self.files.contains(&path) {
            self.files.push(path);
            self.save();
        }
    }

    /// Removes everything recorded: processes, namespaces (with anything
    /// still running inside), links, then host rules. Entries are dropped
    /// from the record as they are removed (or found already gone); the
    /// ones that could not be removed stay recorded and are reported.
    pub fn remove_all(&mut self) -> CleanupReport {
        let mut report = CleanupReport::default();
        for pid in std::mem::take(&mut self.pids) {
            if process_matches(pid, &self.cmdline_marker) {
                // SAFETY: plain syscall; the pid was checked to be our node.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                report.removed.push(format!("process {pid}"));
            }
        }
        self.save();
        // Unmounted once their processes are dead, before the namespaces
        // that may hold copies of them go.
        for point in std::mem::take(&mut self.mounts) {
            let was = powercut::is_mounted(&point);
            match powercut::force_unmount(&point) {
                Ok(()) if was => report.removed.push(format!("mount {point}")),
                Ok(()) => {}
                Err(e) => {
                    report.failed.push(format!("mount {point}: {e}"));
                    self.mounts.push(point);
                }
            }
        }
        self.save();
        for rule in std::mem::take(&mut self.ns_rules) {
            if !netns_exists(&rule.netns) {
                continue; // gone with its namespace
            }
            if rule.delete() {
                report.removed.push(format!(
                    "iptables rule in {}: {}",
                    rule.netns,
                    rule.rule.join(" ")
                ));
            }
            if rule.present() {
                report.failed.push(format!(
                    "iptables rule in {}: {}",
                    rule.netns,
                    rule.rule.join(" ")
                ));
                self.ns_rules.push(rule);
            }
        }
        self.save();
        for file in std::mem::take(&mut self.files) {
            match std::fs::remove_file(&file) {
                Ok(()) => report.removed.push(format!("file {}", file.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    report.failed.push(format!("file {}: {e}", file.display()));
                    self.files.push(file);
                }
            }
        }
        self.save();
        for ns in std::mem::take(&mut self.netns) {
            if !netns_exists(&ns) {
                continue;
            }
            // Anything still running in the namespace would keep it alive.
            if let Ok(out) = cmd::run("ip", &["netns", "pids", &ns]) {
                for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                    // SAFETY: plain syscall on a process inside our namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            match cmd::run("ip", &["netns", "del", &ns]) {
                Ok(_) => report.removed.push(format!("netns {ns}")),
                Err(e) => {
                    report.failed.push(format!("netns {ns}: {e}"));
                    self.netns.push(ns);
                }
            }
        }
        self.save();
        for link in std::mem::take(&mut self.links) {
            if !link_exists(&link) {
                continue;
            }
            match cmd::run("ip", &["link", "del", &link]) {
                Ok(_) => report.removed.push(format!("link {link}")),
                Err(e) if !link_exists(&link) => {
                    // Removed with its peer meanwhile.
                    tracing::debug!(%link, error = %e, "link already gone");
                }
                Err(e) => {
                    report.failed.push(format!("link {link}: {e}"));
                    self.links.push(link);
                }
            }
        }
        self.save();
        for rule in std::mem::take(&mut self.host_rules) {
            let mut args = vec!["-w", "-D"];
            args.extend(rule.iter().map(String::as_str));
            // Delete every copy (a rule added twice needs two deletes).
            let mut deleted = false;
            while cmd::run("iptables", &args).is_ok() {
                deleted = true;
            }
            let mut check = vec!["-w", "-C"];
            check.extend(rule.iter().map(String::as_str));
            if cmd::run("iptables", &check).is_ok() {
                report
                    .failed
                    .push(format!("iptables rule {}", rule.join(" ")));
                self.host_rules.push(rule);
            } else if deleted {
                report
                    .removed
                    .push(format!("iptables rule {}", rule.join(" ")));
            }
        }
        self.save();
        report
    }
}

/// True if `pid` runs and its command line contains `marker`.
fn process_matches(pid: i32, marker: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => !marker.is_empty() && String::from_utf8_lossy(&raw).contains(marker),
        Err(_) => false,
    }
}

pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The local kind's cleanup: removes what the resource file at `file`
/// lists and is still there.
pub fn cleanup(file: &Path) -> Result<CleanupReport, DeployError> {
    let mut reg = Registry::load(file)?;
    let report = reg.remove_all();
    if reg.is_empty() {
        Ok(report)
    } else {
        Err(DeployError::Leftovers(report.failed))
    }
}
