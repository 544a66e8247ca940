//! Behaviour of the segmented log: round trip, roll-over, recovery from
//! torn and corrupt tails, refusal of corrupt sealed segments, suffix and
//! prefix truncation, crash states, and a seeded corruption fuzz.

use dcf_core::{Entry, EntryKind};
use dcf_storage::{encoded_len, StorageError, StreamLog, StreamLogOptions, ENTRY_HEADER_LEN};
use rand::{Rng, SeedableRng};
use std::fs;
use std::path::{Path, PathBuf};

fn ent(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        term,
        index,
        key: index * 31 + 7,
        kind: if index % 5 == 4 {
            EntryKind::Config
        } else {
            EntryKind::Data
        },
        data: (0..len).map(|i| (index as usize * 13 + i) as u8).collect(),
    }
}

fn opts(segment_size: u64) -> StreamLogOptions {
    StreamLogOptions {
        segment_size,
        write_buffer: 256,
        ..StreamLogOptions::default()
    }
}

fn open(dir: &Path, seg: u64) -> (StreamLog, dcf_storage::RecoveryReport) {
    StreamLog::open(dir, opts(seg)).unwrap()
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn all(log: &StreamLog) -> Vec<Entry> {
    if log.last_index() < log.first_index() {
        return Vec::new();
    }
    log.entries(log.first_index(), log.last_index(), u64::MAX)
        .unwrap()
}

/// A log of `n` entries of `len` bytes, term = 1 + index / 10, synced.
fn build(dir: &Path, seg: u64, n: u64, len: usize) -> Vec<Entry> {
    let (mut log, _) = open(dir, seg);
    let es: Vec<Entry> = (1..=n).map(|i| ent(i, 1 + i / 10, len)).collect();
    for chunk in es.chunks(7) {
        log.append(chunk).unwrap();
    }
    log.sync().unwrap();
    es
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("log_") && !n.starts_with("log_ctrl"))
        .collect();
    // numeric order of the first index
    v.sort_by_key(|n| {
        n.trim_start_matches("log_")
            .trim_start_matches("inprogress_")
            .split('_')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    v
}

#[test]
fn round_trip_and_reads() {
    let d = tempfile::tempdir().unwrap();
    let (mut log, rep) = open(d.path(), 1 << 20);
    assert!(rep.is_clean());
    assert_eq!(
        (log.first_index(), log.last_index(), log.last_term()),
        (1, 0, 0)
    );
    assert_eq!(log.term_at(0), Some(0));
    let es: Vec<Entry> = (1..=100)
        .map(|i| ent(i, 1 + i / 30, (i as usize * 7) % 300))
        .collect();
    log.append(&es[..60]).unwrap();
    assert_eq!(log.durable_index(), 0, "append alone is not durable");
    // Reads see appended data before it is synced (from the buffer).
    assert_eq!(all(&log), es[..60].to_vec());
    log.append(&es[60..]).unwrap();
    log.sync().unwrap();
    assert_eq!(log.durable_index(), 100);
    assert_eq!(all(&log), es);
    assert_eq!(log.term_at(45), Some(2));
    assert_eq!(log.term_at(101), None);
    assert_eq!(log.last_term(), 4);

    // max_bytes: at least one entry, then stop before exceeding.
    let one = log.entries(10, 20, 0).unwrap();
    assert_eq!(one, vec![es[9].clone()]);
    let budget = (encoded_len(&es[9]) + encoded_len(&es[10]) + encoded_len(&es[11]) - 1) as u64;
    assert_eq!(log.entries(10, 20, budget).unwrap(), es[9..11].to_vec());
    assert!(log.entries(5, 4, 100).unwrap().is_empty());
    assert!(matches!(
        log.entries(0, 3, 100),
        Err(StorageError::IndexOutOfRange { index: 0, .. })
    ));
    assert!(matches!(
        log.entries(99, 101, 100),
        Err(StorageError::IndexOutOfRange { index: 101, .. })
    ));

    // Invalid appends change nothing.
    assert!(matches!(
        log.append(&[ent(102, 9, 1)]),
        Err(StorageError::InvalidArgument { .. })
    ));
    assert!(matches!(
        log.append(&[ent(101, 3, 1)]),
        Err(StorageError::InvalidArgument { .. })
    ));
    assert_eq!(log.last_index(), 100);
    drop(log);

    let (log, rep) = open(d.path(), 1 << 20);
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!((rep.first_index, rep.last_index), (1, 100));
    assert_eq!(all(&log), es);
    assert_eq!(log.durable_index(), 100);
}

#[test]
fn segments_roll_over() {
    let d = tempfile::tempdir().unwrap();
    let len = 60;
    let per = (ENTRY_HEADER_LEN + len) as u64; // 100 bytes
    let es = build(d.path(), 450, 47, len);
    // A segment rolls once it reaches 450 bytes: 5 entries each.
    let n = names(d.path());
    assert_eq!(n.len(), 10, "{n:?}");
    assert!(n.contains(&"log_1_5".to_string()) && n.contains(&"log_41_45".to_string()));
    assert!(n.contains(&"log_inprogress_46".to_string()));
    assert_eq!(
        fs::metadata(d.path().join("log_6_10")).unwrap().len(),
        5 * per
    );
    let (log, rep) = open(d.path(), 450);
    assert!(rep.is_clean());
    assert_eq!(all(&log), es);
    // A read spanning several segments, with a budget.
    assert_eq!(log.entries(3, 30, 12 * per).unwrap(), es[2..14].to_vec());
}

/// Cutting the open segment anywhere inside its last entry (a crash during
/// an unsynced write) drops exactly that entry and reports the bytes.
#[test]
fn torn_tail_at_every_offset() {
    let base = tempfile::tempdir().unwrap();
    let len = 50;
    let es = build(base.path(), 400, 23, len);
    let open_seg = base.path().join("log_inprogress_21");
    let full = fs::read(&open_seg).unwrap();
    let entry_len = ENTRY_HEADER_LEN + len;
    assert_eq!(full.len(), 3 * entry_len);
    let start = 2 * entry_len;
    for cut in start..full.len() {
        let d = tempfile::tempdir().unwrap();
        copy_dir(base.path(), d.path());
        fs::write(d.path().join("log_inprogress_21"), &full[..cut]).unwrap();
        let (mut log, rep) = open(d.path(), 400);
        assert_eq!(log.last_index(), 22, "cut {cut}");
        assert_eq!(rep.truncated_bytes, (cut - start) as u64, "cut {cut}");
        let header_intact = cut - start >= ENTRY_HEADER_LEN;
        assert_eq!(rep.dropped_entries, header_intact as u64, "cut {cut}");
        assert_eq!(rep.is_clean(), cut == start);
        if cut > start {
            assert_eq!(rep.truncated_at, Some(start as u64));
            assert_eq!(
                rep.truncated_file.as_deref(),
                Some(d.path().join("log_inprogress_21").as_path())
            );
        }
        assert_eq!(all(&log), es[..22].to_vec());
        // The file was cut and the log continues where it ends.
        assert_eq!(
            fs::metadata(d.path().join("log_inprogress_21"))
                .unwrap()
                .len(),
            start as u64
        );
        log.append(&[ent(23, 99, 3)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, rep) = open(d.path(), 400);
        assert!(rep.is_clean());
        assert_eq!(log.entry(23).unwrap(), ent(23, 99, 3));
    }
}

#[test]
fn bit_flip_in_last_entry_data_is_truncated() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 1 << 20, 10, 80);
    let p = d.path().join("log_inprogress_1");
    let mut b = fs::read(&p).unwrap();
    let last_start = 9 * (ENTRY_HEADER_LEN + 80);
    b[last_start + ENTRY_HEADER_LEN + 33] ^= 0x04;
    // Zeros after the entry (what a filesystem may leave after a crash).
    b.extend_from_slice(&[0u8; 300]);
    fs::write(&p, &b).unwrap();
    let (log, rep) = open(d.path(), 1 << 20);
    assert_eq!(log.last_index(), 9);
    assert_eq!(rep.dropped_entries, 1);
    assert_eq!(rep.truncated_bytes, (ENTRY_HEADER_LEN + 80 + 300) as u64);
    assert!(rep.reason.as_deref().unwrap().contains("CRC32C"), "{rep:?}");
    assert_eq!(all(&log), es[..9].to_vec());
}

/// The planted `no-checksum` defect: with data checksums off, the same
/// flipped bit is accepted and read back as data (what a harness must
/// catch), instead of the tail being cut.
#[test]
fn without_data_checksums_a_corrupt_tail_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 1 << 20, 10, 80);
    let p = d.path().join("log_inprogress_1");
    let mut b = fs::read(&p).unwrap();
    let last_start = 9 * (ENTRY_HEADER_LEN + 80);
    b[last_start + ENTRY_HEADER_LEN + 33] ^= 0x04;
    fs::write(&p, &b).unwrap();
    let o = StreamLogOptions {
        verify_data_checksums: false,
        ..opts(1 << 20)
    };
    let (log, rep) = StreamLog::open(d.path(), o).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(log.last_index(), 10);
    let got = all(&log);
    assert_eq!(got[..9], es[..9]);
    assert_ne!(got[9], es[9], "the corrupt data is served");
}

/// Intact entries after a corrupt one in the open segment are counted in
/// the report (and dropped: the log must stay a prefix).
#[test]
fn entries_after_a_corrupt_one_are_counted() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 1 << 20, 10, 20);
    let p = d.path().join("log_inprogress_1");
    let mut b = fs::read(&p).unwrap();
    b[6 * (ENTRY_HEADER_LEN + 20) + ENTRY_HEADER_LEN] ^= 1; // data of entry 7
    fs::write(&p, &b).unwrap();
    let (log, rep) = open(d.path(), 1 << 20);
    assert_eq!(log.last_index(), 6);
    assert_eq!(rep.dropped_entries, 4);
    assert_eq!(rep.truncated_bytes, 4 * (ENTRY_HEADER_LEN + 20) as u64);
}

#[test]
fn bit_flip_in_sealed_segment_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 400, 30, 60);
    let n = names(d.path());
    assert!(n.contains(&"log_5_8".to_string()), "{n:?}");
    let p = d.path().join("log_5_8");
    let mut b = fs::read(&p).unwrap();
    let off = 2 * (ENTRY_HEADER_LEN + 60);
    for (what, at) in [("data", off + ENTRY_HEADER_LEN + 5), ("header", off + 9)] {
        let mut c = b.clone();
        c[at] ^= 0x80;
        fs::write(&p, &c).unwrap();
        let e = StreamLog::open(d.path(), opts(400)).unwrap_err();
        match &e {
            StorageError::Corrupt { path, offset, .. } => {
                assert_eq!(path, &p, "{what}");
                assert_eq!(*offset, off as u64, "{what}");
            }
            other => panic!("{what}: {other}"),
        }
        assert!(e.to_string().contains("log_5_8"), "{e}");
    }
    // A sealed segment cut short is an error too, and nothing was changed.
    b.truncate(b.len() - 1);
    fs::write(&p, &b).unwrap();
    assert!(matches!(
        StreamLog::open(d.path(), opts(400)),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&p).unwrap(), b);
}

#[test]
fn missing_middle_segment_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 400, 30, 60);
    fs::remove_file(d.path().join("log_9_12")).unwrap();
    let e = StreamLog::open(d.path(), opts(400)).unwrap_err();
    assert!(matches!(e, StorageError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("log_13_16"), "{e}");
}

#[test]
fn truncate_suffix_across_segments() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 400, 30, 60);
    let (mut log, _) = open(d.path(), 400);
    // Unsynced appends, then a cut inside an early sealed segment.
    log.append(&[ent(31, 4, 60), ent(32, 4, 60)]).unwrap();
    log.truncate_suffix(11).unwrap();
    assert_eq!(
        (log.last_index(), log.last_term(), log.durable_index()),
        (10, 2, 10)
    );
    assert_eq!(
        names(d.path()),
        vec!["log_1_4", "log_5_8", "log_inprogress_9"]
    );
    assert_eq!(all(&log), es[..10].to_vec());
    // The new leader's entries.
    let new: Vec<Entry> = (11..=20).map(|i| ent(i, 7, 60)).collect();
    log.append(&new).unwrap();
    log.sync().unwrap();
    drop(log);
    let (mut log, rep) = open(d.path(), 400);
    assert!(rep.is_clean());
    let mut want = es[..10].to_vec();
    want.extend(new.iter().cloned());
    assert_eq!(all(&log), want);

    // A cut exactly at a segment boundary keeps the previous sealed one.
    let n = names(d.path());
    assert!(n.contains(&"log_13_16".to_string()), "{n:?}");
    log.truncate_suffix(13).unwrap();
    assert_eq!(log.last_index(), 12);
    assert!(names(d.path()).ends_with(&["log_9_12".to_string(), "log_inprogress_13".to_string()]));
    // Beyond the end: no-op.
    log.truncate_suffix(50).unwrap();
    assert_eq!(log.last_index(), 12);
    // Everything.
    log.truncate_suffix(1).unwrap();
    assert_eq!(
        (log.first_index(), log.last_index(), log.last_term()),
        (1, 0, 0)
    );
    assert_eq!(names(d.path()), vec!["log_inprogress_1"]);
    log.append(&[ent(1, 9, 5)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = open(d.path(), 400);
    assert_eq!(all(&log), vec![ent(1, 9, 5)]);
}

#[test]
fn truncate_prefix_then_reopen() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 400, 30, 60);
    let (mut log, _) = open(d.path(), 400);
    log.truncate_prefix(7).unwrap(); // inside log_5_8: only log_1_4 goes
    assert_eq!(log.first_index(), 7);
    assert_eq!(log.term_at(6), Some(es[5].term));
    assert_eq!(log.term_at(5), None);
    assert!(matches!(
        log.entries(6, 8, 1000),
        Err(StorageError::IndexOutOfRange { .. })
    ));
    assert_eq!(names(d.path())[0], "log_5_8");
    log.truncate_prefix(3).unwrap(); // below: no-op
    assert_eq!(log.first_index(), 7);
    drop(log);
    let (mut log, rep) = open(d.path(), 400);
    assert!(rep.is_clean());
    assert_eq!((log.first_index(), log.last_index()), (7, 30));
    assert_eq!(all(&log), es[6..].to_vec());
    assert_eq!(log.term_at(6), Some(es[5].term));

    // Everything: the log becomes empty at 31 and continues there.
    assert!(matches!(
        log.truncate_prefix(32),
        Err(StorageError::InvalidArgument { .. })
    ));
    log.truncate_prefix(31).unwrap();
    assert_eq!(
        (log.first_index(), log.last_index(), log.last_term()),
        (31, 30, 4)
    );
    assert_eq!(names(d.path()), vec!["log_inprogress_31"]);
    drop(log);
    let (mut log, _) = open(d.path(), 400);
    assert_eq!(
        (log.first_index(), log.last_index(), log.last_term()),
        (31, 30, 4)
    );
    assert!(matches!(
        log.truncate_suffix(30),
        Err(StorageError::InvalidArgument { .. })
    ));
    log.append(&[ent(31, 5, 10)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = open(d.path(), 400);
    assert_eq!(all(&log), vec![ent(31, 5, 10)]);
}

/// A crash after the log control file moved but before old segments were
/// unlinked leaves them behind; recovery removes them.
#[test]
fn crash_during_truncate_prefix_leaves_removable_segments() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 400, 30, 60);
    let saved: Vec<(PathBuf, Vec<u8>)> = ["log_1_4", "log_5_8"]
        .iter()
        .map(|n| (d.path().join(n), fs::read(d.path().join(n)).unwrap()))
        .collect();
    let (mut log, _) = open(d.path(), 400);
    log.truncate_prefix(10).unwrap();
    drop(log);
    for (p, b) in &saved {
        fs::write(p, b).unwrap();
    }
    let (log, rep) = open(d.path(), 400);
    assert_eq!(rep.removed_files.len(), 2, "{rep:?}");
    assert_eq!(log.first_index(), 10);
    assert_eq!(all(&log), es[9..].to_vec());
    assert!(!saved[0].0.exists());
}

/// Crash states of roll-over and suffix truncation reopen consistently.
#[test]
fn crash_states_of_rollover_and_suffix_truncation() {
    // 12 entries of 100 bytes, 400-byte segments: log_1_4, log_5_8 and
    // log_inprogress_9 holding 9..=12 (it rolls on the next append).
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 400, 12, 60);
    assert_eq!(
        names(d.path()),
        vec!["log_1_4", "log_5_8", "log_inprogress_9"]
    );
    // Crash right after the seal's rename, before the new open segment
    // was created: the last file is sealed.
    fs::rename(d.path().join("log_inprogress_9"), d.path().join("log_9_12")).unwrap();
    let (mut log, rep) = open(d.path(), 400);
    assert!(rep.is_clean());
    assert_eq!(all(&log), es);
    assert_eq!(
        names(d.path()),
        vec!["log_1_4", "log_5_8", "log_9_12", "log_inprogress_13"]
    );
    log.append(&[ent(13, 9, 60)]).unwrap();
    log.sync().unwrap();
    drop(log);

    // Crash inside truncate_suffix after the sealed segment was renamed to
    // the open name but before it was cut: the old content is still a
    // valid prefix of the old log, at least as long as what was asked.
    let before = fs::read(d.path().join("log_5_8")).unwrap();
    let (mut log, _) = open(d.path(), 400);
    log.truncate_suffix(6).unwrap();
    assert_eq!(names(d.path()), vec!["log_1_4", "log_inprogress_5"]);
    drop(log);
    fs::write(d.path().join("log_inprogress_5"), &before).unwrap();
    let (log, rep) = open(d.path(), 400);
    assert!(rep.is_clean());
    assert_eq!(all(&log), es[..8].to_vec());
}

/// Appends that were never synced and never handed to the OS are simply
/// absent after a "crash" (here: the log is leaked without Drop).
#[test]
fn unsynced_appends_are_lost_consistently() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 1 << 20, 10, 30);
    let mut opts = opts(1 << 20);
    opts.write_buffer = 1 << 20;
    let (mut log, _) = StreamLog::open(d.path(), opts.clone()).unwrap();
    log.append(&[ent(11, 2, 30), ent(12, 2, 30)]).unwrap();
    assert_eq!(log.durable_index(), 10);
    std::mem::forget(log);
    let (log, rep) = StreamLog::open(d.path(), opts).unwrap();
    assert!(rep.is_clean());
    assert_eq!(all(&log), es);
}

/// Random bytes at random places of random files of a log: reopening
/// either fails with a storage error or yields a log whose every entry is
/// an original one. Corruption confined to the open segment never fails
/// and keeps every entry before the first damaged one.
#[test]
fn random_corruption_fuzz() {
    let base = tempfile::tempdir().unwrap();
    let len = 40;
    let entry_len = (ENTRY_HEADER_LEN + len) as u64;
    let es = build(base.path(), 800, 60, len);
    {
        let (mut log, _) = open(base.path(), 800);
        log.truncate_prefix(4).unwrap();
    }
    let files: Vec<String> = {
        let mut v: Vec<String> = fs::read_dir(base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let open_name = names(base.path())
        .into_iter()
        .find(|n| n.starts_with("log_inprogress_"))
        .unwrap();
    let open_first: u64 = open_name["log_inprogress_".len()..].parse().unwrap();
    let (mut oks, mut errs) = (0, 0);
    for seed in 0..300u64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let d = tempfile::tempdir().unwrap();
        copy_dir(base.path(), d.path());
        let mut changed: Vec<(String, u64)> = Vec::new();
        let only_open = rng.gen_ratio(1, 3);
        for _ in 0..rng.gen_range(1..=4) {
            let f = if only_open {
                open_name.clone()
            } else {
                files[rng.gen_range(0..files.len())].clone()
            };
            let p = d.path().join(&f);
            let mut b = fs::read(&p).unwrap();
            if b.is_empty() {
                continue;
            }
            if rng.gen_ratio(1, 5) {
                let at = rng.gen_range(0..b.len());
                b.truncate(at);
                changed.push((f, at as u64));
            } else {
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    let v: u8 = rng.gen();
                    if b[at] != v {
                        b[at] = v;
                        changed.push((f.clone(), at as u64));
                    }
                }
            }
            fs::write(&p, &b).unwrap();
        }
        let r = std::panic::catch_unwind(|| StreamLog::open(d.path(), opts(800)));
        let r = r.unwrap_or_else(|_| panic!("seed {seed}: open panicked"));
        match r {
            Ok((log, rep)) => {
                oks += 1;
                let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    log.entries(log.first_index(), log.last_index(), u64::MAX)
                }))
                .unwrap_or_else(|_| panic!("seed {seed}: read panicked"));
                let got = if log.last_index() < log.first_index() {
                    Vec::new()
                } else {
                    got.unwrap_or_else(|e| panic!("seed {seed}: {e}"))
                };
                for e in &got {
                    assert_eq!(
                        e,
                        &es[e.index as usize - 1],
                        "seed {seed}: entry {} differs",
                        e.index
                    );
                }
                if !changed.is_empty() && changed.iter().all(|(f, _)| *f == open_name) {
                    let min_off = changed.iter().map(|c| c.1).min().unwrap();
                    let damaged = open_first + min_off / entry_len;
                    assert!(
                        log.last_index() + 1 >= damaged,
                        "seed {seed}: lost entries before {damaged}: {rep:?}"
                    );
                }
            }
            Err(e) => {
                errs += 1;
                assert!(
                    !changed.iter().all(|(f, _)| *f == open_name),
                    "seed {seed}: corruption of the open segment only must not fail: {e}"
                );
                assert!(
                    matches!(
                        e,
                        StorageError::Corrupt { .. }
                            | StorageError::Inconsistent { .. }
                            | StorageError::BothCopiesLost { .. }
                    ),
                    "seed {seed}: unexpected error {e}"
                );
            }
        }
    }
    // Both outcomes must actually be exercised.
    assert!(oks > 50 && errs > 50, "ok {oks}, err {errs}");
}

/// Collects the messages of WARN events (a minimal subscriber, so the
/// test needs no extra crate).
struct WarnCollector(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl tracing::Subscriber for WarnCollector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct V(String);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut v = V(String::new());
            event.record(&mut v);
            self.0.lock().unwrap().push(v.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn recovery_logs_one_warning_with_the_amount() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 1 << 20, 5, 10);
    let p = d.path().join("log_inprogress_1");
    let mut b = fs::read(&p).unwrap();
    b.truncate(b.len() - 3);
    fs::write(&p, &b).unwrap();
    let warns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, rep) = tracing::subscriber::with_default(WarnCollector(warns.clone()), || {
        StreamLog::open(d.path(), opts(1 << 20)).unwrap()
    });
    assert_eq!(log.last_index(), 4);
    assert_eq!((rep.truncated_bytes, rep.dropped_entries), (47, 1));
    let w = warns.lock().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("dropped 47 bytes (1 entries)"), "{}", w[0]);
    // A clean open logs nothing.
    drop(w);
    drop(log);
    let warns2 = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    tracing::subscriber::with_default(WarnCollector(warns2.clone()), || {
        StreamLog::open(d.path(), opts(1 << 20)).unwrap()
    });
    assert!(warns2.lock().unwrap().is_empty());
}

/// `reset` replaces the log by an empty one continuing after a
/// checkpoint, durably, whether the checkpoint lies inside the log (a log
/// that contradicts it) or beyond it; a log copied at every step of the
/// reset (a crash) reopens as a prefix of the old log or as the new one.
#[test]
fn reset_continues_after_a_checkpoint_and_survives_crashes() {
    for target in [20u64, 500] {
        let d = tempfile::tempdir().unwrap();
        let old = build(d.path(), 600, 60, 40);
        let (mut log, _) = open(d.path(), 600);
        assert!(log.segment_paths().len() > 2);
        log.reset(target, 9).unwrap();
        assert_eq!(log.first_index(), target + 1);
        assert_eq!(log.last_index(), target);
        assert_eq!(log.last_term(), 9);
        assert_eq!(log.term_at(target), Some(9));
        assert_eq!(log.durable_index(), target);
        log.append(&[ent(target + 1, 10, 5)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, report) = open(d.path(), 600);
        assert!(report.is_clean());
        assert_eq!(log.first_index(), target + 1);
        assert_eq!(all(&log), vec![ent(target + 1, 10, 5)]);
        assert_eq!(log.term_at(target), Some(9));
        drop(log);

        // Crash states: every prefix of the old segments with the old
        // control file is a valid (shorter) old log.
        let src = tempfile::tempdir().unwrap();
        build(src.path(), 600, 60, 40);
        let mut segs: Vec<PathBuf> = fs::read_dir(src.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name().unwrap().to_str().unwrap().starts_with("log_")
                    && !p.to_str().unwrap().contains("ctrl")
            })
            .collect();
        segs.sort_by_key(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            let first = name
                .strip_prefix("log_inprogress_")
                .or_else(|| name.strip_prefix("log_").and_then(|r| r.split('_').next()));
            first.unwrap().parse::<u64>().unwrap()
        });
        for removed in 1..=segs.len() {
            let c = tempfile::tempdir().unwrap();
            copy_dir(src.path(), c.path());
            for p in segs.iter().rev().take(removed) {
                fs::remove_file(c.path().join(p.file_name().unwrap())).unwrap();
            }
            let (log, _) = open(c.path(), 600);
            let got = all(&log);
            assert_eq!(got, old[..got.len()].to_vec(), "{removed} segments removed");
        }
    }
}

/// Regression: a prefix truncation inside a segment (the usual case with
/// DCF's 500 MB segments) kept the in-memory index of every dropped entry,
/// so a node's memory grew with its history despite compaction.
#[test]
fn prefix_truncation_inside_a_segment_frees_the_index() {
    let d = tempfile::tempdir().unwrap();
    let es = build(d.path(), 1 << 30, 1000, 10);
    let (mut log, _) = open(d.path(), 1 << 30);
    assert_eq!(log.segment_paths().len(), 1);
    assert_eq!(log.indexed_entries(), 1000);
    log.truncate_prefix(990).unwrap();
    assert_eq!(log.indexed_entries(), 11);
    assert_eq!(all(&log), es[989..].to_vec());
    log.truncate_suffix(995).unwrap();
    assert_eq!(all(&log), es[989..994].to_vec());
    drop(log);
    let (log, _) = open(d.path(), 1 << 30);
    assert_eq!(log.indexed_entries(), 5);
    assert_eq!((log.first_index(), log.last_index()), (990, 994));
    assert_eq!(all(&log), es[989..994].to_vec());
}
