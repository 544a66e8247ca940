//! The FUSE side: every request is answered from the [`Model`], under one
//! lock. Attributes and entries are never cached by the kernel (TTL 0) and
//! file pages are not kept across opens, so after a power cut processes see
//! exactly the durable copy.

use crate::model::{Ino, Model, Node};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Nothing is cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// The shared state: the model and the open file handles.
#[derive(Debug, Default)]
pub struct Shared {
    pub model: Model,
    /// File handle -> (inode, opened with O_APPEND).
    handles: HashMap<u64, (Ino, bool)>,
    next_fh: u64,
    /// Syncs that came while the power was off: no answer until their
    /// processes were sent SIGKILL (so none of them sees it), then failed.
    held: Vec<ReplyEmpty>,
    /// Set once the processes were sent SIGKILL: syncs fail at once (the
    /// kernel cannot let a killed process go while its request waits).
    fail_syncs: bool,
}

impl Shared {
    /// Fails the syncs held while the power was off, and every sync from
    /// now until the cut.
    pub fn fail_held_syncs(&mut self) {
        self.fail_syncs = true;
        for reply in self.held.drain(..) {
            reply.error(Errno::EIO);
        }
    }

    /// The power is back: syncs work again.
    pub fn power_restored(&mut self) {
        self.fail_held_syncs();
        self.fail_syncs = false;
    }
}

pub type SharedState = Arc<Mutex<Shared>>;

pub fn lock(s: &SharedState) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The filesystem handed to FUSE.
pub struct PowercutFs {
    pub state: SharedState,
    uid: u32,
    gid: u32,
    started: SystemTime,
    /// How long an fsync takes before its data is durable (see
    /// [`crate::Options::sync_latency`]).
    sync_latency: Duration,
}

impl PowercutFs {
    pub fn new(state: SharedState) -> PowercutFs {
        PowercutFs::with_sync_latency(state, Duration::ZERO)
    }

    /// A file system whose fsyncs take `sync_latency` each.
    pub fn with_sync_latency(state: SharedState, sync_latency: Duration) -> PowercutFs {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        PowercutFs {
            state,
            uid,
            gid,
            started: SystemTime::now(),
            sync_latency,
        }
    }

    /// Carries out a sync once the sync latency has passed, in its own
    /// thread so other requests go on meanwhile, and only then answers:
    /// what was written before the answer is durable, nothing is promised
    /// earlier. A sync that a power cut overtook does nothing (its
    /// process is dead and what it wrote is gone); one that comes while
    /// the power is off gets no answer before its process was sent
    /// SIGKILL, as the power would take the process with it.
    fn sync_later(
        &self,
        reply: ReplyEmpty,
        sync: impl FnOnce(&mut Model) -> Result<(), i32> + Send + 'static,
    ) {
        let finish = move |state: &SharedState, cuts_before: u64| {
            let mut s = lock(state);
            if s.model.stats.power_cuts != cuts_before {
                return reply.error(Errno::EIO);
            }
            if s.model.is_powered_off() {
                if s.fail_syncs {
                    return reply.error(Errno::EIO);
                }
                return s.held.push(reply);
            }
            match sync(&mut s.model) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        };
        let cuts = lock(&self.state).model.stats.power_cuts;
        if self.sync_latency.is_zero() {
            return finish(&self.state, cuts);
        }
        let state = self.state.clone();
        let latency = self.sync_latency;
        std::thread::spawn(move || {
            std::thread::sleep(latency);
            finish(&state, cuts);
        });
    }

    fn attr(&self, ino: Ino, node: &Node, nlink: u32) -> FileAttr {
        let (kind, perm) = match node {
            Node::File { mode, .. } => (FileType::RegularFile, *mode),
            Node::Dir { mode, .. } => (FileType::Directory, *mode),
        };
        let size = node.size();
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm: (perm & 0o7777) as u16,
            nlink: nlink.max(1),
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr_of(&self, s: &Shared, ino: Ino) -> Result<FileAttr, Errno> {
        let node = s.model.node(ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, node, s.model.nlink(ino)))
    }
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl Filesystem for PowercutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = lock(&self.state);
        match s
            .model
            .lookup(parent.0, name)
            .map_err(errno)
            .and_then(|ino| self.attr_of(&s, ino))
        {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = lock(&self.state);
        match self.attr_of(&s, ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = lock(&self.state);
        let r = (|| {
            if let Some(size) = size {
                s.model.set_size(ino.0, size).map_err(errno)?;
            }
            if let Some(mode) = mode {
                s.model.set_mode(ino.0, mode).map_err(errno)?;
            }
            self.attr_of(&s, ino.0)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = lock(&self.state);
        match s
            .model
            .mkdir(parent.0, name, mode & !umask)
            .map_err(errno)
            .and_then(|ino| self.attr_of(&s, ino))
        {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).model.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).model.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::EINVAL);
            return;
        }
        match lock(&self.state)
            .model
            .rename(parent.0, name, newparent.0, newname, noreplace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = lock(&self.state);
        match s.model.node(ino.0) {
            Some(Node::File { .. }) => {}
            Some(Node::Dir { .. }) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        }
        if flags.0 & libc::O_TRUNC != 0 {
            if let Err(e) = s.model.set_size(ino.0, 0) {
                return reply.error(errno(e));
            }
        }
        let fh = s.next_fh;
        s.next_fh += 1;
        s.handles.insert(fh, (ino.0, flags.0 & libc::O_APPEND != 0));
        s.model.opened(ino.0);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = lock(&self.state);
        let exclusive = flags & libc::O_EXCL != 0;
        let ino = match s.model.create(parent.0, name, mode & !umask, exclusive) {
            Ok(i) => i,
            Err(e) => return reply.error(errno(e)),
        };
        if flags & libc::O_TRUNC != 0 {
            if let Err(e) = s.model.set_size(ino, 0) {
                return reply.error(errno(e));
            }
        }
        let fh = s.next_fh;
        s.next_fh += 1;
        s.handles.insert(fh, (ino, flags & libc::O_APPEND != 0));
        s.model.opened(ino);
        match self.attr_of(&s, ino) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match lock(&self.state).model.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = lock(&self.state);
        let append = s.handles.get(&fh.0).is_some_and(|(_, a)| *a);
        let offset = if append {
            s.model.node(ino.0).map_or(offset, |n| n.size())
        } else {
            offset
        };
        match s.model.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is no sync: nothing becomes durable here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = lock(&self.state);
        if s.handles.remove(&fh.0).is_some() {
            s.model.released(ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync_later(reply, move |m| m.sync_file(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match lock(&self.state).model.node(ino.0) {
            Some(Node::Dir { .. }) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(Node::File { .. }) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = lock(&self.state);
        let entries = match s.model.entries(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let mut all = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in entries {
            let kind = match s.model.node(child) {
                Some(Node::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((child, kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync_later(reply, move |m| m.sync_dir(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: the data lives in memory.
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}
