//! The directory layout under DCF's DATA_PATH:
//!
//! ```text
//! <data-dir>/metadata/                  dcf_metadata, dcf_metadata.bak
//! <data-dir>/stream_<id>/ctrl/          dcf_ctrl.0, dcf_ctrl.1 (term, vote, work mode)
//! <data-dir>/stream_<id>/log/           log_ctrl.0|1, log_<first>_<last>, log_inprogress_<first>
//! ```
//!
//! Directories are created with their parent fsynced, so a file later
//! fsynced inside them cannot disappear with its directory on power loss.

use crate::error::{IoContext, Result};
use crate::fsutil::ensure_dir;
use dcf_core::StreamId;
use std::fs;
use std::path::{Path, PathBuf};

/// The data directory of one node.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// The directories of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDirs {
    pub log: PathBuf,
    pub ctrl: PathBuf,
}

impl DataDir {
    /// Opens (creating if needed) `root` and `root/metadata`.
    pub fn create(root: impl AsRef<Path>) -> Result<DataDir> {
        let d = DataDir {
            root: root.as_ref().to_path_buf(),
        };
        ensure_dir(&d.metadata_dir())?;
        Ok(d)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.root.join("metadata")
    }

    pub fn stream_dir(&self, stream: StreamId) -> PathBuf {
        self.root.join(format!("stream_{stream}"))
    }

    /// The directories of `stream` (not created).
    pub fn stream_dirs(&self, stream: StreamId) -> StreamDirs {
        let s = self.stream_dir(stream);
        StreamDirs {
            log: s.join("log"),
            ctrl: s.join("ctrl"),
        }
    }

    /// Creates the directories of `stream` (idempotent).
    pub fn ensure_stream(&self, stream: StreamId) -> Result<StreamDirs> {
        let d = self.stream_dirs(stream);
        ensure_dir(&d.log)?;
        ensure_dir(&d.ctrl)?;
        Ok(d)
    }

    /// The streams that have a directory, sorted.
    pub fn existing_streams(&self) -> Result<Vec<StreamId>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.root).ctx(&self.root)? {
            let e = e.ctx(&self.root)?;
            let name = e.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("stream_"))
                .and_then(|n| n.parse::<StreamId>().ok())
            {
                if e.path().is_dir() {
                    v.push(id);
                }
            }
        }
        v.sort_unstable();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_directories() {
        let t = tempfile::tempdir().unwrap();
        let d = DataDir::create(t.path().join("a/b")).unwrap();
        assert!(d.metadata_dir().is_dir());
        let s = d.ensure_stream(3).unwrap();
        assert!(s.log.is_dir() && s.ctrl.is_dir());
        assert_eq!(s.log, t.path().join("a/b/stream_3/log"));
        d.ensure_stream(3).unwrap();
        d.ensure_stream(12).unwrap();
        std::fs::write(d.root().join("stream_x"), b"").unwrap();
        assert_eq!(d.existing_streams().unwrap(), vec![3, 12]);
    }
}
