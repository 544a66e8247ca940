//! The filesystem mounted for real, used through the kernel: plain files
//! and the node's own log (dcf-storage) keep exactly what they made
//! durable across a power cut. Skipped (with the reason) where FUSE cannot
//! be mounted; under CI=true that is a failure.

use dcf_core::{Entry, EntryKind};
use dcf_storage::{StreamLog, StreamLogOptions};
use powercut_fs::Mounted;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

fn mount_or_skip() -> Option<(tempfile::TempDir, Mounted)> {
    if let Err(why) = powercut_fs::available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("FUSE is required under CI=true: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::mount(dir.path()).expect("mount");
    Some((dir, m))
}

fn sync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

#[test]
fn files_keep_what_was_fsynced_under_a_fsynced_name() {
    let Some((dir, m)) = mount_or_skip() else {
        return;
    };
    let root = dir.path();
    let durable = root.join("durable");
    let mut f = File::create(&durable).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_all().unwrap();
    f.write_all(b" and not").unwrap();
    drop(f);
    sync_dir(root);
    let only_written = root.join("never-synced");
    fs::write(&only_written, b"gone").unwrap();
    // Atomic replace: written, synced, renamed, but the rename not synced.
    fs::write(root.join("config"), b"old").unwrap();
    File::open(root.join("config")).unwrap().sync_all().unwrap();
    sync_dir(root);
    let mut t = File::create(root.join("config.tmp")).unwrap();
    t.write_all(b"new").unwrap();
    t.sync_all().unwrap();
    drop(t);
    fs::rename(root.join("config.tmp"), root.join("config")).unwrap();
    assert_eq!(fs::read(root.join("config")).unwrap(), b"new");

    let dropped = m.power_cut();
    assert!(dropped.files >= 1 && dropped.dirs >= 1, "{dropped:?}");
    assert_eq!(fs::read(&durable).unwrap(), b"synced");
    // Its name became durable with the next directory sync, its data never.
    assert_eq!(fs::read(&only_written).unwrap(), b"");
    assert_eq!(fs::read(root.join("config")).unwrap(), b"old");
    // Created after the last directory sync, but synced while new, which
    // made its first name durable too (the rename never was).
    assert_eq!(fs::read(root.join("config.tmp")).unwrap(), b"new");
    let stats = m.stats();
    assert!(stats.file_syncs >= 2 && stats.dir_syncs >= 2, "{stats:?}");
    m.unmount().unwrap();
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "unmounted"
    );
}

/// etcd's first start through the kernel: `member/` created and never
/// synced in the data directory, the WAL built in `member/wal.tmp/` (its
/// segment fdatasynced, the directory not), renamed to `member/wal`, and
/// `member/` fsynced. The WAL is still there after a cut.
#[test]
fn a_wal_directory_built_under_a_temporary_name_survives() {
    let Some((dir, m)) = mount_or_skip() else {
        return;
    };
    let member = dir.path().join("member");
    fs::create_dir_all(member.join("snap")).unwrap();
    let tmp = member.join("wal.tmp");
    fs::create_dir(&tmp).unwrap();
    let mut seg = File::create(tmp.join("0-0.wal")).unwrap();
    seg.set_len(4096).unwrap();
    seg.write_all(b"records").unwrap();
    seg.sync_data().unwrap();
    drop(seg);
    fs::rename(&tmp, member.join("wal")).unwrap();
    File::create(member.join("wal/0.tmp")).unwrap();
    sync_dir(&member);

    m.power_cut();
    let seg = fs::read(member.join("wal/0-0.wal")).unwrap();
    assert_eq!(seg.len(), 4096);
    assert_eq!(&seg[..7], b"records");
    assert!(!tmp.exists());
    assert!(!member.join("wal/0.tmp").exists(), "never synced");
    m.unmount().unwrap();
}

fn entry(index: u64) -> Entry {
    Entry {
        term: 1,
        index,
        key: index,
        kind: EntryKind::Data,
        data: vec![index as u8; 100],
    }
}

/// The node's log on the filesystem: after a cut, reopening finds exactly
/// the entries of the last sync (the unsynced tail is gone or cut as a
/// torn tail), whatever was appended after it.
#[test]
fn the_log_keeps_its_synced_entries_and_loses_the_rest() {
    let Some((dir, m)) = mount_or_skip() else {
        return;
    };
    let logdir = dir.path().join("log");
    let opts = StreamLogOptions {
        segment_size: 4096,
        write_buffer: 512,
        verify_data_checksums: true,
    };
    {
        let (mut log, _) = StreamLog::open(&logdir, opts.clone()).unwrap();
        let es: Vec<Entry> = (1..=60).map(entry).collect();
        log.append(&es).unwrap();
        log.sync().unwrap();
        let more: Vec<Entry> = (61..=90).map(entry).collect();
        log.append(&more).unwrap();
        // Written to the file (the buffer is small) but never synced.
        drop(log);
    }
    m.power_cut();
    let (log, _report) = StreamLog::open(&logdir, opts.clone()).unwrap();
    assert_eq!(log.last_index(), 60, "exactly the synced entries");
    let back = log.entries(1, 60, u64::MAX).unwrap();
    assert_eq!(back, (1..=60).map(entry).collect::<Vec<_>>());
    drop(log);

    // A storage engine that never fsyncs loses everything.
    let raw = dir.path().join("raw");
    fs::create_dir(&raw).unwrap();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(raw.join("data"))
        .unwrap();
    f.write_all(b"acknowledged but never synced").unwrap();
    drop(f);
    m.power_cut();
    assert!(!raw.exists());
}

/// With a sync latency, an fsync answers only after it, and a power cut
/// that overtakes a pending fsync makes it fail and keeps nothing of it.
#[test]
fn a_slow_fsync_answers_late_and_a_cut_overtakes_it() {
    if let Err(why) = powercut_fs::available() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let latency = std::time::Duration::from_millis(300);
    let m = powercut_fs::Mounted::mount_with(
        dir.path(),
        &powercut_fs::Options {
            sync_latency: latency,
        },
    )
    .expect("mount");
    let root = dir.path();
    let mut f = File::create(root.join("a")).unwrap();
    f.write_all(b"first").unwrap();
    let t = std::time::Instant::now();
    f.sync_all().unwrap();
    assert!(t.elapsed() >= latency, "answered after {:?}", t.elapsed());
    sync_dir(root);

    f.write_all(b" second").unwrap();
    let pending = std::thread::spawn(move || f.sync_all());
    std::thread::sleep(latency / 3);
    m.power_cut();
    let r = pending.join().unwrap();
    assert!(r.is_err(), "the overtaken fsync reported success");
    assert_eq!(fs::read(root.join("a")).unwrap(), b"first");
    m.unmount().unwrap();
}

/// After `power_off` nothing becomes durable: a sync does not answer
/// before its process was killed (here: before we say so), then fails, and
/// the cut drops what was written.
#[test]
fn nothing_becomes_durable_between_power_off_and_the_cut() {
    let Some((dir, m)) = mount_or_skip() else {
        return;
    };
    let root = dir.path();
    let mut f = File::create(root.join("a")).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    sync_dir(root);
    m.power_off();
    f.write_all(b" lost").unwrap();
    let pending = std::thread::spawn(move || f.sync_all());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!pending.is_finished(), "a sync answered without power");
    m.processes_killed();
    assert!(
        pending.join().unwrap().is_err(),
        "a sync without power succeeded"
    );
    m.power_cut();
    assert_eq!(fs::read(root.join("a")).unwrap(), b"kept");
    let mut f = OpenOptions::new()
        .append(true)
        .open(root.join("a"))
        .unwrap();
    f.write_all(b" again").unwrap();
    f.sync_all().expect("the power is back on after the cut");
    drop(f);
    m.unmount().unwrap();
}
