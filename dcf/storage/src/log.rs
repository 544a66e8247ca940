//! The segmented, CRC-checked log of one stream ([`StreamLog`]).
//!
//! # Files in the log directory
//!
//! ```text
//! log_ctrl.0, log_ctrl.1      log control: first index and the term before it
//! log_<first>_<last>          sealed segments, entries first..=last
//! log_inprogress_<first>      the one open segment, appended to
//! ```
//!
//! Entry format: see [`crate::segment`] (40-byte header: term u64, index
//! u64, key u64, type u8, reserved 3 bytes, size u32, data CRC32C u32,
//! header CRC32C u32; then the data). The log control record (stored
//! crash-safely in two alternating copies, see `dualfile` (crate-private)) is:
//! payload version u16 (1), first index u64, term of `first - 1` u64.
//!
//! # Crash-safety reasoning
//!
//! * **Appends** go to the open segment through an in-memory buffer with no
//!   fsync; [`StreamLog::sync`] writes the buffer and fdatasyncs the file
//!   (and the directory if a segment was created since), which makes every
//!   appended entry durable at once (group commit). A crash before `sync`
//!   returns can leave any prefix of the unsynced bytes, possibly torn or
//!   with garbage (zeros) after it; CRCs detect that and recovery cuts the
//!   open segment at the first bad entry. Synced entries are never torn.
//! * **Roll-over**: the full open segment is written and fsynced *before*
//!   it is renamed to `log_<first>_<last>` (and the directory fsynced).
//!   Hence a sealed name always denotes complete, fsynced content, and any
//!   defect in a sealed segment is media corruption: recovery refuses to
//!   start (naming file and offset) instead of silently dropping entries
//!   that may be committed. Only the open segment's tail is ever cut.
//! * **Suffix truncation** removes whole segments newest-first and fsyncs
//!   the directory, then, if the cut falls inside a sealed segment, renames
//!   it back to `log_inprogress_<first>` (fsync dir) and only then shortens
//!   it (fsync). Every intermediate state is a prefix of the old log with
//!   at least the entries before the cut, so recovery never sees a gap.
//! * **Prefix truncation** first makes the log durable, then writes the new
//!   first index and the term before it to the log control file (fsynced),
//!   and only then unlinks segments lying wholly below it. A crash in
//!   between leaves such segments behind; recovery deletes them.
//! * After a failed write or fsync the page cache may no longer match the
//!   disk, so the log is poisoned and refuses all further calls; reopening
//!   re-reads the truth from disk.

use crate::dualfile::DualFile;
use crate::error::{IoContext, Result, StorageError};
use crate::fsutil::{ensure_dir, fsync_dir, Reader};
use crate::segment::{self, SegName};
use dcf_core::Entry;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Default segment size: DCF's DATA_FILE_SIZE default, 500 MB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 500 * 1024 * 1024;
/// Default size of the append buffer written to the file in one call.
pub const DEFAULT_WRITE_BUFFER: usize = 1 << 20;
/// Indexes above this are refused (keeps all index arithmetic overflow-free).
const MAX_INDEX: u64 = 1 << 62;
const LOG_CTRL_NAME: &str = "log_ctrl";
const LOG_CTRL_MAGIC: [u8; 4] = *b"DCFL";
const LOG_CTRL_VERSION: u16 = 1;

/// Options of a [`StreamLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLogOptions {
    /// A new segment is started once the open one reaches this many bytes
    /// (DATA_FILE_SIZE). A segment holds at least one entry, so it may
    /// exceed this by one entry.
    pub segment_size: u64,
    /// Appended bytes are buffered in memory up to this size before being
    /// written to the file (they are not durable before `sync` anyway).
    pub write_buffer: usize,
    /// Check every entry's data CRC32C when reading. Only a planted test
    /// defect turns this off (`no-checksum`: a torn or corrupt tail is then
    /// accepted as data).
    pub verify_data_checksums: bool,
}

impl Default for StreamLogOptions {
    fn default() -> Self {
        StreamLogOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            write_buffer: DEFAULT_WRITE_BUFFER,
            verify_data_checksums: true,
        }
    }
}

/// What recovery at [`StreamLog::open`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from the tail of the open segment.
    pub truncated_bytes: u64,
    /// Entries recognisable by an intact header in the cut bytes (a torn
    /// or corrupt last entry counts if its header was intact).
    pub dropped_entries: u64,
    /// The segment that was cut, the offset of the cut and why.
    pub truncated_file: Option<PathBuf>,
    pub truncated_at: Option<u64>,
    pub reason: Option<String>,
    /// Segment files deleted because they lie wholly below the first index
    /// (left over by an interrupted prefix truncation).
    pub removed_files: Vec<PathBuf>,
    pub first_index: u64,
    pub last_index: u64,
}

impl RecoveryReport {
    /// Nothing was cut.
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0
    }
}

#[derive(Debug)]
struct Segment {
    first: u64,
    /// Index of the last entry; `first - 1` when empty.
    last: u64,
    path: PathBuf,
    file: File,
    sealed: bool,
    /// Bytes written to the file (the open segment may have more pending).
    size: u64,
}

impl Segment {
    fn has_entries(&self) -> bool {
        self.last >= self.first
    }
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    term: u64,
    offset: u64,
}

/// The log of one stream. Not thread-safe by itself; the engine owns it
/// from its storage thread.
#[derive(Debug)]
pub struct StreamLog {
    dir: PathBuf,
    opts: StreamLogOptions,
    /// Sorted and contiguous; never empty; the last one is the open one.
    segments: Vec<Segment>,
    /// `locs[i]` describes entry `base + i`. Only entries from the first
    /// index on are described, so memory follows the kept log, not the
    /// segment files (a truncation inside a segment keeps the file).
    locs: Vec<Loc>,
    /// The index `locs[0]` describes: `first_index` (or the next index
    /// when the log is empty); segments may start below it when a prefix
    /// truncation fell inside one.
    base: u64,
    first_index: u64,
    /// Term of `first_index - 1`.
    prev_term: u64,
    /// Encoded entries of the open segment not yet written to its file.
    pending: Vec<u8>,
    durable: u64,
    /// A segment file was created and the directory not fsynced since.
    dir_dirty: bool,
    ctrl: DualFile,
    poisoned: bool,
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx(path)
}

fn create_open_segment(dir: &Path, first: u64) -> Result<Segment> {
    let path = dir.join(SegName::Open { first }.file_name());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx(&path)?;
    Ok(Segment {
        first,
        last: first - 1,
        path,
        file,
        sealed: false,
        size: 0,
    })
}

fn encode_log_ctrl(first: u64, prev_term: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(18);
    b.extend_from_slice(&LOG_CTRL_VERSION.to_le_bytes());
    b.extend_from_slice(&first.to_le_bytes());
    b.extend_from_slice(&prev_term.to_le_bytes());
    b
}

fn decode_log_ctrl(p: &[u8]) -> std::result::Result<(u64, u64), String> {
    let mut r = Reader::new(p);
    let short = || "log control payload too short".to_string();
    let v = r.u16().ok_or_else(short)?;
    if v == 0 || v > LOG_CTRL_VERSION {
        return Err(format!("unknown log control version {v}"));
    }
    let first = r.u64().ok_or_else(short)?;
    let prev_term = r.u64().ok_or_else(short)?;
    if first == 0 || first > MAX_INDEX {
        return Err(format!("invalid first index {first}"));
    }
    Ok((first, prev_term))
}

fn list_segments(dir: &Path) -> Result<Vec<(SegName, PathBuf)>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).ctx(dir)? {
        let e = e.ctx(dir)?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        match SegName::parse(name) {
            Some(n) => v.push((n, e.path())),
            None if name.starts_with("log_") && !name.starts_with(LOG_CTRL_NAME) => {
                tracing::warn!(file = %e.path().display(), "ignoring unknown file in the log directory");
            }
            None => {}
        }
    }
    v.sort_by_key(|(n, _)| n.first());
    Ok(v)
}

/// Opens the log control file: the first index and the term before it (a
/// new log starts at 1). A missing control file with segments present is
/// an error: the first index would be unknown.
fn open_log_ctrl(dir: &Path, files: &[(SegName, PathBuf)]) -> Result<(DualFile, u64, u64)> {
    let (mut ctrl, payload) = DualFile::open(dir, LOG_CTRL_NAME, LOG_CTRL_MAGIC)?;
    let (first_index, prev_term) = match payload {
        Some(p) => decode_log_ctrl(&p)
            .map_err(|r| StorageError::corrupt(&dir.join(LOG_CTRL_NAME), 0, r))?,
        None => {
            if let Some((_, p)) = files.first() {
                return Err(StorageError::inconsistent(
                    dir,
                    format!(
                        "segment {} exists but the log control file is missing",
                        p.display()
                    ),
                ));
            }
            ctrl.init(&encode_log_ctrl(1, 0))?;
            (1, 0)
        }
    };
    Ok((ctrl, first_index, prev_term))
}

/// Validates the segment names and deletes sealed segments wholly below
/// the first index (leftovers of an interrupted prefix truncation: the
/// control file already moved past them); the directory is fsynced later.
fn drop_sealed_below(
    files: Vec<(SegName, PathBuf)>,
    first_index: u64,
    report: &mut RecoveryReport,
) -> Result<Vec<(SegName, PathBuf)>> {
    let mut kept = Vec::with_capacity(files.len());
    for (name, path) in files {
        let (first, last) = match name {
            SegName::Sealed { first, last } => (first, last),
            SegName::Open { first } => (first, first),
        };
        if first == 0 || last < first || last > MAX_INDEX {
            return Err(StorageError::inconsistent(
                &path,
                "segment name holds an impossible index range",
            ));
        }
        if matches!(name, SegName::Sealed { .. }) && last < first_index {
            fs::remove_file(&path).ctx(&path)?;
            report.removed_files.push(path);
        } else {
            kept.push((name, path));
        }
    }
    for w in kept.windows(2) {
        if w[0].0.first() == w[1].0.first() {
            return Err(StorageError::inconsistent(
                &w[1].1,
                format!("two segments start at index {}", w[1].0.first()),
            ));
        }
    }
    Ok(kept)
}

/// Scans and verifies every segment, in order: they must be contiguous, a
/// sealed one must be intact and hold what its name says, and only the
/// open (last) one may end in a torn or corrupt tail, which is cut and
/// fsynced here. Returns the segments and the location of every entry.
fn scan_segments(
    files: Vec<(SegName, PathBuf)>,
    verify_data: bool,
    report: &mut RecoveryReport,
) -> Result<(Vec<Segment>, Vec<Loc>)> {
    let mut segments: Vec<Segment> = Vec::with_capacity(files.len() + 1);
    let mut locs: Vec<Loc> = Vec::new();
    let nfiles = files.len();
    // (last index, last term) of the segments scanned so far.
    let mut prev: Option<(u64, u64)> = None;
    for (i, (name, path)) in files.into_iter().enumerate() {
        let first = name.first();
        if let Some((plast, _)) = prev {
            if first != plast + 1 {
                return Err(StorageError::inconsistent(
                    &path,
                    format!(
                        "segment starts at index {first} but the previous one ends at {plast} \
                         (missing or overlapping segment)"
                    ),
                ));
            }
        }
        let s = segment::scan(&path, first, prev.map_or(0, |p| p.1), verify_data)?;
        let n = s.entries.len() as u64;
        let mut size = s.valid_len;
        match name {
            SegName::Sealed { last, .. } => {
                if let Some((off, reason)) = s.failure {
                    return Err(StorageError::corrupt(
                        &path,
                        off,
                        format!(
                            "{reason} in a sealed segment (sealed segments are fsynced before \
                             they are named, so this is not a torn write; refusing to drop \
                             possibly committed entries)"
                        ),
                    ));
                }
                if first + n - 1 != last {
                    return Err(StorageError::corrupt(
                        &path,
                        s.file_len,
                        format!(
                            "sealed segment holds entries up to {} but its name says {last}",
                            first + n - 1
                        ),
                    ));
                }
            }
            SegName::Open { .. } => {
                if i + 1 != nfiles {
                    return Err(StorageError::inconsistent(
                        &path,
                        "an in-progress segment is followed by later segments",
                    ));
                }
                if let Some((off, reason)) = s.failure {
                    let f = open_rw(&path)?;
                    f.set_len(off).ctx(&path)?;
                    f.sync_all().ctx(&path)?;
                    size = off;
                    report.truncated_bytes = s.file_len - off;
                    report.dropped_entries = s.dropped_entries;
                    report.truncated_file = Some(path.clone());
                    report.truncated_at = Some(off);
                    report.reason = Some(reason);
                }
            }
        }
        let last_term = s.entries.last().map(|e| e.0);
        locs.extend(s.entries.iter().map(|&(term, offset)| Loc { term, offset }));
        let last = first + n - 1;
        prev = Some((last, last_term.unwrap_or(prev.map_or(0, |p| p.1))));
        segments.push(Segment {
            first,
            last,
            file: open_rw(&path)?,
            path,
            sealed: matches!(name, SegName::Sealed { .. }),
            size,
        });
    }
    Ok((segments, locs))
}

/// The scanned log reconciled with the log control file.
struct Reconciled {
    segments: Vec<Segment>,
    /// Locations of the entries from `base` (the first index) on.
    locs: Vec<Loc>,
    base: u64,
    /// The last index the data held when it all lay below the first index
    /// with a gap before it (reported, then removed).
    lost_below_first: Option<u64>,
}

/// Reconciles the segments with the first index and the term before it
/// that the log control file records: segments all below the first index
/// are removed (what an interrupted prefix truncation can leave), the
/// entry before the first index must have the recorded term, and entries
/// below the first index are forgotten. Fsyncs the directory if anything
/// was removed, here or by [`drop_sealed_below`].
fn reconcile_with_ctrl(
    dir: &Path,
    mut segments: Vec<Segment>,
    mut locs: Vec<Loc>,
    first_index: u64,
    prev_term: u64,
    report: &mut RecoveryReport,
) -> Result<Reconciled> {
    let mut removed_any = !report.removed_files.is_empty();
    let mut base = segments.first().map_or(first_index, |s| s.first);
    if base > first_index {
        return Err(StorageError::inconsistent(
            dir,
            format!(
                "the log control file says the first index is {first_index} but the oldest \
                 segment starts at {base}"
            ),
        ));
    }
    let data_last = base + locs.len() as u64 - 1;
    let mut lost_below_first = None;
    if data_last < first_index && !segments.is_empty() {
        // Nothing at or after the first index: all segments are below it.
        if data_last + 1 < first_index {
            lost_below_first = Some(data_last);
        }
        for s in segments.drain(..) {
            drop(s.file);
            fs::remove_file(&s.path).ctx(&s.path)?;
            report.removed_files.push(s.path);
        }
        locs.clear();
        base = first_index;
        removed_any = true;
    } else if first_index > base {
        let t = locs[(first_index - 1 - base) as usize].term;
        if t != prev_term {
            return Err(StorageError::inconsistent(
                dir,
                format!(
                    "entry {} has term {t} but the log control file records term {prev_term} \
                     before the first index {first_index}",
                    first_index - 1
                ),
            ));
        }
    }
    if removed_any {
        fsync_dir(dir)?;
    }
    if first_index > base {
        // Entries below the first index stay in their segment file but
        // are never read again.
        let n = ((first_index - base) as usize).min(locs.len());
        locs.drain(..n);
        base = first_index;
    }
    Ok(Reconciled {
        segments,
        locs,
        base,
        lost_below_first,
    })
}

impl StreamLog {
    /// Opens (creating if needed) the log in `dir`, verifying every entry.
    ///
    /// A torn or corrupt tail of the open segment is cut (and fsynced) and
    /// reported, with one `warn` line. A defect in a sealed segment, a gap
    /// between segments or a log control file that disagrees with the
    /// segments is an error: those cannot come from a crash, and dropping
    /// data there could lose committed entries.
    ///
    /// Phases: read the log control file, drop segments an interrupted
    /// prefix truncation left below the first index, scan and verify the
    /// segments, reconcile them with the control file, then make sure an
    /// open segment exists.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: StreamLogOptions,
    ) -> Result<(StreamLog, RecoveryReport)> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size == 0 {
            return Err(StorageError::invalid(&dir, "segment_size must be > 0"));
        }
        ensure_dir(&dir)?;
        let files = list_segments(&dir)?;
        let (ctrl, first_index, prev_term) = open_log_ctrl(&dir, &files)?;
        let mut report = RecoveryReport::default();
        let files = drop_sealed_below(files, first_index, &mut report)?;
        let (segments, locs) = scan_segments(files, opts.verify_data_checksums, &mut report)?;
        let kept = reconcile_with_ctrl(&dir, segments, locs, first_index, prev_term, &mut report)?;
        let Reconciled {
            mut segments,
            locs,
            base,
            lost_below_first,
        } = kept;
        let last_index = base + locs.len() as u64 - 1;
        match segments.last() {
            Some(s) if !s.sealed => s.file.sync_all().ctx(&s.path)?,
            _ => {
                segments.push(create_open_segment(&dir, last_index + 1)?);
                fsync_dir(&dir)?;
            }
        }

        let log = StreamLog {
            dir,
            opts,
            segments,
            locs,
            base,
            first_index,
            prev_term,
            pending: Vec::new(),
            durable: last_index,
            dir_dirty: false,
            ctrl,
            poisoned: false,
        };
        report.first_index = log.first_index;
        report.last_index = log.last_index();
        if !report.is_clean() || lost_below_first.is_some() {
            tracing::warn!(
                dir = %log.dir.display(),
                "log recovery dropped {} bytes ({} entries) from {} at offset {} ({}){}; the log now holds [{}, {}]",
                report.truncated_bytes,
                report.dropped_entries,
                report.truncated_file.as_deref().map_or("-".into(), |p| p.display().to_string()),
                report.truncated_at.unwrap_or(0),
                report.reason.as_deref().unwrap_or("-"),
                lost_below_first.map_or(String::new(), |l| format!(
                    "; the data ended at index {l}, below the first index {first_index}, and was removed"
                )),
                report.first_index,
                report.last_index,
            );
        }
        Ok((log, report))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &StreamLogOptions {
        &self.opts
    }

    /// The first readable index (1 on a new log; moves up with
    /// [`StreamLog::truncate_prefix`]). Equals `last_index() + 1` when
    /// the log is empty.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The index of the last entry (`first_index() - 1` when empty).
    pub fn last_index(&self) -> u64 {
        self.base + self.locs.len() as u64 - 1
    }

    /// The term of the last entry, or of `first_index() - 1` when empty.
    pub fn last_term(&self) -> u64 {
        if self.last_index() >= self.first_index {
            self.locs.last().map_or(self.prev_term, |l| l.term)
        } else {
            self.prev_term
        }
    }

    /// The term of `index`, for `first_index() - 1 ..= last_index()`
    /// (index 0 has term 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index.checked_add(1) == Some(self.first_index) {
            Some(self.prev_term)
        } else if index >= self.first_index && index <= self.last_index() {
            Some(self.locs[(index - self.base) as usize].term)
        } else {
            None
        }
    }

    /// How many entries the log keeps an index of in memory: the kept log
    /// only, whatever the segment files still hold below the first index.
    pub fn indexed_entries(&self) -> usize {
        self.locs.len()
    }

    /// The highest index known to be on disk (fsynced).
    pub fn durable_index(&self) -> u64 {
        self.durable
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn poison_on_err<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn open_seg(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an open segment")
    }

    fn open_total(&self) -> u64 {
        self.open_seg().size + self.pending.len() as u64
    }

    /// Appends entries that continue the log (`entries[0].index ==
    /// last_index() + 1`, consecutive, terms not decreasing). Buffered and
    /// not fsynced: call [`StreamLog::sync`] to make them durable. An
    /// invalid request changes nothing.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check_usable()?;
        let mut term = self.last_term();
        for (next, e) in (self.last_index() + 1..).zip(entries) {
            if e.index != next {
                return Err(StorageError::invalid(
                    &self.dir,
                    format!("append of index {} but the next index is {next}", e.index),
                ));
            }
            if e.term < term {
                return Err(StorageError::invalid(
                    &self.dir,
                    format!(
                        "append of index {} with term {} after term {term}",
                        e.index, e.term
                    ),
                ));
            }
            if u32::try_from(e.data.len()).is_err() || e.index > MAX_INDEX {
                return Err(StorageError::invalid(
                    &self.dir,
                    format!("entry {} is too large or its index too high", e.index),
                ));
            }
            term = e.term;
        }
        let r = self.append_inner(entries);
        self.poison_on_err(r)
    }

    fn append_inner(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            if self.open_seg().has_entries() && self.open_total() >= self.opts.segment_size {
                self.roll()?;
            }
            let offset = self.open_total();
            segment::encode_entry(e, &mut self.pending);
            self.locs.push(Loc {
                term: e.term,
                offset,
            });
            self.segments.last_mut().expect("open segment").last = e.index;
            if self.pending.len() >= self.opts.write_buffer {
                self.flush_pending()?;
            }
        }
        Ok(())
    }

    /// Writes the buffered bytes to the open segment (no fsync).
    fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last_mut().expect("open segment");
        seg.file
            .write_all_at(&self.pending, seg.size)
            .ctx(&seg.path)?;
        seg.size += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Seals the open segment and starts a new one. The content is fsynced
    /// before the rename so that a sealed name always means complete data.
    fn roll(&mut self) -> Result<()> {
        self.flush_pending()?;
        let seg = self.segments.last_mut().expect("open segment");
        seg.file.sync_data().ctx(&seg.path)?;
        let sealed = self.dir.join(
            SegName::Sealed {
                first: seg.first,
                last: seg.last,
            }
            .file_name(),
        );
        fs::rename(&seg.path, &sealed).ctx(&seg.path)?;
        seg.path = sealed;
        seg.sealed = true;
        let next = seg.last + 1;
        fsync_dir(&self.dir)?;
        self.durable = next - 1;
        tracing::debug!(dir = %self.dir.display(), "sealed segment up to index {}", next - 1);
        self.segments.push(create_open_segment(&self.dir, next)?);
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes everything appended so far durable (write + fdatasync, and a
    /// directory fsync if a segment was created since the last one).
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        let r = self.sync_inner();
        self.poison_on_err(r)
    }

    fn sync_inner(&mut self) -> Result<()> {
        self.flush_pending()?;
        let seg = self.open_seg();
        seg.file.sync_data().ctx(&seg.path)?;
        if self.dir_dirty {
            fsync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.durable = self.last_index();
        Ok(())
    }

    fn seg_of(&self, index: u64) -> usize {
        self.segments
            .partition_point(|s| s.first <= index)
            .saturating_sub(1)
    }

    fn loc(&self, index: u64) -> Loc {
        self.locs[(index - self.base) as usize]
    }

    /// End offset of entry `index`, which lives in segment `si`.
    fn entry_end(&self, index: u64, si: usize) -> u64 {
        let s = &self.segments[si];
        if index < s.last {
            self.loc(index + 1).offset
        } else if si + 1 == self.segments.len() {
            s.size + self.pending.len() as u64
        } else {
            s.size
        }
    }

    /// Reads `[start, start + len)` of segment `si`, the part past the
    /// file's written size coming from the pending buffer.
    fn read_bytes(&self, si: usize, start: u64, len: u64) -> Result<Vec<u8>> {
        let s = &self.segments[si];
        let end = start + len;
        let mut buf = vec![0u8; len as usize];
        let file_end = end.min(s.size);
        if start < file_end {
            s.file
                .read_exact_at(&mut buf[..(file_end - start) as usize], start)
                .ctx(&s.path)?;
        }
        if end > s.size {
            let from = start.max(s.size);
            let src = self
                .pending
                .get((from - s.size) as usize..(end - s.size) as usize)
                .ok_or_else(|| {
                    StorageError::inconsistent(&s.path, "read beyond the appended data")
                })?;
            buf[(from - start) as usize..].copy_from_slice(src);
        }
        Ok(buf)
    }

    /// Reads entries `from..=to` from disk (CRC-checked again), stopping
    /// before the encoded size (header + data) would exceed `max_bytes`;
    /// at least one entry is returned when `from <= to`.
    pub fn entries(&self, from: u64, to: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        self.check_usable()?;
        if from > to {
            return Ok(Vec::new());
        }
        let (first, last) = (self.first_index, self.last_index());
        for index in [from, to] {
            if index < first || index > last {
                return Err(StorageError::IndexOutOfRange {
                    path: self.dir.clone(),
                    index,
                    first,
                    last,
                });
            }
        }
        let mut out = Vec::new();
        let mut total = 0u64;
        let mut i = from;
        while i <= to {
            let si = self.seg_of(i);
            let seg_last = self.segments[si].last.min(to);
            let start = self.loc(i).offset;
            let mut end = start;
            let mut j = i;
            let mut full = false;
            while j <= seg_last {
                let e_end = self.entry_end(j, si);
                let sz = e_end - self.loc(j).offset;
                if total > 0 && total + sz > max_bytes {
                    full = true;
                    break;
                }
                total += sz;
                end = e_end;
                j += 1;
            }
            let buf = self.read_bytes(si, start, end - start)?;
            let path = &self.segments[si].path;
            let mut p = 0usize;
            for k in i..j {
                let at = start + p as u64;
                let (e, n) = segment::decode_entry(&buf[p..], self.opts.verify_data_checksums)
                    .map_err(|r| StorageError::corrupt(path, at, r))?;
                if e.index != k || e.term != self.loc(k).term {
                    return Err(StorageError::corrupt(
                        path,
                        at,
                        format!(
                            "found entry {} (term {}) where {k} was expected",
                            e.index, e.term
                        ),
                    ));
                }
                p += n;
                out.push(e);
            }
            if full {
                break;
            }
            i = j;
        }
        Ok(out)
    }

    /// Reads one entry.
    pub fn entry(&self, index: u64) -> Result<Entry> {
        let mut v = self.entries(index, index, 0)?;
        v.pop()
            .ok_or_else(|| StorageError::inconsistent(&self.dir, "no entry read"))
    }

    /// Removes the entries with index >= `from` (a conflict with a new
    /// leader), durably: when this returns, a crash cannot bring them back.
    /// `from` may not be below `first_index()`; above `last_index()` it is
    /// a no-op.
    pub fn truncate_suffix(&mut self, from: u64) -> Result<()> {
        self.check_usable()?;
        if from > self.last_index() {
            return Ok(());
        }
        if from < self.first_index {
            return Err(StorageError::invalid(
                &self.dir,
                format!(
                    "cannot truncate from {from}: entries below the first index {} are gone",
                    self.first_index
                ),
            ));
        }
        let r = self.truncate_suffix_inner(from);
        self.poison_on_err(r)
    }

    fn truncate_suffix_inner(&mut self, from: u64) -> Result<()> {
        let cut_offset = self.loc(from).offset;
        self.flush_pending()?;
        // 1. Whole segments at or after `from`, newest first, so that the
        //    files left at any instant are a prefix of the log.
        let mut removed = false;
        while self.segments.last().is_some_and(|s| s.first >= from) {
            let s = self.segments.pop().expect("checked");
            drop(s.file);
            fs::remove_file(&s.path).ctx(&s.path)?;
            removed = true;
        }
        if removed {
            fsync_dir(&self.dir)?;
        }
        self.locs.truncate((from - self.base) as usize);
        let dir = self.dir.clone();
        match self.segments.last_mut() {
            Some(s) if s.last >= from => {
                // 2. The cut is inside this segment: reopen it as the open
                //    segment (rename is atomic), then shorten it.
                if s.sealed {
                    let open = dir.join(SegName::Open { first: s.first }.file_name());
                    fs::rename(&s.path, &open).ctx(&s.path)?;
                    s.path = open;
                    s.sealed = false;
                    fsync_dir(&dir)?;
                }
                s.file.set_len(cut_offset).ctx(&s.path)?;
                s.file.sync_all().ctx(&s.path)?;
                s.size = cut_offset;
                s.last = from - 1;
            }
            Some(_) => {
                // The previous (sealed, durable) segment ends at from - 1.
                self.segments.push(create_open_segment(&dir, from)?);
                fsync_dir(&dir)?;
            }
            None => {
                self.base = from;
                self.segments.push(create_open_segment(&dir, from)?);
                fsync_dir(&dir)?;
            }
        }
        if self.dir_dirty {
            fsync_dir(&dir)?;
        }
        self.dir_dirty = false;
        self.durable = self.last_index();
        Ok(())
    }

    /// DCF's `truncate`: entries below `first_kept` become unreadable and
    /// whole segments below it are deleted. Durable when it returns.
    /// `first_kept` may be at most `last_index() + 1`; at or below
    /// `first_index()` it is a no-op.
    pub fn truncate_prefix(&mut self, first_kept: u64) -> Result<()> {
        self.check_usable()?;
        if first_kept <= self.first_index {
            return Ok(());
        }
        if first_kept > self.last_index() + 1 {
            return Err(StorageError::invalid(
                &self.dir,
                format!(
                    "cannot keep from {first_kept}: the log ends at {}",
                    self.last_index()
                ),
            ));
        }
        let r = self.truncate_prefix_inner(first_kept);
        self.poison_on_err(r)
    }

    fn truncate_prefix_inner(&mut self, first_kept: u64) -> Result<()> {
        // The boundary entry must be durable before the control file points
        // past it, or a crash could leave a first index beyond the data.
        self.sync_inner()?;
        let prev_term = self.loc(first_kept - 1).term;
        self.ctrl.write(&encode_log_ctrl(first_kept, prev_term))?;
        self.first_index = first_kept;
        self.prev_term = prev_term;
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[0].last < first_kept {
            let s = self.segments.remove(0);
            drop(s.file);
            fs::remove_file(&s.path).ctx(&s.path)?;
            removed = true;
        }
        let open = self.open_seg();
        if open.has_entries() && open.last < first_kept {
            // Everything is below first_kept: replace the open segment by
            // an empty one starting at first_kept. Unlink is made durable
            // before the new file exists, so there are never two open ones.
            let s = self.segments.pop().expect("open segment");
            drop(s.file);
            fs::remove_file(&s.path).ctx(&s.path)?;
            fsync_dir(&self.dir)?;
            self.locs.clear();
            self.base = first_kept;
            self.segments
                .push(create_open_segment(&self.dir, first_kept)?);
            removed = true;
        }
        if first_kept > self.base {
            let n = ((first_kept - self.base) as usize).min(self.locs.len());
            self.locs.drain(..n);
            self.base = first_kept;
        }
        if removed {
            fsync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

impl StreamLog {
    /// Replaces the whole log by an empty one that continues after
    /// (`last`, `last_term`), durably: what a node does after installing a
    /// checkpoint up to `last` that its log does not reach or contradicts.
    ///
    /// Segments go first, newest first, so a crash leaves a prefix of the
    /// old log (which the engine reconciles with the checkpoint at the
    /// next start); only then does the control file move the first index,
    /// and the new open segment is created last.
    pub fn reset(&mut self, last: u64, last_term: u64) -> Result<()> {
        self.check_usable()?;
        if last == 0 || last >= MAX_INDEX {
            return Err(StorageError::invalid(
                &self.dir,
                format!("cannot reset the log to continue after index {last}"),
            ));
        }
        let r = self.reset_inner(last, last_term);
        self.poison_on_err(r)
    }

    fn reset_inner(&mut self, last: u64, last_term: u64) -> Result<()> {
        self.pending.clear();
        while let Some(s) = self.segments.pop() {
            drop(s.file);
            fs::remove_file(&s.path).ctx(&s.path)?;
        }
        fsync_dir(&self.dir)?;
        self.ctrl.write(&encode_log_ctrl(last + 1, last_term))?;
        self.first_index = last + 1;
        self.prev_term = last_term;
        self.base = last + 1;
        self.locs.clear();
        self.segments
            .push(create_open_segment(&self.dir, last + 1)?);
        fsync_dir(&self.dir)?;
        self.dir_dirty = false;
        self.durable = last;
        Ok(())
    }
}

impl Drop for StreamLog {
    /// Hands buffered appends to the OS (not fsynced: they were never
    /// promised to be durable).
    fn drop(&mut self) {
        if !self.poisoned {
            let _ = self.flush_pending();
        }
    }
}
