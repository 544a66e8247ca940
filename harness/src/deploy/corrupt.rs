//! The `corrupt` fault on local nodes: damage one stored file of a
//! stopped node, and put it back when the node refused to start on it.
//!
//! The file is chosen among what a node keeps (log segments, key-value
//! checkpoints, control and dual files, metadata; never its own log), and
//! damaged in one of two ways: one bit flipped, or the file cut short,
//! either near its end (`tail`, as a torn write would) or anywhere
//! (`middle`, as bit rot would). The original bytes are kept in memory
//! (nothing is left on disk) until the node has answered on its client
//! port, at which point it ran on the damaged copy and the copy is never
//! restored; if the node exits instead (a refusal), `repair` writes the
//! original back and starts it again.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The original content of a damaged file, to restore after a refusal.
#[derive(Debug, Clone)]
pub struct Saved {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// What kind of stored file a path in a data directory is, if it is one
/// the fault may damage.
fn kind_of(rel: &Path) -> Option<&'static str> {
    let name = rel.file_name()?.to_str()?;
    let parent = rel.parent()?.file_name()?.to_str()?;
    if name.ends_with(".tmp") {
        return None;
    }
    match parent {
        "log" if name.starts_with("log_inprogress_") => Some("open-segment"),
        "log" if name.starts_with("log_ctrl.") => Some("dual-file"),
        "log" if name.starts_with("log_") => Some("sealed-segment"),
        "ctrl" if name.starts_with("dcf_ctrl.") => Some("control-file"),
        "metadata" if name.starts_with("dcf_metadata") => Some("metadata"),
        "kv" if name.starts_with("checkpoint_") && name.ends_with(".ckpt") => Some("checkpoint"),
        _ => None,
    }
}

/// How often each kind of file is chosen: the log most (the data a node
/// serves and replicates comes from it; a node has few segments and many
/// small files), the rest alike.
fn weight(kind: &str) -> u32 {
    match kind {
        "open-segment" | "sealed-segment" => 8,
        _ => 1,
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Damages one non-empty file of the node's data directory `data`, chosen
/// and damaged as the seed `how` decides; returns what was done (for the
/// history) and the original content.
pub fn damage(data: &Path, how: u64) -> Result<(Value, Saved), String> {
    let mut rng = StdRng::seed_from_u64(how);
    let mut files = Vec::new();
    walk(data, &mut files);
    files.sort();
    let candidates: Vec<(PathBuf, &'static str, u32)> = files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(data).ok()?.to_path_buf();
            let kind = kind_of(&rel)?;
            let len = std::fs::metadata(&p).ok()?.len();
            (len > 0).then(|| (p, kind, weight(kind)))
        })
        .collect();
    let total: u32 = candidates.iter().map(|c| c.2).sum();
    if total == 0 {
        return Err(format!("no stored file to damage in {}", data.display()));
    }
    let mut pick = rng.gen_range(0..total);
    let (path, kind) = candidates
        .iter()
        .find_map(|(p, k, w)| {
            if pick < *w {
                Some((p.clone(), *k))
            } else {
                pick -= w;
                None
            }
        })
        .expect("pick < total");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = bytes.len() as u64;
    // The tail more often: recent entries are the ones still read.
    let tail = rng.gen_bool(0.6);
    // The tail: the last 512 bytes (or the whole of a smaller file).
    let lo = if tail { len.saturating_sub(512) } else { 0 };
    let rel = path
        .strip_prefix(data)
        .unwrap_or(&path)
        .display()
        .to_string();
    let mut what = json!({
        "file": rel,
        "kind": kind,
        "region": if tail { "tail" } else { "middle" },
        "len_before": len,
    });
    let mut damaged = bytes.clone();
    if rng.gen_bool(0.7) {
        let offset = rng.gen_range(lo..len);
        let bit = rng.gen_range(0..8u8);
        let old = damaged[offset as usize];
        damaged[offset as usize] = old ^ (1 << bit);
        what["mode"] = json!("flip-bit");
        what["offset"] = json!(offset);
        what["bytes"] = json!(format!("{old:#04x} -> {:#04x}", damaged[offset as usize]));
    } else {
        let offset = rng.gen_range(lo..len);
        damaged.truncate(offset as usize);
        what["mode"] = json!("truncate");
        what["offset"] = json!(offset);
        what["bytes"] = json!(format!("{} bytes cut", len - offset));
    }
    write_synced(&path, &damaged)?;
    Ok((what, Saved { path, bytes }))
}

/// Writes `bytes` over the file at `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The node's last words on stderr (its refusal), from the log file at
/// `path`, written after byte `from`.
pub fn last_error(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).to_string();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("ERROR") || l.contains("Error") || l.contains("error"))
        .or(lines.last())
        .map(|l| l.trim().chars().take(600).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stored_files_are_candidates() {
        let k = |p: &str| kind_of(Path::new(p));
        assert_eq!(k("stream_1/log/log_inprogress_1"), Some("open-segment"));
        assert_eq!(k("stream_1/log/log_1_100"), Some("sealed-segment"));
        assert_eq!(k("stream_1/log/log_ctrl.0"), Some("dual-file"));
        assert_eq!(k("stream_1/ctrl/dcf_ctrl.1"), Some("control-file"));
        assert_eq!(k("metadata/dcf_metadata.bak"), Some("metadata"));
        assert_eq!(k("kv/checkpoint_10_2.ckpt"), Some("checkpoint"));
        assert_eq!(k("kv/checkpoint_10_2.ckpt.tmp"), None);
        assert_eq!(k("dcf-node.log"), None);
    }

    /// The same seed damages the same way; the saved copy is the original
    /// and what is recorded matches what was done to the file.
    #[test]
    fn damage_is_reproducible_and_recorded_exactly() {
        for seed in 0..40u64 {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("stream_1/log");
            std::fs::create_dir_all(&log).unwrap();
            let original: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
            let file = log.join("log_inprogress_1");
            std::fs::write(&file, &original).unwrap();
            std::fs::write(dir.path().join("dcf-node.log"), b"not this").unwrap();
            let (what, saved) = damage(dir.path(), seed).unwrap();
            assert_eq!(saved.bytes, original, "seed {seed}");
            assert_eq!(what["file"], "stream_1/log/log_inprogress_1", "seed {seed}");
            let now = std::fs::read(&file).unwrap();
            let offset = what["offset"].as_u64().unwrap() as usize;
            match what["mode"].as_str().unwrap() {
                "flip-bit" => {
                    assert_eq!(now.len(), original.len());
                    let diff: Vec<usize> =
                        (0..now.len()).filter(|&i| now[i] != original[i]).collect();
                    assert_eq!(diff, vec![offset], "seed {seed}");
                    assert_eq!((now[offset] ^ original[offset]).count_ones(), 1);
                }
                "truncate" => {
                    assert_eq!(now, original[..offset], "seed {seed}");
                }
                m => panic!("mode {m}"),
            }
            if what["region"] == "tail" {
                assert!(offset >= original.len() - 512, "seed {seed}: {what}");
            }
            std::fs::write(&file, &original).unwrap();
            let (again, _) = damage(dir.path(), seed).unwrap();
            assert_eq!(again, what, "seed {seed} is reproducible");
        }
    }
}
