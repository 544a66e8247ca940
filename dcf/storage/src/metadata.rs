//! The node's metadata: the DCF configuration JSON persisted on first start.
//! On later starts the persisted copy wins over the string passed by the
//! host (DCF semantics); membership changes replace it with
//! [`Metadata::store`].
//!
//! Two files in the metadata directory, same format:
//! `dcf_metadata` (main) and `dcf_metadata.bak` (backup).
//!
//! ```text
//! offset size field
//!      0    4 magic "DCFM"
//!      4    2 format version (1)
//!      6    2 reserved, 0
//!      8    4 JSON length N
//!     12    N JSON text (UTF-8)
//!   12+N    4 CRC32C of bytes [0, 12+N)
//! ```
//!
//! Why it is crash-safe: every write goes backup first, then main, each
//! fsynced before the next starts. A crash while writing the backup leaves
//! the main copy (old content) valid; a crash while writing the main copy
//! leaves the backup (new content) valid. Load prefers the main copy and
//! repairs the other one, so the pair converges before the next write.

use crate::error::{Result, StorageError};
use crate::fsutil::{ensure_dir, read_file_opt, write_file_synced, Reader};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"DCFM";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 12;
/// Name of the main copy inside the metadata directory.
pub const MAIN_FILE: &str = "dcf_metadata";
/// Name of the backup copy inside the metadata directory.
pub const BACKUP_FILE: &str = "dcf_metadata.bak";

/// Where the configuration in effect came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataOrigin {
    /// First start: the passed JSON was persisted.
    Created,
    /// Later start: the persisted JSON is in effect; `differs_from_passed`
    /// tells whether the host passed something else (which is ignored).
    Loaded { differs_from_passed: bool },
}

/// Persisted DCF configuration (namespace for the functions).
pub struct Metadata;

enum CopyState {
    Missing,
    Bad(String),
    Good(String),
}

impl Metadata {
    /// Loads the persisted configuration, or persists `passed_json` if
    /// there is none yet. Returns the JSON in effect.
    pub fn load_or_init(
        dir: impl AsRef<Path>,
        passed_json: &str,
    ) -> Result<(String, MetadataOrigin)> {
        let dir = dir.as_ref();
        match Self::load(dir)? {
            Some(json) => {
                let differs = !same_json(&json, passed_json);
                if differs {
                    tracing::warn!(
                        dir = %dir.display(),
                        "the configuration passed at start differs from the persisted metadata; \
                         the persisted metadata is used and the passed one ignored"
                    );
                }
                Ok((
                    json,
                    MetadataOrigin::Loaded {
                        differs_from_passed: differs,
                    },
                ))
            }
            None => {
                Self::store(dir, passed_json)?;
                tracing::info!(dir = %dir.display(), "persisted the initial configuration metadata");
                Ok((passed_json.to_string(), MetadataOrigin::Created))
            }
        }
    }

    /// Loads the persisted configuration (`None` if never stored),
    /// repairing a damaged or stale copy from the other one.
    pub fn load(dir: impl AsRef<Path>) -> Result<Option<String>> {
        let dir = dir.as_ref();
        let (main_path, bak_path) = paths(dir);
        let main = read_copy(&main_path)?;
        let bak = read_copy(&bak_path)?;
        match (main, bak) {
            (CopyState::Good(m), bak) => {
                match &bak {
                    CopyState::Good(b) if *b == m => {}
                    other => {
                        if let CopyState::Bad(r) = other {
                            tracing::warn!(file = %bak_path.display(), "metadata backup invalid ({r}); rewriting it from the main copy");
                        }
                        write_file_synced(&bak_path, &encode(&m))?;
                    }
                }
                Ok(Some(m))
            }
            (main, CopyState::Good(b)) => {
                let why = match main {
                    CopyState::Bad(r) => r,
                    _ => "missing".to_string(),
                };
                tracing::warn!(
                    file = %main_path.display(),
                    "metadata main copy unusable ({why}); using the backup and repairing the main copy"
                );
                write_file_synced(&main_path, &encode(&b))?;
                Ok(Some(b))
            }
            (CopyState::Missing, CopyState::Missing) => Ok(None),
            // The backup is written before the main copy ever exists, so a
            // damaged backup without a main copy is an interrupted first
            // start: nothing was persisted yet.
            (CopyState::Missing, CopyState::Bad(r)) => {
                tracing::warn!(file = %bak_path.display(), "first metadata write was interrupted ({r}); starting fresh");
                Ok(None)
            }
            (CopyState::Bad(m), b) => Err(StorageError::BothCopiesLost {
                path: main_path,
                first: m,
                other_path: bak_path,
                second: match b {
                    CopyState::Bad(r) => r,
                    _ => "missing".to_string(),
                },
            }),
        }
    }

    /// Durably replaces the persisted configuration (backup first, then
    /// main). `json` must be valid JSON.
    pub fn store(dir: impl AsRef<Path>, json: &str) -> Result<()> {
        let dir = dir.as_ref();
        if let Err(e) = serde_json::from_str::<serde_json::Value>(json) {
            return Err(StorageError::invalid(
                dir,
                format!("configuration is not valid JSON: {e}"),
            ));
        }
        ensure_dir(dir)?;
        let (main_path, bak_path) = paths(dir);
        let bytes = encode(json);
        write_file_synced(&bak_path, &bytes)?;
        write_file_synced(&main_path, &bytes)
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(MAIN_FILE), dir.join(BACKUP_FILE))
}

/// Compares as JSON values (whitespace and key order do not matter).
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn encode(json: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + json.len() + 4);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(json.len() as u32).to_le_bytes());
    b.extend_from_slice(json.as_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn read_copy(path: &Path) -> Result<CopyState> {
    Ok(match read_file_opt(path)? {
        None => CopyState::Missing,
        Some(bytes) => match decode(&bytes) {
            Ok(s) => CopyState::Good(s),
            Err(r) => CopyState::Bad(r),
        },
    })
}

fn decode(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader::new(bytes);
    let short = || format!("too short ({} bytes)", bytes.len());
    if r.bytes(4).ok_or_else(short)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u16().ok_or_else(short)?;
    let _reserved = r.u16().ok_or_else(short)?;
    let len = r.u32().ok_or_else(short)? as usize;
    if HEADER_LEN.checked_add(len).and_then(|n| n.checked_add(4)) != Some(bytes.len()) {
        return Err(format!(
            "length field {len} does not match file size {}",
            bytes.len()
        ));
    }
    let json = r.bytes(len).ok_or_else(short)?;
    let crc = r.u32().ok_or_else(short)?;
    if crc32c::crc32c(&bytes[..HEADER_LEN + len]) != crc {
        return Err("CRC32C mismatch".into());
    }
    if version != VERSION {
        return Err(format!("unknown format version {version}"));
    }
    String::from_utf8(json.to_vec()).map_err(|_| "JSON is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const CFG: &str =
        r#"[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1711,"role":"LEADER"}]"#;
    const CFG2: &str = r#"[{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":1711,"role":"LEADER"},{"stream_id":1,"node_id":2,"ip":"127.0.0.1","port":1712,"role":"FOLLOWER"}]"#;

    #[test]
    fn created_then_persisted_copy_wins() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("metadata");
        let (j, o) = Metadata::load_or_init(&dir, CFG).unwrap();
        assert_eq!((j.as_str(), o), (CFG, MetadataOrigin::Created));
        let (j, o) = Metadata::load_or_init(&dir, CFG2).unwrap();
        assert_eq!(j, CFG);
        assert_eq!(
            o,
            MetadataOrigin::Loaded {
                differs_from_passed: true
            }
        );
        // Same JSON with different whitespace does not count as differing.
        let spaced = CFG.replace(',', ", ");
        let (_, o) = Metadata::load_or_init(&dir, &spaced).unwrap();
        assert_eq!(
            o,
            MetadataOrigin::Loaded {
                differs_from_passed: false
            }
        );
        Metadata::store(&dir, CFG2).unwrap();
        assert_eq!(Metadata::load_or_init(&dir, CFG).unwrap().0, CFG2);
    }

    #[test]
    fn invalid_json_is_refused_on_first_start() {
        let d = tempfile::tempdir().unwrap();
        let e = Metadata::load_or_init(d.path(), "[{").unwrap_err();
        assert!(matches!(e, StorageError::InvalidArgument { .. }), "{e}");
        assert_eq!(Metadata::load(d.path()).unwrap(), None);
    }

    #[test]
    fn corrupt_main_is_recovered_from_backup_and_repaired() {
        let d = tempfile::tempdir().unwrap();
        Metadata::store(d.path(), CFG).unwrap();
        let main = d.path().join(MAIN_FILE);
        let mut b = std::fs::read(&main).unwrap();
        b[20] ^= 0x40;
        std::fs::write(&main, &b).unwrap();
        let (j, o) = Metadata::load_or_init(d.path(), CFG2).unwrap();
        assert_eq!(j, CFG);
        assert_eq!(
            o,
            MetadataOrigin::Loaded {
                differs_from_passed: true
            }
        );
        // main was repaired
        assert_eq!(std::fs::read(&main).unwrap(), encode(CFG));
        // a torn main (crash while writing it) also falls back
        std::fs::write(&main, &encode(CFG)[..7]).unwrap();
        assert_eq!(Metadata::load(d.path()).unwrap().unwrap(), CFG);
        // missing main too
        std::fs::remove_file(&main).unwrap();
        assert_eq!(Metadata::load(d.path()).unwrap().unwrap(), CFG);
        assert!(main.exists());
    }

    #[test]
    fn crash_between_backup_and_main_keeps_old_and_repairs_backup() {
        let d = tempfile::tempdir().unwrap();
        Metadata::store(d.path(), CFG).unwrap();
        // Simulate: the backup got the new content, main not yet written.
        write_file_synced(&d.path().join(BACKUP_FILE), &encode(CFG2)).unwrap();
        assert_eq!(Metadata::load(d.path()).unwrap().unwrap(), CFG);
        assert_eq!(
            std::fs::read(d.path().join(BACKUP_FILE)).unwrap(),
            encode(CFG)
        );
    }

    #[test]
    fn both_corrupt_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        Metadata::store(d.path(), CFG).unwrap();
        for f in [MAIN_FILE, BACKUP_FILE] {
            let p = d.path().join(f);
            let mut b = std::fs::read(&p).unwrap();
            b[14] ^= 1;
            std::fs::write(&p, &b).unwrap();
        }
        let e = Metadata::load_or_init(d.path(), CFG).unwrap_err();
        assert!(matches!(e, StorageError::BothCopiesLost { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains(MAIN_FILE) && msg.contains(BACKUP_FILE),
            "{msg}"
        );
    }

    /// Random bytes at random places of either copy: load either returns
    /// one of the stored configurations or a clear error; never panics.
    #[test]
    fn random_corruption_never_panics() {
        let base = tempfile::tempdir().unwrap();
        Metadata::store(base.path(), CFG).unwrap();
        let originals: Vec<Vec<u8>> = [MAIN_FILE, BACKUP_FILE]
            .iter()
            .map(|f| std::fs::read(base.path().join(f)).unwrap())
            .collect();
        for seed in 0..200u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let d = tempfile::tempdir().unwrap();
            for (f, b) in [MAIN_FILE, BACKUP_FILE].iter().zip(&originals) {
                std::fs::write(d.path().join(f), b).unwrap();
            }
            for _ in 0..rng.gen_range(1..4) {
                let f = if rng.gen() { MAIN_FILE } else { BACKUP_FILE };
                let p = d.path().join(f);
                let mut b = std::fs::read(&p).unwrap();
                if b.is_empty() {
                    continue;
                }
                if rng.gen_ratio(1, 4) {
                    b.truncate(rng.gen_range(0..b.len()));
                } else {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                std::fs::write(&p, &b).unwrap();
            }
            let r = std::panic::catch_unwind(|| Metadata::load(d.path()))
                .unwrap_or_else(|_| panic!("seed {seed}: load panicked"));
            match r {
                Ok(Some(j)) => assert_eq!(j, CFG, "seed {seed}"),
                Ok(None) => panic!("seed {seed}: stored metadata vanished"),
                Err(e) => assert!(
                    matches!(e, StorageError::BothCopiesLost { .. }),
                    "seed {seed}: {e}"
                ),
            }
        }
    }
}
