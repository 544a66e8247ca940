//! The storage writer thread: appends and truncations of every stream's
//! log, in the order the cores asked for them, with group commit: it
//! drains everything queued, writes it, fsyncs each touched log once and
//! then reports durability back to the engine.

use super::runner::EngineEvent;
use crate::core::{Entry, Index, StreamId};
use crate::storage::{RecoveryReport, StorageError, StreamLog, StreamLogOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tracing::error;

/// Work for the writer thread.
pub enum WriterCmd {
    Append {
        stream: StreamId,
        entries: Vec<Entry>,
    },
    TruncateSuffix {
        stream: StreamId,
        from: Index,
    },
    TruncatePrefix {
        stream: StreamId,
        first_kept: Index,
    },
    Stop,
}

/// Opens (and recovers) one stream's log.
pub fn open_log(
    dir: &Path,
    segment_size: u64,
) -> Result<(StreamLog, RecoveryReport), StorageError> {
    let opts = StreamLogOptions {
        segment_size,
        ..StreamLogOptions::default()
    };
    StreamLog::open(dir, opts)
}

/// Starts the writer thread owning `logs`.
pub fn spawn(
    logs: BTreeMap<StreamId, StreamLog>,
    events: mpsc::Sender<EngineEvent>,
) -> std::io::Result<(mpsc::Sender<WriterCmd>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<WriterCmd>();
    let handle = std::thread::Builder::new()
        .name("dcf-writer".into())
        .spawn(move || run(logs, rx, events))?;
    Ok((tx, handle))
}

fn run(
    mut logs: BTreeMap<StreamId, StreamLog>,
    rx: mpsc::Receiver<WriterCmd>,
    events: mpsc::Sender<EngineEvent>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 65536 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut touched = BTreeSet::new();
        let mut stop = false;
        for cmd in batch {
            let r = match cmd {
                WriterCmd::Append { stream, entries } => logs
                    .get_mut(&stream)
                    .map(|log| {
                        touched.insert(stream);
                        log.append(&entries)
                    })
                    .unwrap_or(Ok(())),
                WriterCmd::TruncateSuffix { stream, from } => logs
                    .get_mut(&stream)
                    .map(|log| {
                        touched.insert(stream);
                        log.truncate_suffix(from)
                    })
                    .unwrap_or(Ok(())),
                WriterCmd::TruncatePrefix { stream, first_kept } => logs
                    .get_mut(&stream)
                    .map(|log| log.truncate_prefix(first_kept))
                    .unwrap_or(Ok(())),
                WriterCmd::Stop => {
                    stop = true;
                    Ok(())
                }
            };
            if let Err(e) = r {
                fail(&events, e);
                return;
            }
        }
        for stream in touched {
            let log = logs.get_mut(&stream).expect("touched log exists");
            if let Err(e) = log.sync() {
                fail(&events, e);
                return;
            }
            let index = log.last_index();
            let term = log.last_term();
            if index > 0 {
                let _ = events.send(EngineEvent::Persisted {
                    stream,
                    index,
                    term,
                });
            }
        }
        if stop {
            return;
        }
    }
}

fn fail(events: &mpsc::Sender<EngineEvent>, e: StorageError) {
    error!(error = %e, "log write failed");
    let _ = events.send(EngineEvent::StorageFailed(e.to_string()));
}
