//! The disk model: two copies of a small filesystem tree.
//!
//! The *live* copy is what processes see (the page cache, in kernel terms);
//! the *durable* copy is what a disk would hold after a power cut. Writes,
//! truncations, creations, renames and unlinks change the live copy only.
//! `fsync` of a file copies that file's data (only the bytes written since
//! its last fsync) to the durable copy; `fsync` of a directory copies that
//! directory's entries (a file whose entry becomes durable before its data
//! was ever fsynced is durable but empty). A power cut makes the live copy
//! the durable one again, dropping everything else.
//!
//! This is the rule a careful storage engine must assume (data is durable
//! after fsync of the file, names after fsync of their directory); real
//! filesystems often keep more, never less, so anything that survives here
//! survives there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};

pub type Ino = u64;
/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// Why an operation failed, as an errno.
pub type Errno = i32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File {
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        mode: u32,
    },
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir { .. })
    }
    pub fn size(&self) -> u64 {
        match self {
            Node::File { data, .. } => data.len() as u64,
            Node::Dir { entries, .. } => entries.len() as u64,
        }
    }
    pub fn mode(&self) -> u32 {
        match self {
            Node::File { mode, .. } | Node::Dir { mode, .. } => *mode,
        }
    }
}

/// What the live copy of a file changed since its last fsync.
#[derive(Clone, Debug, Default)]
struct Dirty {
    /// Written byte ranges (offset, length), possibly overlapping.
    ranges: Vec<(u64, u64)>,
    /// The smallest length the file was truncated to: bytes from there on
    /// must reach the disk as they are now (zeros where nothing was written).
    truncated_to: Option<u64>,
}

/// What a power cut dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Files whose live data differed from their durable data.
    pub files: usize,
    /// Directories whose live entries differed from their durable entries.
    pub dirs: usize,
}

/// Counters, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub power_cuts: u64,
}

/// The two copies and the bookkeeping between them.
#[derive(Debug)]
pub struct Model {
    live: HashMap<Ino, Node>,
    durable: HashMap<Ino, Node>,
    dirty: HashMap<Ino, Dirty>,
    /// Open handles per inode (an unlinked file lives while open).
    open: HashMap<Ino, usize>,
    next_ino: Ino,
    /// Set by [`Model::power_off`]: the disk persists nothing more until
    /// the cut.
    powered_off: bool,
    pub stats: Stats,
}

fn root() -> Node {
    Node::Dir {
        entries: BTreeMap::new(),
        mode: 0o755,
    }
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    pub fn new() -> Model {
        Model {
            live: HashMap::from([(ROOT, root())]),
            durable: HashMap::from([(ROOT, root())]),
            dirty: HashMap::new(),
            open: HashMap::new(),
            next_ino: ROOT + 1,
            powered_off: false,
            stats: Stats::default(),
        }
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.live.get(&ino)
    }

    /// How many directory entries point at `ino` in the live copy.
    pub fn nlink(&self, ino: Ino) -> u32 {
        if ino == ROOT {
            return 2;
        }
        self.live
            .values()
            .filter_map(|n| match n {
                Node::Dir { entries, .. } => Some(entries.values().filter(|i| **i == ino).count()),
                Node::File { .. } => None,
            })
            .sum::<usize>() as u32
    }

    fn dir(&self, ino: Ino) -> Result<&BTreeMap<OsString, Ino>, Errno> {
        match self.live.get(&ino) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut BTreeMap<OsString, Ino>, Errno> {
        match self.live.get_mut(&ino) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        self.dir(parent)?.get(name).copied().ok_or(libc::ENOENT)
    }

    pub fn entries(&self, dir: Ino) -> Result<Vec<(OsString, Ino)>, Errno> {
        Ok(self
            .dir(dir)?
            .iter()
            .map(|(n, i)| (n.clone(), *i))
            .collect())
    }

    fn add(&mut self, parent: Ino, name: &OsStr, node: Node) -> Result<Ino, Errno> {
        if self.dir(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.live.insert(ino, node);
        self.dir_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, mode: u32) -> Result<Ino, Errno> {
        self.add(
            parent,
            name,
            Node::Dir {
                entries: BTreeMap::new(),
                mode,
            },
        )
    }

    /// Creates a file; an existing one is returned unless `exclusive`.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
    ) -> Result<Ino, Errno> {
        match self.lookup(parent, name) {
            Ok(_) if exclusive => Err(libc::EEXIST),
            Ok(ino) if self.live[&ino].is_dir() => Err(libc::EISDIR),
            Ok(ino) => Ok(ino),
            Err(_) => self.add(
                parent,
                name,
                Node::File {
                    data: Vec::new(),
                    mode,
                },
            ),
        }
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if self.live[&ino].is_dir() {
            return Err(libc::EISDIR);
        }
        self.dir_mut(parent)?.remove(name);
        self.forget_if_unused(ino);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.dir_mut(parent)?.remove(name);
        self.forget_if_unused(ino);
        Ok(())
    }

    /// Moves an entry, replacing a file (or an empty directory) at the
    /// target; `noreplace` refuses an existing target.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if noreplace {
                return Err(libc::EEXIST);
            }
            match (self.live[&ino].is_dir(), self.live[&target].is_dir()) {
                (false, true) => return Err(libc::EISDIR),
                (true, false) => return Err(libc::ENOTDIR),
                (true, true) if !self.dir(target)?.is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.remove(name);
        let old = self
            .dir_mut(new_parent)?
            .insert(new_name.to_os_string(), ino);
        if let Some(old) = old {
            self.forget_if_unused(old);
        }
        Ok(())
    }

    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        match self.live.get(&ino) {
            Some(Node::File { data, .. }) => {
                let start = (offset as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                Ok(data[start..end].to_vec())
            }
            Some(Node::Dir { .. }) => Err(libc::EISDIR),
            None => Err(libc::ENOENT),
        }
    }

    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Result<u32, Errno> {
        let Some(Node::File { data, .. }) = self.live.get_mut(&ino) else {
            return Err(libc::EISDIR);
        };
        let end = offset as usize + bytes.len();
        if end > data.len() {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        self.dirty
            .entry(ino)
            .or_default()
            .ranges
            .push((offset, bytes.len() as u64));
        Ok(bytes.len() as u32)
    }

    pub fn set_size(&mut self, ino: Ino, size: u64) -> Result<(), Errno> {
        let Some(Node::File { data, .. }) = self.live.get_mut(&ino) else {
            return Err(libc::EISDIR);
        };
        data.resize(size as usize, 0);
        let d = self.dirty.entry(ino).or_default();
        d.truncated_to = Some(d.truncated_to.map_or(size, |t| t.min(size)));
        Ok(())
    }

    pub fn set_mode(&mut self, ino: Ino, new: u32) -> Result<(), Errno> {
        match self.live.get_mut(&ino) {
            Some(Node::File { mode, .. }) | Some(Node::Dir { mode, .. }) => {
                *mode = new;
                Ok(())
            }
            None => Err(libc::ENOENT),
        }
    }

    /// `fsync` of a file: its data becomes durable (not its name).
    pub fn sync_file(&mut self, ino: Ino) -> Result<(), Errno> {
        if self.powered_off {
            return Err(libc::EIO);
        }
        let Some(Node::File { data, mode }) = self.live.get(&ino) else {
            return Err(libc::EISDIR);
        };
        self.stats.file_syncs += 1;
        let dirty = self.dirty.remove(&ino).unwrap_or_default();
        let target = self.durable.entry(ino).or_insert_with(|| Node::File {
            data: Vec::new(),
            mode: *mode,
        });
        let Node::File {
            data: durable,
            mode: dmode,
        } = target
        else {
            return Err(libc::EIO);
        };
        *dmode = *mode;
        // Only what changed is copied: a log fsynced after every append
        // costs its appended bytes, not its length.
        if let Some(t) = dirty.truncated_to {
            durable.truncate(t as usize);
        }
        durable.resize(data.len(), 0);
        for (off, len) in dirty.ranges {
            let start = (off as usize).min(data.len());
            let end = (start + len as usize).min(data.len());
            durable[start..end].copy_from_slice(&data[start..end]);
        }
        if let Some(t) = dirty.truncated_to {
            // Bytes between the truncation point and the ranges written
            // since are zeros now.
            let t = (t as usize).min(data.len());
            durable[t..].copy_from_slice(&data[t..]);
        }
        Ok(())
    }

    /// `fsync` of a directory: its entries become durable. An entry whose
    /// file was never synced becomes a durable empty file.
    pub fn sync_dir(&mut self, ino: Ino) -> Result<(), Errno> {
        if self.powered_off {
            return Err(libc::EIO);
        }
        let entries = self.dir(ino)?.clone();
        let mode = self.live[&ino].mode();
        self.stats.dir_syncs += 1;
        for child in entries.values() {
            if !self.durable.contains_key(child) {
                let node = match &self.live[child] {
                    Node::File { mode, .. } => Node::File {
                        data: Vec::new(),
                        mode: *mode,
                    },
                    Node::Dir { mode, .. } => Node::Dir {
                        entries: BTreeMap::new(),
                        mode: *mode,
                    },
                };
                self.durable.insert(*child, node);
            }
        }
        self.durable.insert(ino, Node::Dir { entries, mode });
        self.collect_durable_garbage();
        Ok(())
    }

    pub fn opened(&mut self, ino: Ino) {
        *self.open.entry(ino).or_default() += 1;
    }

    pub fn released(&mut self, ino: Ino) {
        if let Some(n) = self.open.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ino);
                self.forget_if_unused(ino);
            }
        }
    }

    /// The instant the power goes: nothing becomes durable any more (a
    /// sync fails) until [`Model::power_cut`] drops what was not.
    /// Separate from the cut so several file systems (or a process kill)
    /// can lose power at one instant, however long the kills take.
    pub fn power_off(&mut self) {
        self.powered_off = true;
    }

    /// Whether the power is off (between [`Model::power_off`] and the cut).
    pub fn is_powered_off(&self) -> bool {
        self.powered_off
    }

    /// The power cut: the live copy becomes what is durable, and the
    /// power is back on.
    pub fn power_cut(&mut self) -> Dropped {
        self.powered_off = false;
        let mut dropped = Dropped::default();
        for (ino, node) in &self.live {
            if self.durable.get(ino) != Some(node) {
                if node.is_dir() {
                    dropped.dirs += 1;
                } else {
                    dropped.files += 1;
                }
            }
        }
        self.stats.power_cuts += 1;
        self.dirty.clear();
        self.open.clear();
        self.collect_durable_garbage();
        self.live = self.durable.clone();
        dropped
    }

    /// Forgets a live inode no entry points at and nobody has open (its
    /// durable copy lives on while a durable entry points at it).
    fn forget_if_unused(&mut self, ino: Ino) {
        if ino == ROOT || self.open.contains_key(&ino) || self.nlink(ino) > 0 {
            return;
        }
        if let Some(Node::Dir { entries, .. }) = self.live.remove(&ino) {
            for child in entries.into_values() {
                self.forget_if_unused(child);
            }
        }
        self.dirty.remove(&ino);
        self.collect_durable_garbage();
    }

    /// Drops durable inodes that neither the durable tree reaches nor the
    /// live copy still holds (their data is of no use to anyone).
    fn collect_durable_garbage(&mut self) {
        let mut reachable = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(i) = stack.pop() {
            if let Some(Node::Dir { entries, .. }) = self.durable.get(&i) {
                for c in entries.values() {
                    if reachable.insert(*c) {
                        stack.push(*c);
                    }
                }
            }
        }
        let live = &self.live;
        self.durable
            .retain(|i, _| reachable.contains(i) || live.contains_key(i));
    }

    /// Total bytes of file data held (both copies), for logs.
    pub fn bytes_held(&self) -> (u64, u64) {
        let sum = |m: &HashMap<Ino, Node>| {
            m.values()
                .map(|n| match n {
                    Node::File { data, .. } => data.len() as u64,
                    Node::Dir { .. } => 0,
                })
                .sum()
        };
        (sum(&self.live), sum(&self.durable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn read_all(m: &Model, dir: Ino, name: &str) -> Option<Vec<u8>> {
        let ino = m.lookup(dir, os(name)).ok()?;
        m.read(ino, 0, u32::MAX).ok()
    }

    #[test]
    fn only_synced_data_under_a_synced_name_survives() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, os("d"), 0o755).unwrap();
        m.sync_dir(ROOT).unwrap();
        let a = m.create(d, os("a"), 0o644, true).unwrap();
        m.write(a, 0, b"hello").unwrap();
        m.sync_file(a).unwrap();
        m.write(a, 5, b" world").unwrap();
        // Name not durable yet: the file is gone after a cut.
        let cut = m.power_cut();
        assert_eq!(cut.dirs, 1);
        assert_eq!(read_all(&m, d, "a"), None);

        let a = m.create(d, os("a"), 0o644, true).unwrap();
        m.write(a, 0, b"hello").unwrap();
        m.sync_file(a).unwrap();
        m.sync_dir(d).unwrap();
        m.write(a, 5, b" world").unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, d, "a"), Some(b"hello".to_vec()));

        // A durable name whose data was never synced: an empty file.
        let b = m.create(d, os("b"), 0o644, true).unwrap();
        m.write(b, 0, b"unsynced").unwrap();
        m.sync_dir(d).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, d, "b"), Some(vec![]));
    }

    #[test]
    fn renames_unlinks_and_truncations_wait_for_their_sync() {
        let mut m = Model::new();
        let a = m.create(ROOT, os("tmp"), 0o644, true).unwrap();
        m.write(a, 0, b"new content").unwrap();
        m.sync_file(a).unwrap();
        let old = m.create(ROOT, os("file"), 0o644, true).unwrap();
        m.write(old, 0, b"old").unwrap();
        m.sync_file(old).unwrap();
        m.sync_dir(ROOT).unwrap();
        m.rename(ROOT, os("tmp"), ROOT, os("file"), false).unwrap();
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"new content".to_vec()));
        m.power_cut();
        // The rename was not durable: both names as before.
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"old".to_vec()));
        assert_eq!(read_all(&m, ROOT, "tmp"), Some(b"new content".to_vec()));
        m.rename(ROOT, os("tmp"), ROOT, os("file"), false).unwrap();
        m.sync_dir(ROOT).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"new content".to_vec()));
        assert_eq!(read_all(&m, ROOT, "tmp"), None);

        let f = m.lookup(ROOT, os("file")).unwrap();
        m.set_size(f, 3).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"new content".to_vec()));
        let f = m.lookup(ROOT, os("file")).unwrap();
        m.set_size(f, 3).unwrap();
        m.sync_file(f).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"new".to_vec()));

        m.unlink(ROOT, os("file")).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, ROOT, "file"), Some(b"new".to_vec()));
        m.unlink(ROOT, os("file")).unwrap();
        m.sync_dir(ROOT).unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, ROOT, "file"), None);
    }

    /// A random mix of writes, truncations and syncs: after a cut, the file
    /// holds exactly what it held at its last sync.
    #[test]
    fn incremental_sync_equals_a_full_copy() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut m = Model::new();
            let f = m.create(ROOT, os("f"), 0o644, true).unwrap();
            m.sync_dir(ROOT).unwrap();
            let mut synced = Vec::new();
            for _ in 0..30 {
                match rnd(4) {
                    0 | 1 => {
                        let off = rnd(64);
                        let len = rnd(16) as usize;
                        let byte = rnd(255) as u8 + 1;
                        m.write(f, off, &vec![byte; len]).unwrap();
                    }
                    2 => m.set_size(f, rnd(80)).unwrap(),
                    _ => {
                        m.sync_file(f).unwrap();
                        synced = m.read(f, 0, u32::MAX).unwrap();
                    }
                }
            }
            m.power_cut();
            assert_eq!(read_all(&m, ROOT, "f"), Some(synced), "round {round}");
        }
    }

    #[test]
    fn errors_are_posix() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, os("d"), 0o755).unwrap();
        m.create(d, os("f"), 0o644, true).unwrap();
        assert_eq!(m.create(d, os("f"), 0o644, true), Err(libc::EEXIST));
        assert_eq!(m.rmdir(ROOT, os("d")), Err(libc::ENOTEMPTY));
        assert_eq!(m.unlink(ROOT, os("d")), Err(libc::EISDIR));
        assert_eq!(m.lookup(d, os("nope")), Err(libc::ENOENT));
        assert_eq!(
            m.rename(d, os("f"), ROOT, os("d"), false),
            Err(libc::EISDIR)
        );
        assert_eq!(
            m.rename(d, os("f"), d, os("f2"), false)
                .map(|_| m.lookup(d, os("f2")).is_ok()),
            Ok(true)
        );
    }
}
