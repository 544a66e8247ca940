//! The storage writer thread: appends and truncations of every stream's
//! log, in the order the cores asked for them, with group commit: it
//! drains everything queued, writes it, fsyncs each touched log once and
//! then reports durability back to the engine.
//!
//! It also reads back entries the cores no longer hold in memory: appends
//! to slow followers ([`WriterCmd::SendStored`], sent from here straight to
//! the transport) and `dcf_read` of old entries. Reads are ordered with the
//! writes queued before them, so they see exactly the log the core saw.

use super::events::EngineEvent;
use super::DcfError;
use crate::core::{Entry, Envelope, Index, StreamId, Term};
use crate::storage::{RecoveryReport, StorageError, StreamLog, StreamLogOptions};
use crate::transport::Transport;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use tracing::{debug, error};

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
    /// Drop entries below `first_kept`, durably, then answer `done`.
    TruncatePrefix {
        stream: StreamId,
        first_kept: Index,
        done: Vec<oneshot::Sender<Result<(), DcfError>>>,
    },
    /// Replace the log by an empty one continuing after (`last`, `last_term`).
    Reset {
        stream: StreamId,
        last: Index,
        last_term: Term,
    },
    /// Fill `env`'s entries with `from..=to` read from the log and send it.
    SendStored {
        stream: StreamId,
        env: Envelope,
        from: Index,
        to: Index,
    },
    /// Read one entry (`dcf_read` of an entry no longer in memory).
    Read {
        stream: StreamId,
        index: Index,
        reply: oneshot::Sender<Result<Entry, DcfError>>,
    },
    Stop,
}

/// Opens (and recovers) one stream's log.
pub fn open_log(
    dir: &Path,
    segment_size: u64,
    verify_data_checksums: bool,
) -> Result<(StreamLog, RecoveryReport), StorageError> {
    let opts = StreamLogOptions {
        segment_size,
        verify_data_checksums,
        ..StreamLogOptions::default()
    };
    StreamLog::open(dir, opts)
}

/// Starts the writer thread owning `logs`.
pub fn spawn(
    logs: BTreeMap<StreamId, StreamLog>,
    events: mpsc::Sender<EngineEvent>,
    transport: Arc<Transport>,
) -> std::io::Result<(mpsc::Sender<WriterCmd>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<WriterCmd>();
    let handle = std::thread::Builder::new()
        .name("dcf-writer".into())
        .spawn(move || run(logs, rx, events, transport))?;
    Ok((tx, handle))
}

fn run(
    mut logs: BTreeMap<StreamId, StreamLog>,
    rx: mpsc::Receiver<WriterCmd>,
    events: mpsc::Sender<EngineEvent>,
    transport: Arc<Transport>,
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
                WriterCmd::TruncatePrefix {
                    stream,
                    first_kept,
                    done,
                } => {
                    let r = logs
                        .get_mut(&stream)
                        .map(|log| log.truncate_prefix(first_kept))
                        .unwrap_or(Ok(()));
                    for d in done {
                        let _ = d.send(match &r {
                            Ok(()) => Ok(()),
                            Err(e) => Err(DcfError::Io(std::io::Error::other(e.to_string()))),
                        });
                    }
                    r
                }
                WriterCmd::Reset {
                    stream,
                    last,
                    last_term,
                } => logs
                    .get_mut(&stream)
                    .map(|log| log.reset(last, last_term))
                    .unwrap_or(Ok(())),
                WriterCmd::SendStored {
                    stream,
                    mut env,
                    from,
                    to,
                } => {
                    if let Some(log) = logs.get(&stream) {
                        match log.entries(from, to, u64::MAX) {
                            Ok(entries) => {
                                if let Some(slot) = env.msg.entries_mut() {
                                    *slot = entries;
                                    transport.send(env);
                                }
                            }
                            // Compacted since the core asked: the peer
                            // asks again or gets a checkpoint.
                            Err(e) => {
                                debug!(stream, from, to, error = %e, "stored entries no longer readable")
                            }
                        }
                    }
                    Ok(())
                }
                WriterCmd::Read {
                    stream,
                    index,
                    reply,
                } => {
                    let r = match logs.get(&stream) {
                        Some(log) => log.entry(index).map_err(|_| DcfError::NoEntry(index)),
                        None => Err(DcfError::NoStream(stream)),
                    };
                    let _ = reply.send(r);
                    Ok(())
                }
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
