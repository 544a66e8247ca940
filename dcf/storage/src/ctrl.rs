//! The per-stream control file: the current term and the vote, which Raft
//! requires to be durable before any reply that depends on them, plus the
//! work mode (NORMAL / MINORITY) so a restarted node keeps it, and the
//! index of the committed configuration entry that the membership in the
//! node's metadata comes from (so a restart after the log was compacted
//! past it still knows which configuration entries are newer).
//!
//! Stored with `dualfile` (crate-private) (two alternating copies, sequence number
//! and CRC32C, like DCF's control file), so a crash during `save` leaves
//! the previous state readable, and `save` returns only after fsync.
//!
//! Payload layout (little-endian), version 2:
//!
//! ```text
//! offset size field
//!      0    2 payload version (2)
//!      2    8 term
//!     10    1 voted_for present (0/1)
//!     11    4 voted_for node id
//!     15    1 work mode (0 = NORMAL, 1 = MINORITY)
//!     16    4 vote_num of MINORITY mode (0 otherwise)
//!     20    8 config index (version 2; 0 in version 1)
//! ```
//!
//! New fields are appended at the end with a new payload version; older
//! versions decode with defaults for the missing fields.

use crate::dualfile::DualFile;
use crate::error::{Result, StorageError};
use crate::fsutil::{ensure_dir, Reader};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"DCFC";
const FILE_NAME: &str = "dcf_ctrl";
const PAYLOAD_VERSION: u16 = 2;

/// The Raft hard state of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<u32>,
}

/// The work mode as persisted (DCF's `set_work_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoredWorkMode {
    #[default]
    Normal,
    /// Minority mode with its quorum size.
    Minority { vote_num: u32 },
}

/// Everything the control file holds (a small versioned struct; add fields
/// here and in `encode`/`decode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlState {
    pub hard: HardState,
    pub work_mode: StoredWorkMode,
    /// Index of the committed configuration entry the metadata's
    /// membership of this stream comes from (0: the first-start config).
    pub config_index: u64,
}

/// The crash-safe control file of one stream.
#[derive(Debug)]
pub struct ControlFile {
    dir: PathBuf,
    file: DualFile,
    state: ControlState,
}

impl ControlFile {
    /// Opens (creating if needed) the control file in `dir`. A fresh file
    /// holds term 0, no vote, NORMAL mode, and is durable before this
    /// returns.
    pub fn open(dir: impl AsRef<Path>) -> Result<ControlFile> {
        let dir = dir.as_ref().to_path_buf();
        ensure_dir(&dir)?;
        let (mut file, payload) = DualFile::open(&dir, FILE_NAME, MAGIC)?;
        let state = match payload {
            Some(p) => decode(&p).map_err(|reason| {
                StorageError::corrupt(
                    &dir.join(FILE_NAME),
                    0,
                    format!("control payload: {reason}"),
                )
            })?,
            None => {
                let s = ControlState::default();
                file.init(&encode(&s))?;
                s
            }
        };
        Ok(ControlFile { dir, file, state })
    }

    /// The hard state as last saved.
    pub fn load(&self) -> HardState {
        self.state.hard
    }

    /// The whole persisted state.
    pub fn state(&self) -> ControlState {
        self.state
    }

    /// Durably saves term and vote (the work mode is kept). Returns only
    /// after fsync, so a vote can be sent after this returns.
    pub fn save(&mut self, hs: &HardState) -> Result<()> {
        let next = ControlState {
            hard: *hs,
            ..self.state
        };
        self.save_state(&next)
    }

    /// Durably saves the work mode (term and vote are kept).
    pub fn save_work_mode(&mut self, mode: StoredWorkMode) -> Result<()> {
        let next = ControlState {
            work_mode: mode,
            ..self.state
        };
        self.save_state(&next)
    }

    /// Durably saves the index of the committed configuration entry whose
    /// membership the metadata now holds (write the metadata first).
    pub fn save_config_index(&mut self, index: u64) -> Result<()> {
        let next = ControlState {
            config_index: index,
            ..self.state
        };
        self.save_state(&next)
    }

    /// Durably saves the whole state.
    pub fn save_state(&mut self, s: &ControlState) -> Result<()> {
        self.file.write(&encode(s))?;
        self.state = *s;
        Ok(())
    }

    /// The directory holding the two copies.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn encode(s: &ControlState) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&PAYLOAD_VERSION.to_le_bytes());
    b.extend_from_slice(&s.hard.term.to_le_bytes());
    b.push(s.hard.voted_for.is_some() as u8);
    b.extend_from_slice(&s.hard.voted_for.unwrap_or(0).to_le_bytes());
    let (mode, vote_num) = match s.work_mode {
        StoredWorkMode::Normal => (0u8, 0u32),
        StoredWorkMode::Minority { vote_num } => (1, vote_num),
    };
    b.push(mode);
    b.extend_from_slice(&vote_num.to_le_bytes());
    b.extend_from_slice(&s.config_index.to_le_bytes());
    b
}

fn decode(p: &[u8]) -> std::result::Result<ControlState, String> {
    let mut r = Reader::new(p);
    let short = || "payload too short".to_string();
    let version = r.u16().ok_or_else(short)?;
    if version == 0 || version > PAYLOAD_VERSION {
        return Err(format!(
            "payload version {version} (this build reads up to {PAYLOAD_VERSION})"
        ));
    }
    let term = r.u64().ok_or_else(short)?;
    let voted_flag = r.u8().ok_or_else(short)?;
    let voted = r.u32().ok_or_else(short)?;
    let voted_for = match voted_flag {
        0 => None,
        1 => Some(voted),
        f => return Err(format!("bad voted_for flag {f}")),
    };
    let mode = r.u8().ok_or_else(short)?;
    let vote_num = r.u32().ok_or_else(short)?;
    let work_mode = match mode {
        0 => StoredWorkMode::Normal,
        1 => StoredWorkMode::Minority { vote_num },
        m => return Err(format!("bad work mode {m}")),
    };
    let config_index = if version >= 2 {
        r.u64().ok_or_else(short)?
    } else {
        0
    };
    Ok(ControlState {
        hard: HardState { term, voted_for },
        work_mode,
        config_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_is_zero_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ctrl");
        let mut c = ControlFile::open(&dir).unwrap();
        assert_eq!(c.load(), HardState::default());
        c.save(&HardState {
            term: 7,
            voted_for: Some(3),
        })
        .unwrap();
        c.save_work_mode(StoredWorkMode::Minority { vote_num: 2 })
            .unwrap();
        c.save_config_index(42).unwrap();
        let c = ControlFile::open(&dir).unwrap();
        assert_eq!(
            c.load(),
            HardState {
                term: 7,
                voted_for: Some(3)
            }
        );
        assert_eq!(
            c.state().work_mode,
            StoredWorkMode::Minority { vote_num: 2 }
        );
        assert_eq!(c.state().config_index, 42);
    }

    /// A control file written by the previous format (version 1, without
    /// the configuration index) still loads, with index 0.
    #[test]
    fn version_1_payload_loads_with_config_index_0() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.push(1);
        v1.extend_from_slice(&2u32.to_le_bytes());
        v1.push(0);
        v1.extend_from_slice(&0u32.to_le_bytes());
        let s = decode(&v1).unwrap();
        assert_eq!(s.hard.term, 9);
        assert_eq!(s.hard.voted_for, Some(2));
        assert_eq!(s.config_index, 0);
        assert!(decode(&encode(&s)).is_ok_and(|back| back == s));
    }

    /// A crash while writing the newer copy (simulated by cutting it at
    /// every length, and by flipping every bit) falls back to the state
    /// saved before it.
    #[test]
    fn torn_or_corrupt_newer_copy_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ControlFile::open(d.path()).unwrap();
        c.save(&HardState {
            term: 4,
            voted_for: Some(1),
        })
        .unwrap();
        c.save(&HardState {
            term: 5,
            voted_for: None,
        })
        .unwrap();
        let newer = c.file.current_path().unwrap().to_path_buf();
        let full = std::fs::read(&newer).unwrap();
        let older = HardState {
            term: 4,
            voted_for: Some(1),
        };
        for cut in 0..full.len() {
            std::fs::write(&newer, &full[..cut]).unwrap();
            assert_eq!(
                ControlFile::open(d.path()).unwrap().load(),
                older,
                "cut {cut}"
            );
        }
        for bit in 0..full.len() * 8 {
            let mut b = full.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&newer, &b).unwrap();
            assert_eq!(
                ControlFile::open(d.path()).unwrap().load(),
                older,
                "bit {bit}"
            );
        }
        std::fs::write(&newer, &full).unwrap();
        assert_eq!(
            ControlFile::open(d.path()).unwrap().load(),
            HardState {
                term: 5,
                voted_for: None
            }
        );
    }

    #[test]
    fn unknown_payload_version_is_an_error() {
        assert!(decode(&[9, 0]).is_err());
        assert!(decode(&[]).is_err());
        let mut p = encode(&ControlState::default());
        p[10] = 7; // voted flag
        assert!(decode(&p).is_err());
    }
}
