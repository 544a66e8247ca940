//! Node data directories on powercut-fs, for the `power-loss` fault.
//!
//! When a run asks for power-loss, the local deployment mounts a
//! [`powercut_fs::Mounted`] file system on every node's data directory at
//! setup, before the node starts. Each mount is recorded in the resource
//! file before it is made, so teardown and `dcf-harness cleanup` unmount
//! it (a mount whose harness was SIGKILLed is dead: `fusermount3 -u -z`
//! or `umount -l` removes it). At teardown the node's data is copied out
//! of the mount into the run folder first, so the run keeps it.
//!
//! Nodes run under `ip netns exec`, which gives each its own mount
//! namespace holding a copy of ours: [`Disks::check_seen_by`] reads the
//! node's `/proc/PID/mountinfo` to make sure the node writes to the mount
//! and not to the folder under it.

use super::registry::Registry;
use super::{cmd, NodeSpec};
use nemesis::{FaultError, NodeId};
use powercut_fs::{Mounted, Options};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long each fsync of a node takes, as on a real disk. Without it a
/// sync is a memory copy and a node that acknowledges writes before its
/// fsync returns would have next to nothing unsynced when the power goes,
/// so the defect would go unseen.
pub const SYNC_LATENCY: Duration = Duration::from_millis(20);

/// The source of a powercut-fs mount in `mountinfo` (its type is `fuse`,
/// or `fuse.powercut` when mounted through `fusermount3`).
const SOURCE: &str = "powercut-fs";

/// The mounted data directories of a cluster, or why there are none.
#[derive(Default)]
pub struct Disks {
    mounts: BTreeMap<NodeId, Mounted>,
    /// Set when FUSE cannot be used here: why, and the fix.
    unavailable: Option<String>,
}

impl Disks {
    /// Mounts powercut-fs on every node's (empty) data directory, each
    /// recorded in `registry` first. Without FUSE nothing is mounted and
    /// the power-loss fault is reported unsupported (with the fix); a
    /// mount that fails where FUSE works is an error.
    pub fn mount_all(nodes: &[NodeSpec], registry: &mut Registry) -> Result<Disks, String> {
        if let Err(why) = powercut_fs::available() {
            tracing::warn!(%why, "FUSE unavailable: power-loss faults will be unsupported");
            return Ok(Disks {
                mounts: BTreeMap::new(),
                unavailable: Some(format!(
                    "power cuts need FUSE: {why} (install it with: apt-get install fuse3)"
                )),
            });
        }
        let mut disks = Disks::default();
        for n in nodes {
            let dir = n.data_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            registry.add_mount(&dir.display().to_string());
            let options = Options {
                sync_latency: SYNC_LATENCY,
            };
            let m =
                Mounted::mount_with(&dir, &options).map_err(|e| format!("node {}: {e}", n.id))?;
            disks.mounts.insert(n.id, m);
        }
        Ok(disks)
    }

    /// `Ok` if power cuts can be made here.
    pub fn supported(&self) -> Result<(), String> {
        match &self.unavailable {
            Some(why) => Err(why.clone()),
            None if self.mounts.is_empty() => {
                Err("the data directories are not on powercut-fs (not set up)".into())
            }
            None => Ok(()),
        }
    }

    fn mount_of(&self, node: NodeId) -> Result<&Mounted, FaultError> {
        self.supported().map_err(FaultError::Unsupported)?;
        self.mounts
            .get(&node)
            .ok_or_else(|| FaultError::Failed(format!("node {node} has no power-cut mount")))
    }

    /// The disks of `nodes` lose power: nothing of theirs becomes durable
    /// from now on, until [`Disks::power_cut`].
    pub fn power_off(&self, nodes: &[NodeId]) -> Result<(), FaultError> {
        let mounts = nodes
            .iter()
            .map(|&n| self.mount_of(n))
            .collect::<Result<Vec<_>, _>>()?;
        mounts.iter().for_each(|m| m.power_off());
        Ok(())
    }

    /// The processes of `nodes` were sent SIGKILL: their pending syncs
    /// fail now (unseen), so they can die.
    pub fn processes_killed(&self, nodes: &[NodeId]) {
        for n in nodes {
            if let Some(m) = self.mounts.get(n) {
                m.processes_killed();
            }
        }
    }

    /// Drops what `nodes` had not made durable (their processes must be
    /// dead) and turns their disks back on; what each lost, by node.
    pub fn power_cut(&self, nodes: &[NodeId]) -> Result<Value, FaultError> {
        let mut lost = serde_json::Map::new();
        for &n in nodes {
            let m = self.mount_of(n)?;
            let (before, _) = m.bytes_held();
            let dropped = m.power_cut();
            let (after, _) = m.bytes_held();
            lost.insert(
                n.to_string(),
                json!({
                    "files": dropped.files,
                    "dirs": dropped.dirs,
                    "bytes_before": before,
                    "bytes_after": after,
                }),
            );
        }
        Ok(Value::Object(lost))
    }

    /// Fails unless the process `pid` (node `node`) sees the mount on its
    /// data directory `dir` in its own mount namespace.
    pub fn check_seen_by(&self, node: NodeId, pid: i32, dir: &Path) -> Result<(), String> {
        if !self.mounts.contains_key(&node) {
            return Ok(());
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .map_err(|e| format!("cannot read the mounts of process {pid}: {e}"))?;
        if mounted_in(&info, dir) {
            Ok(())
        } else {
            Err(format!(
                "node {node} (pid {pid}) does not see the power-cut file system on {} \
                 (its FUSE mounts: {:?})",
                dir.display(),
                info.lines()
                    .filter(|l| l.contains("fuse"))
                    .collect::<Vec<_>>()
            ))
        }
    }

    /// Copies each node's data out of its mount into the run folder,
    /// unmounts it and forgets it in `registry`. The node processes must
    /// be dead. Returns what could not be done.
    pub fn unmount_all(&mut self, registry: &mut Registry) -> Vec<String> {
        let mut failed = Vec::new();
        for (node, m) in std::mem::take(&mut self.mounts) {
            let dir = m.path().to_path_buf();
            let saved = saved_copy(&dir);
            let copied = copy_out(&dir, &saved);
            if let Err(e) = &copied {
                failed.push(format!("node {node}: keeping its data: {e}"));
            }
            match m.unmount() {
                Ok(()) => registry.remove_mount(&dir.display().to_string()),
                Err(e) => {
                    failed.push(format!("node {node}: unmounting {}: {e}", dir.display()));
                    continue;
                }
            }
            if copied.is_ok() {
                if let Err(e) =
                    std::fs::remove_dir(&dir).and_then(|()| std::fs::rename(&saved, &dir))
                {
                    failed.push(format!("node {node}: moving its data back: {e}"));
                }
            }
        }
        failed
    }
}

/// Where a node's data waits while its mount is taken away.
fn saved_copy(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".saved");
    dir.with_file_name(name)
}

/// Copies the tree at `src` into `dest` (files and folders).
fn copy_out(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_out(&entry.path(), &to)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Whether `mountinfo` (as in `/proc/PID/mountinfo`) lists a powercut-fs
/// mount on `dir`.
fn mounted_in(mountinfo: &str, dir: &Path) -> bool {
    let want = dir.display().to_string();
    mountinfo.lines().any(|line| {
        // Fields: id parent major:minor root mountpoint options ... - fstype source ...
        let fields: Vec<&str> = line.split(' ').collect();
        let point = fields.get(4).map(|p| unescape(p));
        let mut tail = line.split(" - ").nth(1).unwrap_or("").split(' ');
        let (fstype, source) = (tail.next().unwrap_or(""), tail.next());
        point.as_deref() == Some(want.as_str())
            && (fstype == "fuse" || fstype.starts_with("fuse."))
            && source == Some(SOURCE)
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let octal = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a powercut-fs file system is mounted on `dir` in our mount
/// namespace.
pub fn is_mounted(dir: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| mounted_in(&info, Path::new(dir)))
        .unwrap_or(false)
}

/// Removes a mount a dead harness left (its FUSE server is gone, so the
/// mount only answers "transport endpoint is not connected"): a lazy
/// unmount with `fusermount3`, else `umount -l`.
pub fn force_unmount(dir: &str) -> Result<(), String> {
    if !is_mounted(dir) {
        return Ok(());
    }
    let first = cmd::run("fusermount3", &["-u", "-z", dir]);
    if first.is_ok() && !is_mounted(dir) {
        return Ok(());
    }
    match cmd::run("umount", &["-l", dir]) {
        Ok(_) if !is_mounted(dir) => Ok(()),
        Ok(_) => Err(format!("{dir} is still mounted after umount -l")),
        Err(e) => Err(match first {
            Err(f) => format!("{f}; {e}"),
            Ok(_) => e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_name_the_mount_point_and_type() {
        let info = "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw\n\
                    90 29 0:52 / /tmp/run\\040x/n1/data rw,nosuid,nodev relatime - fuse powercut-fs rw,user_id=0\n\
                    91 29 0:53 / /other rw - fuse.powercut powercut-fs rw\n\
                    93 29 0:55 / /sshfs rw - fuse.sshfs host:/x rw\n";
        assert!(mounted_in(info, Path::new("/tmp/run x/n1/data")));
        assert!(!mounted_in(info, Path::new("/tmp/run x/n2/data")));
        assert!(
            !mounted_in(info, Path::new("/mnt1")),
            "not a powercut mount"
        );
        assert!(
            mounted_in(info, Path::new("/other")),
            "mounted through fusermount3"
        );
        assert!(
            !mounted_in(info, Path::new("/sshfs")),
            "another FUSE file system"
        );
        assert_eq!(unescape("a\\040b\\\\"), "a b\\\\");
    }

    #[test]
    fn saved_copies_sit_beside_the_data_directory() {
        assert_eq!(
            saved_copy(Path::new("/r/nodes/n1/data")),
            PathBuf::from("/r/nodes/n1/data.saved")
        );
    }
}
