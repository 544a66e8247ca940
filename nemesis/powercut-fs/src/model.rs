//! The disk model: two copies of a small filesystem tree.
//!
//! The *live* copy is what processes see (the page cache, in kernel terms);
//! the *durable* copy is what a disk would hold after a power cut. Writes,
//! truncations, creations, renames and unlinks change the live copy only.
//! `fsync` of a file copies that file's data (only the bytes written since
//! its last fsync) to the durable copy; `fsync` of a directory copies that
//! directory's entries (a file whose entry becomes durable before its data
//! was ever fsynced is durable but empty, a directory durable but without
//! entries). A power cut makes the live copy the durable one again,
//! dropping everything else.
//!
//! One more rule: an `fsync` (of a file or of a directory) of an inode that
//! no durable entry names yet, one created since the last sync of its
//! directory, also makes durable the entries that lead to it: its own entry
//! in its directory and, while that directory is new as well, the
//! directory's entry in its parent, up to a directory that is durable
//! where it is. Only those entries: the other changes of those directories
//! still wait for their own fsync. Linux file systems all keep that much:
//! ext4 syncs the new parents of a synced inode even without a journal
//! (`ext4_sync_parent`), btrfs logs a new inode with its new ancestors, and
//! the journals of ext4 and xfs commit every earlier change. Programs rely
//! on it; etcd, for one, creates its `member/` directory and fsyncs it,
//! but never the data directory that holds it.
//!
//! These are the rules a careful storage engine must assume (data is
//! durable after fsync of the file, names after fsync of their directory,
//! or of themselves when new); real filesystems often keep more (a
//! journal commits every earlier change), never less, so anything that
//! survives here survives there. A rename or unlink of a durable name, in
//! particular, waits for an fsync of its directory: an fsync of the
//! renamed file does not make its new name durable.

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
        self.persist_path(ino);
        Ok(())
    }

    /// `fsync` of a directory: its entries become durable. An entry whose
    /// file was never synced becomes a durable empty file, one whose
    /// directory was never synced a durable empty directory.
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
        self.persist_path(ino);
        self.collect_durable_garbage();
        Ok(())
    }

    /// The inodes the durable tree reaches from the root.
    fn durably_named(&self) -> HashSet<Ino> {
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
        reachable
    }

    /// The live directory holding `ino`, and its name there.
    fn live_parent(&self, ino: Ino) -> Option<(Ino, OsString)> {
        self.live.iter().find_map(|(dir, node)| match node {
            Node::Dir { entries, .. } => entries
                .iter()
                .find(|(_, child)| **child == ino)
                .map(|(name, _)| (*dir, name.clone())),
            Node::File { .. } => None,
        })
    }

    /// After a sync of `ino` (whose durable copy exists): if no durable
    /// entry names it, its live entry becomes durable, and so on up while
    /// the directory holding it is not durably named either. Only these
    /// entries: a directory made durable here holds just the entry on the
    /// path (plus what it held before).
    fn persist_path(&mut self, ino: Ino) {
        let named = self.durably_named();
        if named.contains(&ino) {
            // The common case (a log fsynced after every append): nothing
            // to add, and nothing the durable tree lost.
            return;
        }
        let mut child = ino;
        while !named.contains(&child) {
            // An unlinked file still open has no name to keep.
            let Some((parent, name)) = self.live_parent(child) else {
                break;
            };
            let mode = self.live[&parent].mode();
            let node = self.durable.entry(parent).or_insert_with(|| Node::Dir {
                entries: BTreeMap::new(),
                mode,
            });
            let Node::Dir { entries, .. } = node else {
                break;
            };
            entries.insert(name, child);
            child = parent;
        }
        self.collect_durable_garbage();
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
        // Only what a durable name reaches is left: a synced inode whose
        // name never became durable is gone (the live copy, which kept it
        // until now, is dropped too).
        let named = self.durably_named();
        self.durable.retain(|i, _| named.contains(i));
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
        let reachable = self.durably_named();
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

    impl Model {
        /// A power cut, then a check that the tree it leaves is whole:
        /// every entry leads to an inode, every inode has a name, and every
        /// directory one only. (A file may have two: one moved to another
        /// directory, and only that directory synced.)
        fn power_cut_checked(&mut self) -> Result<(), Errno> {
            self.power_cut();
            assert_eq!(self.live, self.durable);
            assert_eq!(
                self.durably_named().len(),
                self.live.len(),
                "unnamed inodes"
            );
            let mut named = HashSet::from([ROOT]);
            for node in self.live.values() {
                if let Node::Dir { entries, .. } = node {
                    for c in entries.values() {
                        let child = self.live.get(c);
                        assert!(child.is_some(), "entry to a missing inode {c}");
                        if child.is_some_and(Node::is_dir) {
                            assert!(named.insert(*c), "directory {c} has two names");
                        }
                    }
                }
            }
            Ok(())
        }
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
        // Neither data nor name durable: the file is gone after a cut.
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

        // A new file synced, its directory not: the sync keeps its name.
        let c = m.create(d, os("c"), 0o644, true).unwrap();
        m.write(c, 0, b"hello").unwrap();
        m.sync_file(c).unwrap();
        m.write(c, 5, b" world").unwrap();
        m.power_cut();
        assert_eq!(read_all(&m, d, "c"), Some(b"hello".to_vec()));
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

    /// A synced file whose name never became durable (here: unlinked
    /// while open) is not kept after a cut, neither copy of it.
    #[test]
    fn a_cut_keeps_no_inode_without_a_durable_name() {
        let mut m = Model::new();
        let f = m.create(ROOT, os("f"), 0o644, true).unwrap();
        m.opened(f);
        m.write(f, 0, b"data").unwrap();
        m.sync_file(f).unwrap();
        m.unlink(ROOT, os("f")).unwrap();
        m.sync_dir(ROOT).unwrap();
        m.write(f, 4, b"more").unwrap();
        m.sync_file(f).unwrap();
        assert_eq!(m.bytes_held(), (8, 8));
        m.power_cut();
        assert_eq!(m.node(f), None);
        assert_eq!(m.bytes_held(), (0, 0));
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

    /// The inode at `path` (names from the root), if there is one.
    fn at(m: &Model, path: &[&str]) -> Option<Ino> {
        path.iter()
            .try_fold(ROOT, |dir, name| m.lookup(dir, os(name)).ok())
    }

    fn content(m: &Model, path: &[&str]) -> Option<Vec<u8>> {
        m.read(at(m, path)?, 0, u32::MAX).ok()
    }

    /// A directory built under a temporary name, synced, renamed into a
    /// durable directory and that directory synced: the directory and
    /// what it holds survive under the new name.
    #[test]
    fn a_synced_directory_renamed_in_a_synced_parent_survives() {
        let mut m = Model::new();
        let member = m.mkdir(ROOT, os("member"), 0o700).unwrap();
        m.sync_dir(ROOT).unwrap();
        let tmp = m.mkdir(member, os("wal.tmp"), 0o700).unwrap();
        let f = m.create(tmp, os("0.wal"), 0o600, true).unwrap();
        m.write(f, 0, b"records").unwrap();
        m.sync_file(f).unwrap();
        m.sync_dir(tmp).unwrap();
        m.rename(member, os("wal.tmp"), member, os("wal"), false)
            .unwrap();
        m.sync_dir(member).unwrap();
        m.power_cut();
        assert_eq!(
            content(&m, &["member", "wal", "0.wal"]),
            Some(b"records".to_vec())
        );
        assert_eq!(at(&m, &["member", "wal.tmp"]), None);
    }

    /// What etcd 3.4 does on its first start (as strace shows it): it
    /// creates `member/` and `member/snap/` and fsyncs neither the data
    /// directory nor `member/` then; it fdatasyncs its new backend file
    /// `snap/db`, builds its WAL in `member/wal.tmp/` (fdatasyncs the
    /// segment, never the directory), renames it to `member/wal`, starts
    /// the next segment `wal/0.tmp` and fsyncs `member/`. Every inode it
    /// synced was new, so the entries leading to it are durable too: the
    /// WAL survives a cut, as it does on ext4, xfs or btrfs.
    #[test]
    fn etcds_first_start_survives_a_cut() {
        let mut m = Model::new();
        let member = m.mkdir(ROOT, os("member"), 0o700).unwrap();
        let snap = m.mkdir(member, os("snap"), 0o700).unwrap();
        let db = m.create(snap, os("db"), 0o600, false).unwrap();
        m.write(db, 0, b"bolt").unwrap();
        m.sync_file(db).unwrap();
        let tmp = m.mkdir(member, os("wal.tmp"), 0o700).unwrap();
        let seg = m.create(tmp, os("0-0.wal"), 0o600, false).unwrap();
        m.set_size(seg, 64).unwrap();
        m.write(seg, 0, b"crc+metadata+snapshot").unwrap();
        m.sync_file(seg).unwrap();
        m.rename(member, os("wal.tmp"), member, os("wal"), false)
            .unwrap();
        let next = m.create(seg_dir(&m), os("0.tmp"), 0o600, false).unwrap();
        m.set_size(next, 64).unwrap();
        m.sync_dir(member).unwrap();
        m.write(seg, 21, b"entries").unwrap();
        m.sync_file(seg).unwrap();

        m.power_cut();
        let mut expected = b"crc+metadata+snapshotentries".to_vec();
        expected.resize(64, 0);
        assert_eq!(content(&m, &["member", "wal", "0-0.wal"]), Some(expected));
        assert_eq!(
            content(&m, &["member", "snap", "db"]),
            Some(b"bolt".to_vec())
        );
        // Never synced, nor its directory since it was created.
        assert_eq!(at(&m, &["member", "wal", "0.tmp"]), None);
        assert_eq!(at(&m, &["member", "wal.tmp"]), None);

        fn seg_dir(m: &Model) -> Ino {
            at(m, &["member", "wal"]).unwrap()
        }
    }

    /// A new directory's entries need a sync of that directory, or of the
    /// new inodes they name: a sync of its parent keeps the directory,
    /// empty. (ext4 and xfs would keep more, since their journals commit
    /// every earlier change; a program cannot count on that.)
    #[test]
    fn a_new_directory_synced_only_in_its_parent_is_empty() {
        let mut m = Model::new();
        let member = m.mkdir(ROOT, os("member"), 0o700).unwrap();
        m.sync_dir(ROOT).unwrap();
        let tmp = m.mkdir(member, os("wal.tmp"), 0o700).unwrap();
        let f = m.create(tmp, os("0.wal"), 0o600, true).unwrap();
        m.write(f, 0, b"records").unwrap();
        m.rename(member, os("wal.tmp"), member, os("wal"), false)
            .unwrap();
        m.sync_dir(member).unwrap();
        m.power_cut();
        let wal = at(&m, &["member", "wal"]).expect("the directory survives");
        assert_eq!(m.entries(wal), Ok(vec![]));

        // Its directory synced, not the file: the name survives, empty.
        let tmp = m.mkdir(member, os("wal.tmp"), 0o700).unwrap();
        let f = m.create(tmp, os("0.wal"), 0o600, true).unwrap();
        m.write(f, 0, b"records").unwrap();
        m.sync_dir(tmp).unwrap();
        m.power_cut();
        assert_eq!(content(&m, &["member", "wal.tmp", "0.wal"]), Some(vec![]));
    }

    /// A sync of a new inode makes durable the entries on its path only:
    /// the other changes of the directories on the way wait for their own
    /// sync, and a durable name that moves waits for its directory.
    #[test]
    fn a_new_inode_brings_only_its_path_along() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, os("d"), 0o755).unwrap();
        let old = m.create(d, os("old"), 0o644, true).unwrap();
        m.sync_dir(d).unwrap();
        m.sync_dir(ROOT).unwrap();
        m.create(d, os("unsynced"), 0o644, true).unwrap();
        m.rename(d, os("old"), d, os("moved"), false).unwrap();
        m.sync_file(old).unwrap();
        let new = m.mkdir(d, os("new"), 0o755).unwrap();
        let sub = m.mkdir(new, os("sub"), 0o755).unwrap();
        m.create(new, os("sibling"), 0o644, true).unwrap();
        let f = m.create(sub, os("f"), 0o644, true).unwrap();
        m.write(f, 0, b"data").unwrap();
        m.sync_file(f).unwrap();
        m.power_cut();
        assert_eq!(
            content(&m, &["d", "new", "sub", "f"]),
            Some(b"data".to_vec())
        );
        assert_eq!(at(&m, &["d", "new", "sibling"]), None);
        assert_eq!(at(&m, &["d", "unsynced"]), None);
        // The rename of a durable name waits for its directory.
        assert!(at(&m, &["d", "old"]).is_some());
        assert_eq!(at(&m, &["d", "moved"]), None);
    }

    /// A small random file system: random operations, then a sync of one
    /// random inode and a cut. The synced inode survives with what it held
    /// when synced (file data, or directory entry names), every entry of
    /// the durable tree leads to an inode, and syncing everything before a
    /// cut loses nothing.
    #[test]
    fn random_trees_keep_what_was_synced() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let names = ["a", "b", "c", "d"];
        for round in 0..500 {
            let mut m = Model::new();
            for _ in 0..(5 + rnd(40)) {
                let dirs: Vec<Ino> = tree(&m)
                    .into_iter()
                    .filter(|i| m.live[i].is_dir())
                    .collect();
                let files: Vec<Ino> = tree(&m)
                    .into_iter()
                    .filter(|i| !m.live[i].is_dir())
                    .collect();
                let dir = dirs[rnd(dirs.len() as u64) as usize];
                let name = os(names[rnd(names.len() as u64) as usize]);
                let _ = match rnd(10) {
                    0 => m.mkdir(dir, name, 0o755).map(drop),
                    1 | 2 => m.create(dir, name, 0o644, false).map(drop),
                    3 | 4 if !files.is_empty() => {
                        let f = files[rnd(files.len() as u64) as usize];
                        m.write(f, rnd(8), &vec![rnd(255) as u8 + 1; rnd(8) as usize])
                            .map(drop)
                    }
                    5 => {
                        // Files move anywhere, directories within their
                        // directory (as a WAL directory built under a
                        // temporary name is).
                        let new_name = os(names[rnd(names.len() as u64) as usize]);
                        match m.lookup(dir, name) {
                            Ok(i) if m.live[&i].is_dir() => {
                                m.rename(dir, name, dir, new_name, false)
                            }
                            Ok(_) => {
                                let to = dirs[rnd(dirs.len() as u64) as usize];
                                m.rename(dir, name, to, new_name, false)
                            }
                            Err(_) => Ok(()),
                        }
                    }
                    6 => m.unlink(dir, name).or_else(|_| m.rmdir(dir, name)),
                    7 if !files.is_empty() => m.sync_file(files[rnd(files.len() as u64) as usize]),
                    8 => m.sync_dir(dir),
                    _ => m.power_cut_checked(),
                };
            }
            let all = tree(&m);
            let x = all[rnd(all.len() as u64) as usize];
            let held = match m.live[&x].clone() {
                Node::File { data, .. } => {
                    m.sync_file(x).unwrap();
                    Node::File { data, mode: 0 }
                }
                Node::Dir { entries, .. } => {
                    m.sync_dir(x).unwrap();
                    Node::Dir {
                        entries: entries.into_keys().map(|n| (n, 0)).collect(),
                        mode: 0,
                    }
                }
            };
            m.power_cut_checked().unwrap();
            assert!(tree(&m).contains(&x), "round {round}: inode {x} lost");
            let now = match m.live[&x].clone() {
                Node::File { data, .. } => Node::File { data, mode: 0 },
                Node::Dir { entries, .. } => Node::Dir {
                    entries: entries.into_keys().map(|n| (n, 0)).collect(),
                    mode: 0,
                },
            };
            assert_eq!(now, held, "round {round}: inode {x}");

            // Everything synced, files first: nothing is lost.
            let before = snapshot(&m);
            for i in tree(&m) {
                if !m.live[&i].is_dir() {
                    m.sync_file(i).unwrap();
                }
            }
            for i in tree(&m) {
                if m.live[&i].is_dir() {
                    m.sync_dir(i).unwrap();
                }
            }
            let cut = m.power_cut_checked();
            assert_eq!(cut, Ok(()), "round {round}");
            assert_eq!(snapshot(&m), before, "round {round}");
        }

        /// The inodes the live tree reaches, root first.
        fn tree(m: &Model) -> Vec<Ino> {
            let mut out = vec![ROOT];
            let mut seen = HashSet::from([ROOT]);
            let mut i = 0;
            while i < out.len() {
                if let Ok(e) = m.entries(out[i]) {
                    out.extend(e.into_iter().map(|(_, c)| c).filter(|c| seen.insert(*c)));
                }
                i += 1;
            }
            out
        }

        fn snapshot(m: &Model) -> Vec<(Vec<OsString>, Option<Vec<u8>>)> {
            let mut out = Vec::new();
            let mut stack = vec![(vec![], ROOT)];
            while let Some((path, i)) = stack.pop() {
                match &m.live[&i] {
                    Node::File { data, .. } => out.push((path, Some(data.clone()))),
                    Node::Dir { entries, .. } => {
                        for (n, c) in entries {
                            let mut p = path.clone();
                            p.push(n.clone());
                            stack.push((p, *c));
                        }
                        out.push((path, None));
                    }
                }
            }
            out.sort();
            out
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
