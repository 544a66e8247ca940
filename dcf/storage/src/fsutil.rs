//! Small durable-filesystem helpers shared by the modules.
//!
//! Why directories get fsynced: creating, renaming or unlinking a file
//! changes the *directory*, and on Linux filesystems that change is only
//! guaranteed on disk after an fsync of the directory itself. Without it a
//! file whose contents were fsynced can still vanish after power loss.

use crate::error::{IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// fsyncs a directory so that entries created, renamed or removed in it
/// survive power loss.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx(dir)?;
    f.sync_all().ctx(dir)
}

/// Creates `dir` and any missing parents; after creating each one, fsyncs
/// its parent so the new directory entry is durable.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            ensure_dir(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Someone else (another stream's thread) created it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e).ctx(dir),
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces the whole content of `path` with `bytes` and fsyncs it; if the
/// file did not exist, also fsyncs its directory. This is *not* atomic: a
/// crash can leave a torn file. Callers use it only where another copy
/// stays valid while this one is written (alternating files, backup first).
pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .ctx(path)?;
    f.write_all(bytes).ctx(path)?;
    f.sync_all().ctx(path)?;
    if !existed {
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
    }
    Ok(())
}

/// Reads a whole file, `None` if it does not exist.
pub(crate) fn read_file_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(path),
    }
}

/// Little-endian readers over a byte slice that never panic.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}
