//! Checkpoint transfer between nodes.
//!
//! When a leader's core asks for it ([`crate::core::Action::SendSnapshot`]),
//! the engine streams the host's newest checkpoint file to the node that
//! needs entries below the leader's first index:
//!
//! - in chunks of [`CHUNK_SIZE`] bytes, each with its own CRC32C, one at a
//!   time (the next goes out when the previous one is acknowledged), so
//!   both sides hold at most one chunk in memory whatever the size;
//! - the sender opens with a chunk without data; the receiver answers with
//!   the number of bytes of that checkpoint it already holds, so a
//!   transfer cut by a dropped connection (or restarted by the leader)
//!   resumes where it stopped;
//! - a chunk that is lost is sent again after [`RESEND_AFTER_MS`]; after
//!   [`MAX_RESENDS`] unanswered resends the sender gives up and tells the
//!   core, which asks again later;
//! - the receiver writes the chunks to a temporary file next to the
//!   stream's log and fsyncs it when complete; the host then verifies and
//!   installs it (see [`crate::engine::DcfCallbacks::install_snapshot`]).

use crate::core::{NodeId, SnapshotMeta, StreamId};
use crate::transport::{HostEnvelope, HostMessage, SnapshotStatus};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of checkpoint data per chunk.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// A chunk without an answer for this long is sent again.
pub const RESEND_AFTER_MS: u64 = 2000;
/// Unanswered resends after which the sender gives up.
pub const MAX_RESENDS: u32 = 5;

/// A checkpoint being sent to one node.
struct Outgoing {
    meta: SnapshotMeta,
    members: Vec<u8>,
    file: File,
    len: u64,
    /// The receiver holds everything below this (as far as we know).
    offset: u64,
    /// When the last chunk left, and how often it went unanswered.
    sent_at: u64,
    resends: u32,
}

/// A checkpoint being received from one node.
struct Incoming {
    from: NodeId,
    meta: SnapshotMeta,
    path: PathBuf,
    file: File,
    total: u64,
    received: u64,
}

/// A received chunk: the fields of [`HostMessage::SnapshotChunk`].
pub struct Chunk<'a> {
    pub index: u64,
    pub term: u64,
    pub members: &'a [u8],
    pub total: u64,
    pub offset: u64,
    pub crc: u32,
    pub data: &'a [u8],
}

/// What the engine does after a chunk arrived.
pub enum ChunkOutcome {
    /// Answer with [`SnapshotStatus::Receiving`] and this offset.
    Ack(u64),
    /// The file is complete and fsynced: let the host install it, then
    /// answer with the result.
    Complete { meta: SnapshotMeta, path: PathBuf },
    /// Answer with [`SnapshotStatus::Refused`] (an older checkpoint than
    /// the one being received, or a chunk that cannot be used).
    Refuse,
}

/// What the engine does after an acknowledgement arrived.
pub enum AckOutcome {
    Send(HostEnvelope),
    /// The receiver installed it: nothing more to do (the core hears it
    /// from the receiver's append response).
    Done,
    /// The receiver refused it: tell the core.
    Failed,
    Ignore,
}

/// Every transfer of one node, in and out.
pub struct Transfers {
    node_id: NodeId,
    outgoing: HashMap<(StreamId, NodeId), Outgoing>,
    incoming: HashMap<StreamId, Incoming>,
    /// Where received checkpoints are written, per stream.
    dirs: HashMap<StreamId, PathBuf>,
}

impl Transfers {
    /// `dirs`: a directory per stream for received checkpoints; anything
    /// left there by an earlier run is removed.
    pub fn new(node_id: NodeId, dirs: HashMap<StreamId, PathBuf>) -> io::Result<Transfers> {
        for dir in dirs.values() {
            if dir.exists() {
                fs::remove_dir_all(dir)?;
            }
        }
        Ok(Transfers {
            node_id,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            dirs,
        })
    }

    /// True while a transfer of `meta` to `to` is under way.
    pub fn sending(&self, stream: StreamId, to: NodeId, meta: &SnapshotMeta) -> bool {
        self.outgoing
            .get(&(stream, to))
            .is_some_and(|o| o.meta == *meta)
    }

    /// Starts (or restarts) sending the checkpoint in `path` to `to`;
    /// returns the opening probe to send.
    pub fn start(
        &mut self,
        stream: StreamId,
        to: NodeId,
        meta: SnapshotMeta,
        path: &Path,
        now: u64,
    ) -> io::Result<HostEnvelope> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let members = serde_json::to_vec(&meta.members).map_err(io::Error::other)?;
        let o = Outgoing {
            meta,
            members,
            file,
            len,
            offset: 0,
            sent_at: now,
            resends: 0,
        };
        let env = self.chunk(stream, to, &o, false)?;
        self.outgoing.insert((stream, to), o);
        Ok(env)
    }

    /// The chunk at the outgoing transfer's offset (`with_data` false: a
    /// probe asking where to resume).
    fn chunk(
        &self,
        stream: StreamId,
        to: NodeId,
        o: &Outgoing,
        with_data: bool,
    ) -> io::Result<HostEnvelope> {
        let data = if with_data {
            let n = (o.len - o.offset).min(CHUNK_SIZE as u64) as usize;
            let mut buf = vec![0u8; n];
            o.file.read_exact_at(&mut buf, o.offset)?;
            buf
        } else {
            Vec::new()
        };
        Ok(HostEnvelope {
            stream,
            from: self.node_id,
            to,
            msg: HostMessage::SnapshotChunk {
                index: o.meta.index,
                term: o.meta.term,
                members: o.members.clone(),
                total: o.len,
                offset: o.offset,
                crc: crc32c::crc32c(&data),
                data,
            },
        })
    }

    /// An acknowledgement from `from`.
    pub fn on_ack(
        &mut self,
        stream: StreamId,
        from: NodeId,
        (index, term): (u64, u64),
        next_offset: u64,
        status: SnapshotStatus,
        now: u64,
    ) -> AckOutcome {
        let key = (stream, from);
        let Some(o) = self.outgoing.get_mut(&key) else {
            return AckOutcome::Ignore;
        };
        if o.meta.index != index || o.meta.term != term {
            return AckOutcome::Ignore;
        }
        match status {
            SnapshotStatus::Installed => {
                self.outgoing.remove(&key);
                AckOutcome::Done
            }
            SnapshotStatus::Refused => {
                self.outgoing.remove(&key);
                AckOutcome::Failed
            }
            SnapshotStatus::Receiving => {
                if next_offset >= o.len {
                    // Complete on the receiver, which is installing it.
                    o.sent_at = now;
                    return AckOutcome::Ignore;
                }
                o.offset = next_offset;
                o.sent_at = now;
                o.resends = 0;
                let o = &self.outgoing[&key];
                match self.chunk(stream, from, o, true) {
                    Ok(env) => AckOutcome::Send(env),
                    Err(e) => {
                        tracing::warn!(stream, to = from, error = %e, "cannot read the checkpoint being sent; giving up");
                        self.outgoing.remove(&key);
                        AckOutcome::Failed
                    }
                }
            }
        }
    }

    /// Resends unanswered chunks; returns them and the transfers given up.
    pub fn tick(&mut self, now: u64) -> (Vec<HostEnvelope>, Vec<(StreamId, NodeId)>) {
        let mut resend = Vec::new();
        let mut failed = Vec::new();
        let keys: Vec<(StreamId, NodeId)> = self.outgoing.keys().copied().collect();
        for key in keys {
            let o = self.outgoing.get_mut(&key).expect("listed");
            if now < o.sent_at + RESEND_AFTER_MS {
                continue;
            }
            if o.resends >= MAX_RESENDS {
                self.outgoing.remove(&key);
                failed.push(key);
                continue;
            }
            o.resends += 1;
            o.sent_at = now;
            // Ask where to resume: the chunk or its answer may be lost, and
            // the receiver may have restarted.
            let o = &self.outgoing[&key];
            match self.chunk(key.0, key.1, o, false) {
                Ok(env) => resend.push(env),
                Err(_) => {
                    self.outgoing.remove(&key);
                    failed.push(key);
                }
            }
        }
        (resend, failed)
    }

    /// Drops every outgoing transfer of `stream` whose receiver is not in
    /// `keep` (it left the stream, or this node stopped leading).
    pub fn retain_outgoing(&mut self, stream: StreamId, keep: impl Fn(NodeId) -> bool) {
        self.outgoing.retain(|(s, to), _| *s != stream || keep(*to));
    }

    /// A chunk from `from`.
    pub fn on_chunk(
        &mut self,
        stream: StreamId,
        from: NodeId,
        chunk: &Chunk<'_>,
    ) -> io::Result<ChunkOutcome> {
        let Chunk {
            index,
            term,
            members,
            total,
            offset,
            crc,
            data,
        } = *chunk;
        let same = self
            .incoming
            .get(&stream)
            .is_some_and(|i| i.from == from && i.meta.index == index && i.meta.term == term);
        if !same {
            if self
                .incoming
                .get(&stream)
                .is_some_and(|i| i.meta.index > index)
            {
                return Ok(ChunkOutcome::Refuse);
            }
            let Ok(members) = serde_json::from_slice(members) else {
                return Ok(ChunkOutcome::Refuse);
            };
            let Some(dir) = self.dirs.get(&stream) else {
                return Ok(ChunkOutcome::Refuse);
            };
            if let Some(old) = self.incoming.remove(&stream) {
                let _ = fs::remove_file(&old.path);
            }
            fs::create_dir_all(dir)?;
            let path = dir.join(format!("checkpoint_{index}_{term}_from_{from}.part"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            self.incoming.insert(
                stream,
                Incoming {
                    from,
                    meta: SnapshotMeta {
                        index,
                        term,
                        members,
                    },
                    path,
                    file,
                    total,
                    received: 0,
                },
            );
        }
        let inc = self.incoming.get_mut(&stream).expect("inserted");
        if inc.total != total {
            return Ok(ChunkOutcome::Refuse);
        }
        if !data.is_empty()
            && offset == inc.received
            && crc32c::crc32c(data) == crc
            && offset + data.len() as u64 <= total
        {
            inc.file.write_all_at(data, offset)?;
            inc.received += data.len() as u64;
        }
        if inc.received < total {
            return Ok(ChunkOutcome::Ack(inc.received));
        }
        inc.file.sync_all()?;
        if let Some(dir) = inc.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let inc = self.incoming.remove(&stream).expect("present");
        Ok(ChunkOutcome::Complete {
            meta: inc.meta,
            path: inc.path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::StreamMembers;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 3,
            members: StreamMembers::default(),
        }
    }

    fn chunk_of(env: &HostEnvelope) -> (u64, u64, u32, Vec<u8>) {
        match &env.msg {
            HostMessage::SnapshotChunk {
                total,
                offset,
                crc,
                data,
                ..
            } => (*total, *offset, *crc, data.clone()),
            m => panic!("not a chunk: {m:?}"),
        }
    }

    /// Delivers `env` (a chunk from node 1) to the receiver on node 2.
    fn deliver(rx: &mut Transfers, env: &HostEnvelope) -> ChunkOutcome {
        let (total, offset, crc, data) = chunk_of(env);
        let chunk = Chunk {
            index: 9,
            term: 3,
            members: b"{\"members\":[]}",
            total,
            offset,
            crc,
            data: &data,
        };
        rx.on_chunk(1, 1, &chunk).unwrap()
    }

    /// A checkpoint of several chunks arrives whole through lost chunks,
    /// a corrupted chunk and a sender that starts over (resuming where the
    /// receiver stopped), and the sender gives up after its resends.
    #[test]
    fn chunks_resume_after_loss_and_restart_and_arrive_intact() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("ckpt");
        let content: Vec<u8> = (0..CHUNK_SIZE * 3 + 1234)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&src, &content).unwrap();
        let mut tx = Transfers::new(1, HashMap::new()).unwrap();
        let dirs = HashMap::from([(1, d.path().join("in"))]);
        let mut rx = Transfers::new(2, dirs).unwrap();

        let probe = tx.start(1, 2, meta(9), &src, 0).unwrap();
        assert!(chunk_of(&probe).3.is_empty(), "opens with a probe");
        let ChunkOutcome::Ack(0) = deliver(&mut rx, &probe) else {
            panic!("fresh receiver holds nothing")
        };
        let AckOutcome::Send(first) = tx.on_ack(1, 2, (9, 3), 0, SnapshotStatus::Receiving, 1)
        else {
            panic!("first chunk")
        };
        let ChunkOutcome::Ack(n) = deliver(&mut rx, &first) else {
            panic!("ack")
        };
        assert_eq!(n, CHUNK_SIZE as u64);
        // The next chunk is lost; a corrupted copy is ignored.
        let AckOutcome::Send(second) = tx.on_ack(1, 2, (9, 3), n, SnapshotStatus::Receiving, 2)
        else {
            panic!("second chunk")
        };
        let mut bad = second.clone();
        if let HostMessage::SnapshotChunk { data, .. } = &mut bad.msg {
            data[10] ^= 1;
        }
        let ChunkOutcome::Ack(still) = deliver(&mut rx, &bad) else {
            panic!("ack")
        };
        assert_eq!(still, n, "a chunk failing its CRC is not written");
        // The sender starts over (a new leader, or a dropped connection):
        // the probe learns where to resume.
        let probe = tx.start(1, 2, meta(9), &src, 3).unwrap();
        let ChunkOutcome::Ack(resume) = deliver(&mut rx, &probe) else {
            panic!("ack")
        };
        assert_eq!(resume, n);
        let mut next = resume;
        let path = loop {
            let AckOutcome::Send(c) = tx.on_ack(1, 2, (9, 3), next, SnapshotStatus::Receiving, 4)
            else {
                panic!("more chunks")
            };
            assert_eq!(chunk_of(&c).1, next, "sends from where the receiver is");
            match deliver(&mut rx, &c) {
                ChunkOutcome::Ack(n) => next = n,
                ChunkOutcome::Complete { meta: m, path } => {
                    assert_eq!(m.index, 9);
                    break path;
                }
                ChunkOutcome::Refuse => panic!("refused"),
            }
        };
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert!(matches!(
            tx.on_ack(
                1,
                2,
                (9, 3),
                content.len() as u64,
                SnapshotStatus::Installed,
                5
            ),
            AckOutcome::Done
        ));

        // Nobody answers: resends, then the sender gives up.
        tx.start(1, 2, meta(9), &src, 10).unwrap();
        let mut now = 10;
        let mut resends = 0;
        let failed = loop {
            now += RESEND_AFTER_MS;
            let (again, failed) = tx.tick(now);
            resends += again.len();
            if !failed.is_empty() {
                break failed;
            }
        };
        assert_eq!(resends as u32, MAX_RESENDS);
        assert_eq!(failed, vec![(1, 2)]);
    }
}
