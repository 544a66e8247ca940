//! # powercut-fs
//!
//! A FUSE filesystem for the power-loss fault. A node's data directory is
//! mounted on it; everything the node writes is kept in memory in two
//! copies ([`model`]): what processes see, and what a disk would still hold
//! after a power cut (file data once the file was fsynced, names once their
//! directory was fsynced, or the inode they name while it was new, as
//! Linux file systems keep them). [`Mounted::power_cut`] drops everything that was
//! not durable, as pulling the plug would; with the node killed first, its
//! restart then finds only what it had really made durable. A node that
//! acknowledges a write before its fsync, or forgets to fsync a directory
//! after a rename, loses data here and a harness run turns invalid.
//!
//! It needs `/dev/fuse` and root (or `fusermount3` from Debian's `fuse3`);
//! [`available`] says what is missing and how to fix it.

pub mod fs;
pub mod model;

pub use model::{Dropped, Stats};

use fs::{lock, PowercutFs, Shared, SharedState};
use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a mounted file system behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// How long each fsync takes before it answers (and its data is
    /// durable), as on a real disk. With none, a sync is as fast as a
    /// memory copy, and a node that acknowledges a write before its fsync
    /// returns has almost nothing unsynced when the power goes; a few
    /// milliseconds, as a disk takes, make that window real.
    pub sync_latency: Duration,
}

/// Why a filesystem could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("power-cut filesystem unavailable: {0}")]
    Unavailable(String),
    #[error("cannot mount the power-cut filesystem on {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `Ok` if FUSE filesystems can be mounted here, else what is missing and
/// the command that fixes it.
pub fn available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err(
            "/dev/fuse is missing (load the fuse module: modprobe fuse; in a container, pass \
             the device through)"
                .into(),
        );
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let fusermount = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !root && !fusermount {
        return Err(
            "mounting needs root or fusermount3 (run as root, or: apt-get install fuse3)".into(),
        );
    }
    Ok(())
}

/// A mounted power-cut filesystem; unmounted when dropped.
pub struct Mounted {
    path: PathBuf,
    state: SharedState,
    session: Option<BackgroundSession>,
}

impl Mounted {
    /// Mounts an empty filesystem on `path` (an existing, empty directory).
    pub fn mount(path: impl Into<PathBuf>) -> Result<Mounted, MountError> {
        Mounted::mount_with(path, &Options::default())
    }

    /// Mounts an empty filesystem on `path` that behaves as `options` say.
    pub fn mount_with(path: impl Into<PathBuf>, options: &Options) -> Result<Mounted, MountError> {
        available().map_err(MountError::Unavailable)?;
        let path = path.into();
        let state: SharedState = Arc::new(Mutex::new(Shared::default()));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut-fs".into()),
            MountOption::Subtype("powercut".into()),
            MountOption::DefaultPermissions,
        ];
        config.acl = SessionACL::RootAndOwner;
        let session = fuser::spawn_mount(
            PowercutFs::with_sync_latency(state.clone(), options.sync_latency),
            &path,
            &config,
        )
        .map_err(|source| MountError::Mount {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "mounted the power-cut filesystem");
        Ok(Mounted {
            path,
            state,
            session: Some(session),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The power goes off: from now on nothing becomes durable until
    /// [`Mounted::power_cut`], and a sync gets no answer (so its process
    /// cannot see the outage) until [`Mounted::processes_killed`]. Call it
    /// on every file system of an outage before killing the processes, so
    /// all lose power at once.
    pub fn power_off(&self) {
        lock(&self.state).model.power_off();
        tracing::info!(path = %self.path.display(), "power off");
    }

    /// Call once every process using the file system was sent SIGKILL
    /// (before waiting for them to die: a killed process whose sync waits
    /// for an answer cannot exit). Syncs fail from now until the cut; the
    /// killed processes never see it.
    pub fn processes_killed(&self) {
        lock(&self.state).fail_held_syncs();
    }

    /// Drops everything that was not durable and turns the power back on.
    /// Kill the processes using the filesystem first: their open files are
    /// gone.
    pub fn power_cut(&self) -> Dropped {
        let mut s = lock(&self.state);
        let dropped = s.model.power_cut();
        s.power_restored();
        drop(s);
        tracing::info!(path = %self.path.display(), ?dropped, "power cut");
        dropped
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state).model.stats.clone()
    }

    /// Bytes of file data held in memory: (live copy, durable copy).
    pub fn bytes_held(&self) -> (u64, u64) {
        lock(&self.state).model.bytes_held()
    }

    /// Unmounts (also done on drop).
    pub fn unmount(mut self) -> std::io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = s.umount_and_join() {
                tracing::warn!(path = %self.path.display(), error = %e, "unmounting the power-cut filesystem failed");
            }
        }
    }
}
