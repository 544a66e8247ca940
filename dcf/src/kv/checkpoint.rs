//! Checkpoints of the key-value state machine: every key, the applied
//! index and term, and the membership in force at that index, in one
//! checksummed file.
//!
//! DCF leaves checkpoints to its host; `dcf-node` is that host. The log
//! may only be truncated below a durable checkpoint, and a restarted node
//! loads its newest valid checkpoint and replays the log after it.
//!
//! # Files
//!
//! `<data-dir>/kv/checkpoint_<index>_<term>.ckpt`, at most [`KEEP`] of
//! them. A checkpoint is written to `<name>.tmp`, fsynced, renamed into
//! place and the directory fsynced, so a crash leaves either the complete
//! file or a `.tmp` that is ignored (and removed at the next start). A
//! file whose checksum fails (a torn or damaged disk) is skipped with a
//! warning and the previous checkpoint is used; the log is kept from the
//! older of the two checkpoints on, so the previous one is always usable.
//!
//! # Format (little-endian)
//!
//! ```text
//! "DCFK"  u16 version (2)  u16 reserved
//! u64 index  u64 term
//! u32 n + n bytes: membership JSON (StreamMembers)
//! u64 key count, then per key: u32 n + key (UTF-8), u32 n + value JSON
//! u32 n + n bytes: client sessions JSON (version 2 only)
//! u32 CRC32C of every byte before it
//! ```
//!
//! Version 1 files (before exactly-once writes) still load, with no
//! client sessions.

use super::machine::Session;
use crate::core::{Index, SnapshotMeta, StreamMembers, Term};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"DCFK";
const VERSION: u16 = 2;
/// The version before client sessions were added; still read.
const VERSION_NO_SESSIONS: u16 = 1;
/// How many checkpoints are kept (the newest and the one before it).
pub const KEEP: usize = 2;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt checkpoint: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The content of one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: SnapshotMeta,
    pub data: BTreeMap<String, Value>,
    /// Per client, its last applied tagged write (exactly-once writes).
    pub sessions: BTreeMap<u64, Session>,
}

/// Encodes a checkpoint without client sessions (with its trailing checksum).
pub fn encode(
    meta: &SnapshotMeta,
    data: &BTreeMap<String, Value>,
    out: &mut impl Write,
) -> io::Result<()> {
    encode_with_sessions(meta, data, &BTreeMap::new(), out)
}

/// Encodes a checkpoint (with its trailing checksum).
pub fn encode_with_sessions(
    meta: &SnapshotMeta,
    data: &BTreeMap<String, Value>,
    sessions: &BTreeMap<u64, Session>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut w = CrcWriter { inner: out, crc: 0 };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&meta.index.to_le_bytes())?;
    w.write_all(&meta.term.to_le_bytes())?;
    let members = serde_json::to_vec(&meta.members).map_err(io::Error::other)?;
    put_bytes(&mut w, &members)?;
    w.write_all(&(data.len() as u64).to_le_bytes())?;
    for (k, v) in data {
        put_bytes(&mut w, k.as_bytes())?;
        let v = serde_json::to_vec(v).map_err(io::Error::other)?;
        put_bytes(&mut w, &v)?;
    }
    let sessions = serde_json::to_vec(sessions).map_err(io::Error::other)?;
    put_bytes(&mut w, &sessions)?;
    let crc = w.crc;
    w.inner.write_all(&crc.to_le_bytes())
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let n = u32::try_from(b.len()).map_err(|_| io::Error::other("field over 4 GiB"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(b)
}

/// Checks and decodes a whole checkpoint file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < 4 + 2 + 2 + 8 + 8 + 4 + 8 + 4 {
        return Err(format!("{} bytes is too short", bytes.len()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let got = crc32c::crc32c(body);
    if want != got {
        return Err(format!(
            "checksum mismatch (stored {want:#010x}, computed {got:#010x})"
        ));
    }
    let mut r = body;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        if r.len() < n {
            return Err(format!("truncated {what}"));
        }
        let (a, b) = r.split_at(n);
        r = b;
        Ok(a)
    };
    if take(4, "magic")? != MAGIC {
        return Err("not a checkpoint (bad magic)".into());
    }
    let version = u16::from_le_bytes(take(2, "version")?.try_into().expect("2"));
    if version != VERSION && version != VERSION_NO_SESSIONS {
        return Err(format!("unknown checkpoint version {version}"));
    }
    take(2, "reserved")?;
    let index = u64::from_le_bytes(take(8, "index")?.try_into().expect("8"));
    let term = u64::from_le_bytes(take(8, "term")?.try_into().expect("8"));
    let n = u32::from_le_bytes(take(4, "members length")?.try_into().expect("4")) as usize;
    let members: StreamMembers =
        serde_json::from_slice(take(n, "members")?).map_err(|e| format!("members: {e}"))?;
    let count = u64::from_le_bytes(take(8, "key count")?.try_into().expect("8"));
    let mut data = BTreeMap::new();
    for _ in 0..count {
        let n = u32::from_le_bytes(take(4, "key length")?.try_into().expect("4")) as usize;
        let key = String::from_utf8(take(n, "key")?.to_vec()).map_err(|e| format!("key: {e}"))?;
        let n = u32::from_le_bytes(take(4, "value length")?.try_into().expect("4")) as usize;
        let value: Value = serde_json::from_slice(take(n, "value")?)
            .map_err(|e| format!("value of {key}: {e}"))?;
        data.insert(key, value);
    }
    let sessions = if version == VERSION_NO_SESSIONS {
        BTreeMap::new()
    } else {
        let n = u32::from_le_bytes(take(4, "sessions length")?.try_into().expect("4")) as usize;
        serde_json::from_slice(take(n, "sessions")?).map_err(|e| format!("sessions: {e}"))?
    };
    if !r.is_empty() {
        return Err(format!("{} unexpected bytes after the last key", r.len()));
    }
    Ok(Checkpoint {
        meta: SnapshotMeta {
            index,
            term,
            members,
        },
        data,
        sessions,
    })
}

/// Feeds everything written through it into a CRC32C.
struct CrcWriter<'a, W: Write> {
    inner: &'a mut W,
    crc: u32,
}

impl<W: Write> Write for CrcWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The checkpoint directory of one node.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

/// A checkpoint file found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub index: Index,
    pub term: Term,
    pub path: PathBuf,
}

impl CheckpointStore {
    /// Opens (creating) the directory and removes temporary files left by
    /// a crash during a write.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CheckpointStore, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let p = e.map_err(io_err(&dir))?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                tracing::info!(file = %p.display(), "removing an unfinished checkpoint");
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        Ok(CheckpointStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, index: Index, term: Term) -> PathBuf {
        self.dir.join(format!("checkpoint_{index:020}_{term}.ckpt"))
    }

    /// The checkpoint files, newest (highest index) first.
    pub fn list(&self) -> Result<Vec<StoredCheckpoint>, CheckpointError> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let p = e.map_err(io_err(&self.dir))?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(rest) = name
                .strip_prefix("checkpoint_")
                .and_then(|r| r.strip_suffix(".ckpt"))
            else {
                continue;
            };
            let mut it = rest.split('_');
            if let (Some(Ok(index)), Some(Ok(term)), None) = (
                it.next().map(str::parse),
                it.next().map(str::parse),
                it.next(),
            ) {
                v.push(StoredCheckpoint {
                    index,
                    term,
                    path: p.clone(),
                });
            }
        }
        v.sort_by(|a, b| b.index.cmp(&a.index).then(b.term.cmp(&a.term)));
        Ok(v)
    }

    /// The newest checkpoint that reads back intact; damaged ones are
    /// skipped with a warning naming the file and the defect.
    pub fn load_newest(&self) -> Result<Option<(Checkpoint, PathBuf)>, CheckpointError> {
        for c in self.list()? {
            let bytes = fs::read(&c.path).map_err(io_err(&c.path))?;
            match decode(&bytes) {
                Ok(ck) if ck.meta.index == c.index && ck.meta.term == c.term => {
                    return Ok(Some((ck, c.path)));
                }
                Ok(ck) => tracing::warn!(
                    file = %c.path.display(),
                    "skipping a checkpoint whose content (index {}, term {}) does not match its name",
                    ck.meta.index,
                    ck.meta.term
                ),
                Err(reason) => tracing::warn!(
                    file = %c.path.display(),
                    %reason,
                    "skipping a corrupt checkpoint; using the previous one"
                ),
            }
        }
        Ok(None)
    }

    /// Writes a checkpoint without client sessions durably.
    pub fn write(
        &self,
        meta: &SnapshotMeta,
        data: &BTreeMap<String, Value>,
    ) -> Result<PathBuf, CheckpointError> {
        self.write_with_sessions(meta, data, &BTreeMap::new())
    }

    /// Writes a checkpoint durably (temporary file, fsync, rename, fsync
    /// of the directory) and returns its path.
    pub fn write_with_sessions(
        &self,
        meta: &SnapshotMeta,
        data: &BTreeMap<String, Value>,
        sessions: &BTreeMap<u64, Session>,
    ) -> Result<PathBuf, CheckpointError> {
        let path = self.path_of(meta.index, meta.term);
        let tmp = path.with_extension("ckpt.tmp");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        encode_with_sessions(meta, data, sessions, &mut w).map_err(io_err(&tmp))?;
        let file = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.sync_dir()?;
        Ok(path)
    }

    /// Makes a received checkpoint file (already verified and fsynced)
    /// one of this store's, durably.
    pub fn adopt(&self, meta: &SnapshotMeta, received: &Path) -> Result<PathBuf, CheckpointError> {
        let path = self.path_of(meta.index, meta.term);
        fs::rename(received, &path).map_err(io_err(&path))?;
        self.sync_dir()?;
        if let Some(from) = received.parent() {
            if let Ok(d) = File::open(from) {
                let _ = d.sync_all();
            }
        }
        Ok(path)
    }

    /// Removes every checkpoint but the `keep` newest, and every
    /// checkpoint below `below` (not covered by the log any more).
    pub fn prune(&self, keep: usize, below: Index) -> Result<(), CheckpointError> {
        for (i, c) in self.list()?.into_iter().enumerate() {
            if i >= keep || c.index < below {
                fs::remove_file(&c.path).map_err(io_err(&c.path))?;
            }
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), CheckpointError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(index: Index, term: Term) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            members: StreamMembers::default(),
        }
    }

    fn data() -> BTreeMap<String, Value> {
        [("a", json!(1)), ("l", json!([1, 2])), ("s", json!("x"))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn round_trip_and_every_defect_is_detected() {
        let mut bytes = Vec::new();
        encode(&meta(7, 2), &data(), &mut bytes).unwrap();
        let ck = decode(&bytes).unwrap();
        assert_eq!(ck.meta, meta(7, 2));
        assert_eq!(ck.data, data());
        // Every truncation and every flipped bit is refused.
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&b).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn sessions_round_trip_and_version_1_files_still_load() {
        use crate::kv::machine::{ApplyResult, Session};
        let sessions: BTreeMap<u64, Session> = [(
            9,
            Session {
                seq: 3,
                result: ApplyResult::Failed("cas mismatch".into()),
                index: 7,
            },
        )]
        .into_iter()
        .collect();
        let mut bytes = Vec::new();
        encode_with_sessions(&meta(7, 2), &data(), &sessions, &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap().sessions, sessions);
        // A version 1 file: no sessions field, version 1 in the header.
        let mut v2 = Vec::new();
        encode(&meta(7, 2), &data(), &mut v2).unwrap();
        let body_end = v2.len() - 4 - (4 + 2); // CRC, then "{}" with its length
        let mut v1 = v2[..body_end].to_vec();
        v1[4..6].copy_from_slice(&1u16.to_le_bytes());
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let ck = decode(&v1).unwrap();
        assert_eq!((ck.meta, ck.data), (meta(7, 2), data()));
        assert!(ck.sessions.is_empty());
    }

    #[test]
    fn newest_valid_wins_and_a_torn_one_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(d.path()).unwrap();
        store.write(&meta(10, 1), &data()).unwrap();
        let newest = store.write(&meta(20, 2), &BTreeMap::new()).unwrap();
        let (ck, path) = store.load_newest().unwrap().unwrap();
        assert_eq!((ck.meta.index, path.clone()), (20, newest.clone()));
        // A torn newest file: the previous one is used, never a half-read one.
        let full = fs::read(&newest).unwrap();
        fs::write(&newest, &full[..full.len() / 2]).unwrap();
        let (ck, _) = store.load_newest().unwrap().unwrap();
        assert_eq!(ck.meta.index, 10);
        assert_eq!(ck.data, data());
        // A leftover temporary file is removed at open.
        fs::write(
            d.path().join("checkpoint_00000000000000000030_3.ckpt.tmp"),
            b"x",
        )
        .unwrap();
        let store = CheckpointStore::open(d.path()).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        store.prune(1, 0).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
