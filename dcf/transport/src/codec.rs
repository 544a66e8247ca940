//! Hand-written, versioned binary encoding of frames: a hello that opens a
//! connection, and batches of [`Wire`] messages (the core's consensus
//! envelopes and the engine's host envelopes, which share one tag space).
//!
//! Why hand-written: the wire format is a compatibility contract between
//! node versions, so every byte is spelled out here instead of being
//! whatever a serialisation library's derive happens to produce; and the
//! decoder must be safe against hostile input, which is easiest to see when
//! every read is explicit.
//!
//! Payload layout (after the [`crate::header`]), all integers little-endian:
//!
//! ```text
//! payload  = kind:u8 body
//! kind 1   Hello: from:u32 to:u32
//! kind 2   Batch: count:u32 envelope*count
//! envelope = stream:u32 from:u32 to:u32 tag:u8 message
//! tag 1    VoteRequest:    term:u64 pre_vote:bool last_index:u64 last_term:u64 transfer:bool
//! tag 2    VoteResponse:   term:u64 pre_vote:bool granted:bool
//! tag 3    Append:         term:u64 prev_index:u64 prev_term:u64 commit:u64
//!                          first_index:u64 min_applied:u64 seq:u64 minority:bool
//!                          count:u32 entry*count
//! tag 4    AppendResponse: term:u64 success:bool index:u64 last_index:u64
//!                          applied_index:u64 seq:u64
//! tag 5    TimeoutNow:     term:u64
//! tag 6    Forward:        req:u64 key:u64 len:u32 data[len]                 (host)
//! tag 7    ForwardReply:   req:u64 accepted:bool term:u64 index:u64 leader:u32 (host)
//! tag 8    User:           len:u32 data[len]                                 (host)
//! tag 9    WorkModeReport: term:u64 minority:bool
//! tag 10   LogTail:        term:u64 prev_index:u64 prev_term:u64 last_index:u64
//!                          last_term:u64 count:u32 entry*count
//! tag 11   LogTailResponse: term:u64 success:bool index:u64
//! tag 12   SnapshotChunk:  index:u64 term:u64 total:u64 offset:u64 crc:u32
//!                          len:u32 members[len] len:u32 data[len]           (host)
//! tag 13   SnapshotAck:    index:u64 term:u64 next_offset:u64 status:u8     (host)
//! entry    = term:u64 index:u64 key:u64 kind:u8 len:u32 data[len]
//! bool     = u8, exactly 0 or 1
//! ```
//!
//! Messages marked "host" are the engine's ([`crate::wire::HostMessage`]),
//! the others the consensus core's ([`dcf_core::Message`]); they decode to
//! [`Wire::Host`] and [`Wire::Consensus`].
//!
//! The encoding is canonical: a byte string that decodes successfully is
//! exactly what encoding the decoded frame produces (no slack in booleans,
//! counts or lengths, no trailing bytes). The fuzz tests rely on that.
//! This holds for the plain payload; a compressed frame (see
//! [`crate::header::Compression`]) is not canonical (another level or
//! algorithm gives other bytes), but what it decompresses to is.
//!
//! Compression is applied at the frame level, after the payload above was
//! encoded: a batch frame whose plain payload is at least
//! [`MIN_COMPRESS`] bytes is compressed with the codec's algorithm, and
//! sent compressed only if that makes it smaller. The batch limits (the
//! maximum frame size) apply to the plain payload, so a compressed frame
//! never decompresses beyond the maximum either.
//!
//! Decoding safety: every count and length is checked against the bytes
//! that remain before anything is allocated for it, and the payload itself
//! is checked against the codec's maximum frame size, so memory used by a
//! decode is proportional to bytes actually received, and bounded.
//! Decompression is bounded the same way: the declared plain length must
//! be at most the maximum frame size, output beyond it is an error (never
//! an allocation), LZ4 output is bounded by LZ4's maximum expansion of the
//! bytes received, ZSTD output grows only as data actually decompresses,
//! and ZSTD's window is limited to the maximum frame size. A
//! decompression bomb is a [`FrameError`], not an out-of-memory.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;

use bytes::{BufMut, BytesMut};
use dcf_core::{
    AppendRequest, AppendResponse, Entry, EntryKind, Envelope, LogTail, LogTailResponse, Message,
    NodeId, VoteRequest, VoteResponse,
};

use crate::error::FrameError;
use crate::header::{Compression, FrameHeader, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::wire::{HostEnvelope, HostMessage, SnapshotStatus, Wire};

const KIND_HELLO: u8 = 1;
const KIND_BATCH: u8 = 2;

const TAG_VOTE_REQUEST: u8 = 1;
const TAG_VOTE_RESPONSE: u8 = 2;
const TAG_APPEND: u8 = 3;
const TAG_APPEND_RESPONSE: u8 = 4;
const TAG_TIMEOUT_NOW: u8 = 5;
const TAG_FORWARD: u8 = 6;
const TAG_FORWARD_REPLY: u8 = 7;
const TAG_USER: u8 = 8;
const TAG_WORK_MODE_REPORT: u8 = 9;
const TAG_LOG_TAIL: u8 = 10;
const TAG_LOG_TAIL_RESPONSE: u8 = 11;
const TAG_SNAPSHOT_CHUNK: u8 = 12;
const TAG_SNAPSHOT_ACK: u8 = 13;

/// stream + from + to + tag.
const ENVELOPE_FIXED: usize = 4 + 4 + 4 + 1;
/// The smallest possible envelope (an empty User message); bounds envelope counts.
const MIN_ENVELOPE: usize = ENVELOPE_FIXED + 4;
/// term + index + key + kind + len: the smallest entry; bounds entry counts.
const ENTRY_FIXED: usize = 8 + 8 + 8 + 1 + 4;
/// kind + count.
const BATCH_FIXED: usize = 1 + 4;
/// kind + from + to.
const HELLO_LEN: usize = 1 + 4 + 4;

/// Batch payloads smaller than this are sent plain even when compression
/// is on: they gain little and would cost a compressor call per heartbeat.
pub const MIN_COMPRESS: usize = 256;
/// The `raw_len:u32` prefix of a compressed payload.
const RAW_LEN: usize = 4;
/// An upper bound of LZ4's expansion: a match of n bytes costs at least
/// about n / 255 input bytes (one length byte per 255), plus a few bytes
/// per sequence. A declared plain length above `LZ4_MAX_RATIO` × input
/// (+ slack) cannot be honest and is refused before allocating for it.
const LZ4_MAX_RATIO: usize = 264;

/// The first frame on every connection: who is talking, and to whom it
/// thinks it is talking. The receiver drops the connection if `from` is not
/// a member it knows or `to` is not itself (a stale address that now points
/// at another node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub from: NodeId,
    pub to: NodeId,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Batch(Vec<Wire>),
}

/// What [`Codec::encode_batches`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Frames appended to the output.
    pub frames: usize,
    /// Envelopes written into those frames.
    pub envelopes: usize,
    /// Envelopes that alone exceed the maximum frame size and were skipped.
    pub oversize: usize,
    /// Of the frames, those sent compressed.
    pub compressed: usize,
}

/// Encoder and decoder of frames, parameterised by the maximum payload size
/// and the compression used when encoding batches (decoding accepts every
/// algorithm, whatever this codec sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    max_frame: usize,
    compression: Compression,
    level: i32,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(DEFAULT_MAX_FRAME)
    }
}

impl Codec {
    /// A codec accepting payloads of at most `max_frame` bytes (clamped to
    /// `u32::MAX`, the largest length the header can carry, and to at least
    /// the size of a hello so a connection can always be opened).
    pub fn new(max_frame: usize) -> Codec {
        Codec {
            max_frame: max_frame.clamp(HELLO_LEN, u32::MAX as usize),
            compression: Compression::None,
            level: 1,
        }
    }

    /// The same codec, compressing batch frames of at least
    /// [`MIN_COMPRESS`] plain bytes with `compression` at `level` (ZSTD's
    /// level; LZ4 has one speed and ignores it). Levels outside
    /// [`Compression::level_range`] are clamped into it.
    pub fn with_compression(self, compression: Compression, level: i32) -> Codec {
        let r = compression.level_range();
        Codec {
            compression,
            level: level.clamp(*r.start(), *r.end()),
            ..self
        }
    }

    /// The algorithm this codec compresses batches with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The largest payload this codec encodes or accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes `msg` takes inside a batch payload.
    pub fn envelope_len(msg: &Wire) -> usize {
        ENVELOPE_FIXED
            + match msg {
                Wire::Consensus(env) => match &env.msg {
                    Message::VoteRequest(_) => 8 + 1 + 8 + 8 + 1,
                    Message::VoteResponse(_) => 8 + 1 + 1,
                    Message::Append(AppendRequest { entries, .. }) => {
                        7 * 8 + 1 + entries_len(entries)
                    }
                    Message::LogTail(LogTail { entries, .. }) => 5 * 8 + entries_len(entries),
                    Message::LogTailResponse(_) => 8 + 1 + 8,
                    Message::AppendResponse(_) => 8 + 1 + 4 * 8,
                    Message::TimeoutNow { .. } => 8,
                    Message::WorkModeReport { .. } => 8 + 1,
                },
                Wire::Host(env) => match &env.msg {
                    HostMessage::SnapshotChunk { members, data, .. } => {
                        4 * 8 + 4 + 4 + members.len() + 4 + data.len()
                    }
                    HostMessage::SnapshotAck { .. } => 3 * 8 + 1,
                    HostMessage::Forward { data, .. } => 8 + 8 + 4 + data.len(),
                    HostMessage::ForwardReply { .. } => 8 + 1 + 8 + 8 + 4,
                    HostMessage::User { data } => 4 + data.len(),
                },
            }
    }

    /// Appends a hello frame to `out`.
    pub fn encode_hello(&self, hello: Hello, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + HELLO_LEN);
        out.put_slice(&FrameHeader::new(Compression::None, HELLO_LEN).to_bytes());
        out.put_u8(KIND_HELLO);
        out.put_u32_le(hello.from);
        out.put_u32_le(hello.to);
    }

    /// Appends one batch frame holding all of `envs` to `out`, or fails with
    /// [`FrameError::Oversize`] (leaving `out` as it was) if it would exceed
    /// the maximum frame size. Also fails if an entry's data or an entry
    /// count does not fit in a u32 (only possible with absurd sizes).
    pub fn encode_batch(&self, envs: &[Wire], out: &mut BytesMut) -> Result<(), FrameError> {
        let len = BATCH_FIXED + envs.iter().map(Codec::envelope_len).sum::<usize>();
        if len > self.max_frame {
            return Err(FrameError::Oversize {
                len,
                max: self.max_frame,
            });
        }
        let count = u32::try_from(envs.len()).map_err(|_| FrameError::Oversize {
            len,
            max: self.max_frame,
        })?;
        let start = out.len();
        out.reserve(HEADER_LEN + len);
        out.put_slice(&FrameHeader::new(Compression::None, len).to_bytes());
        out.put_u8(KIND_BATCH);
        out.put_u32_le(count);
        for env in envs {
            put_envelope(env, out);
        }
        debug_assert_eq!(out.len() - start, HEADER_LEN + len);
        self.compress_frame(out, start);
        Ok(())
    }

    /// Appends `envs` to `out` as as few batch frames as the maximum frame
    /// size allows, in order. An envelope too big for any frame is skipped
    /// and counted in the report (the caller counts it as a drop): consensus
    /// tolerates a lost message, and one giant message must not wedge the
    /// peer's queue.
    pub fn encode_batches(&self, envs: &[Wire], out: &mut BytesMut) -> BatchReport {
        let mut report = BatchReport::default();
        let mut chunk: Vec<&Wire> = Vec::new();
        let mut chunk_len = BATCH_FIXED;
        for env in envs {
            let l = Codec::envelope_len(env);
            if BATCH_FIXED + l > self.max_frame {
                report.oversize += 1;
                continue;
            }
            if chunk_len + l > self.max_frame {
                self.put_chunk(&chunk, chunk_len, out, &mut report);
                chunk.clear();
                chunk_len = BATCH_FIXED;
            }
            chunk.push(env);
            chunk_len += l;
        }
        if !chunk.is_empty() {
            self.put_chunk(&chunk, chunk_len, out, &mut report);
        }
        report
    }

    fn put_chunk(&self, chunk: &[&Wire], len: usize, out: &mut BytesMut, r: &mut BatchReport) {
        let start = out.len();
        out.reserve(HEADER_LEN + len);
        out.put_slice(&FrameHeader::new(Compression::None, len).to_bytes());
        out.put_u8(KIND_BATCH);
        // chunk.len() <= max_frame / MIN_ENVELOPE < u32::MAX.
        out.put_u32_le(chunk.len() as u32);
        for env in chunk {
            put_envelope(env, out);
        }
        if self.compress_frame(out, start) {
            r.compressed += 1;
        }
        r.frames += 1;
        r.envelopes += chunk.len();
    }

    /// Decodes exactly one whole frame (header and payload) from `buf`;
    /// bytes after it are an error.
    pub fn decode(&self, buf: &[u8]) -> Result<Frame, FrameError> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Truncated {
                what: "frame header",
                needed: HEADER_LEN,
                remaining: buf.len(),
            });
        };
        let header = FrameHeader::parse(head, self.max_frame)?;
        let rest = &buf[HEADER_LEN..];
        if rest.len() < header.payload_len {
            return Err(FrameError::Truncated {
                what: "payload",
                needed: header.payload_len,
                remaining: rest.len(),
            });
        }
        if rest.len() > header.payload_len {
            return Err(FrameError::TrailingBytes(rest.len() - header.payload_len));
        }
        self.decode_payload(&header, rest)
    }

    /// Decodes the payload of a frame whose header was already parsed (the
    /// streaming reader parses the header first, then reads the payload).
    pub fn decode_payload(
        &self,
        header: &FrameHeader,
        payload: &[u8],
    ) -> Result<Frame, FrameError> {
        if payload.len() > self.max_frame {
            return Err(FrameError::Oversize {
                len: payload.len(),
                max: self.max_frame,
            });
        }
        if payload.len() != header.payload_len {
            return Err(FrameError::Truncated {
                what: "payload",
                needed: header.payload_len,
                remaining: payload.len(),
            });
        }
        let plain: Cow<'_, [u8]> = match header.compression {
            Compression::None => Cow::Borrowed(payload),
            c => Cow::Owned(self.decompress(c, payload)?),
        };
        let mut r = Reader { buf: &plain };
        let frame = match r.u8("frame kind")? {
            KIND_HELLO => Frame::Hello(Hello {
                from: r.u32("hello from")?,
                to: r.u32("hello to")?,
            }),
            KIND_BATCH => {
                let count = r.count("envelope", MIN_ENVELOPE)?;
                let mut envs = Vec::with_capacity(count);
                for _ in 0..count {
                    envs.push(get_envelope(&mut r)?);
                }
                Frame::Batch(envs)
            }
            k => return Err(FrameError::UnknownFrameKind(k)),
        };
        if !r.buf.is_empty() {
            return Err(FrameError::TrailingBytes(r.buf.len()));
        }
        Ok(frame)
    }
}

impl Codec {
    /// Replaces the plain frame that starts at `out[start]` (header and
    /// payload) by its compressed form, if compression is on, the payload
    /// is big enough and compressing makes it smaller; true if it did. A
    /// compressor error (not expected) leaves the frame plain: it is still
    /// valid.
    fn compress_frame(&self, out: &mut BytesMut, start: usize) -> bool {
        let plain = &out[start + HEADER_LEN..];
        if self.compression == Compression::None || plain.len() < MIN_COMPRESS {
            return false;
        }
        let packed = match self.compression {
            Compression::None => return false,
            Compression::Lz4 => lz4_flex::block::compress(plain),
            Compression::Zstd => match zstd_compress(plain, self.level) {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "zstd compression failed, sending plain");
                    return false;
                }
            },
        };
        let len = RAW_LEN + packed.len();
        if len >= plain.len() {
            return false;
        }
        // plain.len() <= max_frame <= u32::MAX.
        let raw_len = plain.len() as u32;
        out.truncate(start);
        out.put_slice(&FrameHeader::new(self.compression, len).to_bytes());
        out.put_u32_le(raw_len);
        out.put_slice(&packed);
        true
    }

    /// Decompresses a payload of algorithm `c`, never producing (or
    /// allocating for) more than the maximum frame size.
    fn decompress(&self, c: Compression, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let err = |reason: String| FrameError::Decompress {
            algorithm: c,
            reason,
        };
        let Some((raw, data)) = payload.split_first_chunk::<RAW_LEN>() else {
            return Err(FrameError::Truncated {
                what: "compressed payload length",
                needed: RAW_LEN,
                remaining: payload.len(),
            });
        };
        let raw_len = u32::from_le_bytes(*raw) as usize;
        if raw_len > self.max_frame {
            return Err(FrameError::Oversize {
                len: raw_len,
                max: self.max_frame,
            });
        }
        let out = match c {
            Compression::None => data.to_vec(),
            Compression::Lz4 => {
                if raw_len > data.len().saturating_mul(LZ4_MAX_RATIO) + 64 {
                    return Err(err(format!(
                        "declared {raw_len} plain bytes cannot come from {} LZ4 bytes",
                        data.len()
                    )));
                }
                let mut buf = vec![0u8; raw_len];
                let n = lz4_flex::block::decompress_into(data, &mut buf)
                    .map_err(|e| err(e.to_string()))?;
                buf.truncate(n);
                buf
            }
            Compression::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                    .map_err(|e| err(e.to_string()))?;
                dec.window_log_max(zstd_window_log(self.max_frame))
                    .map_err(|e| err(e.to_string()))?;
                // Start small and let the buffer grow with the data that
                // actually comes out; one byte more than declared is
                // enough to see a lie.
                let mut buf = Vec::with_capacity(raw_len.min(data.len().saturating_mul(8)));
                dec.take(raw_len as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| err(e.to_string()))?;
                buf
            }
        };
        if out.len() != raw_len {
            return Err(err(format!(
                "declared {raw_len} plain bytes, got {}{}",
                out.len(),
                if out.len() > raw_len { " or more" } else { "" }
            )));
        }
        Ok(out)
    }
}

/// The largest ZSTD window (log2) a frame of at most `max_frame` plain
/// bytes needs: the encoder shrinks its window to the input size, so an
/// honest frame never needs more, and a hostile one cannot make the
/// decoder allocate a 128 MiB window (zstd's default limit).
fn zstd_window_log(max_frame: usize) -> u32 {
    let log = usize::BITS - max_frame.saturating_sub(1).leading_zeros();
    log.clamp(10, 31)
}

thread_local! {
    /// One ZSTD compression context per thread (and level): creating one
    /// per batch would allocate its tables every time.
    static ZSTD_CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    ZSTD_CCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(data),
            None => zstd::bulk::compress(data, level),
        }
    })
}

fn put_bool(out: &mut BytesMut, b: bool) {
    out.put_u8(u8::from(b));
}

/// Bytes of a counted list of entries.
fn entries_len(entries: &[Entry]) -> usize {
    4 + entries
        .iter()
        .map(|e| ENTRY_FIXED + e.data.len())
        .sum::<usize>()
}

fn put_entries(out: &mut BytesMut, entries: &[Entry]) {
    // Bounded by the frame size check done by the caller (< u32::MAX).
    out.put_u32_le(entries.len() as u32);
    for e in entries {
        out.put_u64_le(e.term);
        out.put_u64_le(e.index);
        out.put_u64_le(e.key);
        out.put_u8(e.kind as u8);
        out.put_u32_le(e.data.len() as u32);
        out.put_slice(&e.data);
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

fn get_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, FrameError> {
    let count = r.count("entry", ENTRY_FIXED)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let term = r.u64("entry term")?;
        let index = r.u64("entry index")?;
        let key = r.u64("entry key")?;
        let k = r.u8("entry kind")?;
        let kind = EntryKind::from_u8(k).ok_or(FrameError::UnknownEntryKind(k))?;
        let len = r.u32("entry length")? as usize;
        let data = r.bytes("entry data", len)?.to_vec();
        entries.push(Entry {
            term,
            index,
            key,
            kind,
            data,
        });
    }
    Ok(entries)
}

fn put_envelope(msg: &Wire, out: &mut BytesMut) {
    out.put_u32_le(msg.stream());
    out.put_u32_le(msg.from_node());
    out.put_u32_le(msg.to_node());
    match msg {
        Wire::Consensus(env) => put_message(&env.msg, out),
        Wire::Host(env) => put_host_message(&env.msg, out),
    }
}

fn put_message(msg: &Message, out: &mut BytesMut) {
    match msg {
        Message::VoteRequest(VoteRequest {
            term,
            pre_vote,
            last_index,
            last_term,
            transfer,
        }) => {
            out.put_u8(TAG_VOTE_REQUEST);
            out.put_u64_le(*term);
            put_bool(out, *pre_vote);
            out.put_u64_le(*last_index);
            out.put_u64_le(*last_term);
            put_bool(out, *transfer);
        }
        Message::VoteResponse(VoteResponse {
            term,
            pre_vote,
            granted,
        }) => {
            out.put_u8(TAG_VOTE_RESPONSE);
            out.put_u64_le(*term);
            put_bool(out, *pre_vote);
            put_bool(out, *granted);
        }
        Message::Append(AppendRequest {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            first_index,
            min_applied,
            seq,
            minority,
        }) => {
            out.put_u8(TAG_APPEND);
            for v in [
                *term,
                *prev_index,
                *prev_term,
                *commit,
                *first_index,
                *min_applied,
                *seq,
            ] {
                out.put_u64_le(v);
            }
            put_bool(out, *minority);
            put_entries(out, entries);
        }
        Message::LogTail(LogTail {
            term,
            prev_index,
            prev_term,
            entries,
            last_index,
            last_term,
        }) => {
            out.put_u8(TAG_LOG_TAIL);
            for v in [*term, *prev_index, *prev_term, *last_index, *last_term] {
                out.put_u64_le(v);
            }
            put_entries(out, entries);
        }
        Message::LogTailResponse(LogTailResponse {
            term,
            success,
            index,
        }) => {
            out.put_u8(TAG_LOG_TAIL_RESPONSE);
            out.put_u64_le(*term);
            put_bool(out, *success);
            out.put_u64_le(*index);
        }
        Message::AppendResponse(AppendResponse {
            term,
            success,
            index,
            last_index,
            applied_index,
            seq,
        }) => {
            out.put_u8(TAG_APPEND_RESPONSE);
            out.put_u64_le(*term);
            put_bool(out, *success);
            out.put_u64_le(*index);
            out.put_u64_le(*last_index);
            out.put_u64_le(*applied_index);
            out.put_u64_le(*seq);
        }
        Message::TimeoutNow { term } => {
            out.put_u8(TAG_TIMEOUT_NOW);
            out.put_u64_le(*term);
        }
        Message::WorkModeReport { term, minority } => {
            out.put_u8(TAG_WORK_MODE_REPORT);
            out.put_u64_le(*term);
            put_bool(out, *minority);
        }
    }
}

fn put_host_message(msg: &HostMessage, out: &mut BytesMut) {
    match msg {
        HostMessage::SnapshotChunk {
            index,
            term,
            members,
            total,
            offset,
            crc,
            data,
        } => {
            out.put_u8(TAG_SNAPSHOT_CHUNK);
            for v in [*index, *term, *total, *offset] {
                out.put_u64_le(v);
            }
            out.put_u32_le(*crc);
            put_bytes(out, members);
            put_bytes(out, data);
        }
        HostMessage::SnapshotAck {
            index,
            term,
            next_offset,
            status,
        } => {
            out.put_u8(TAG_SNAPSHOT_ACK);
            for v in [*index, *term, *next_offset] {
                out.put_u64_le(v);
            }
            out.put_u8(*status as u8);
        }
        HostMessage::Forward { req, key, data } => {
            out.put_u8(TAG_FORWARD);
            out.put_u64_le(*req);
            out.put_u64_le(*key);
            out.put_u32_le(data.len() as u32);
            out.put_slice(data);
        }
        HostMessage::ForwardReply {
            req,
            accepted,
            term,
            index,
            leader,
        } => {
            out.put_u8(TAG_FORWARD_REPLY);
            out.put_u64_le(*req);
            put_bool(out, *accepted);
            out.put_u64_le(*term);
            out.put_u64_le(*index);
            out.put_u32_le(*leader);
        }
        HostMessage::User { data } => {
            out.put_u8(TAG_USER);
            out.put_u32_le(data.len() as u32);
            out.put_slice(data);
        }
    }
}

fn get_envelope(r: &mut Reader<'_>) -> Result<Wire, FrameError> {
    let stream = r.u32("stream")?;
    let from = r.u32("from")?;
    let to = r.u32("to")?;
    let tag = r.u8("message tag")?;
    Ok(match get_host_message(tag, r)? {
        Some(msg) => Wire::Host(HostEnvelope {
            stream,
            from,
            to,
            msg,
        }),
        None => Wire::Consensus(Envelope {
            stream,
            from,
            to,
            msg: get_message(tag, r)?,
        }),
    })
}

/// The consensus message with tag `tag`.
fn get_message(tag: u8, r: &mut Reader<'_>) -> Result<Message, FrameError> {
    Ok(match tag {
        TAG_VOTE_REQUEST => Message::VoteRequest(VoteRequest {
            term: r.u64("term")?,
            pre_vote: r.bool()?,
            last_index: r.u64("last_index")?,
            last_term: r.u64("last_term")?,
            transfer: r.bool()?,
        }),
        TAG_VOTE_RESPONSE => Message::VoteResponse(VoteResponse {
            term: r.u64("term")?,
            pre_vote: r.bool()?,
            granted: r.bool()?,
        }),
        TAG_APPEND => {
            let term = r.u64("term")?;
            let prev_index = r.u64("prev_index")?;
            let prev_term = r.u64("prev_term")?;
            let commit = r.u64("commit")?;
            let first_index = r.u64("first_index")?;
            let min_applied = r.u64("min_applied")?;
            let seq = r.u64("seq")?;
            let minority = r.bool()?;
            let entries = get_entries(r)?;
            Message::Append(AppendRequest {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
                first_index,
                min_applied,
                seq,
                minority,
            })
        }
        TAG_APPEND_RESPONSE => Message::AppendResponse(AppendResponse {
            term: r.u64("term")?,
            success: r.bool()?,
            index: r.u64("index")?,
            last_index: r.u64("last_index")?,
            applied_index: r.u64("applied_index")?,
            seq: r.u64("seq")?,
        }),
        TAG_TIMEOUT_NOW => Message::TimeoutNow {
            term: r.u64("term")?,
        },
        TAG_WORK_MODE_REPORT => Message::WorkModeReport {
            term: r.u64("term")?,
            minority: r.bool()?,
        },
        TAG_LOG_TAIL => {
            let term = r.u64("term")?;
            let prev_index = r.u64("prev_index")?;
            let prev_term = r.u64("prev_term")?;
            let last_index = r.u64("last_index")?;
            let last_term = r.u64("last_term")?;
            let entries = get_entries(r)?;
            Message::LogTail(LogTail {
                term,
                prev_index,
                prev_term,
                entries,
                last_index,
                last_term,
            })
        }
        TAG_LOG_TAIL_RESPONSE => Message::LogTailResponse(LogTailResponse {
            term: r.u64("term")?,
            success: r.bool()?,
            index: r.u64("index")?,
        }),
        t => return Err(FrameError::UnknownMessageTag(t)),
    })
}

/// The host message with tag `tag`, or `None` if `tag` is not a host
/// message's (nothing is read then).
fn get_host_message(tag: u8, r: &mut Reader<'_>) -> Result<Option<HostMessage>, FrameError> {
    Ok(Some(match tag {
        TAG_FORWARD => {
            let req = r.u64("req")?;
            let key = r.u64("key")?;
            let len = r.u32("forward length")? as usize;
            let data = r.bytes("forward data", len)?.to_vec();
            HostMessage::Forward { req, key, data }
        }
        TAG_FORWARD_REPLY => HostMessage::ForwardReply {
            req: r.u64("req")?,
            accepted: r.bool()?,
            term: r.u64("term")?,
            index: r.u64("index")?,
            leader: r.u32("leader")?,
        },
        TAG_USER => {
            let len = r.u32("user message length")? as usize;
            let data = r.bytes("user message data", len)?.to_vec();
            HostMessage::User { data }
        }
        TAG_SNAPSHOT_CHUNK => {
            let index = r.u64("snapshot index")?;
            let term = r.u64("snapshot term")?;
            let total = r.u64("snapshot size")?;
            let offset = r.u64("chunk offset")?;
            let crc = r.u32("chunk crc")?;
            let len = r.u32("members length")? as usize;
            let members = r.bytes("members", len)?.to_vec();
            let len = r.u32("chunk length")? as usize;
            let data = r.bytes("chunk data", len)?.to_vec();
            HostMessage::SnapshotChunk {
                index,
                term,
                members,
                total,
                offset,
                crc,
                data,
            }
        }
        TAG_SNAPSHOT_ACK => {
            let index = r.u64("snapshot index")?;
            let term = r.u64("snapshot term")?;
            let next_offset = r.u64("next offset")?;
            let s = r.u8("snapshot status")?;
            let status = SnapshotStatus::from_u8(s).ok_or(FrameError::UnknownMessageTag(s))?;
            HostMessage::SnapshotAck {
                index,
                term,
                next_offset,
                status,
            }
        }
        _ => return Ok(None),
    }))
}

/// A cursor over the payload whose every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated {
                what,
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FrameError> {
        let b = self.bytes(what, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(FrameError::InvalidBool(b)),
        }
    }

    /// Reads a count of items each at least `min_item` bytes long and
    /// rejects it if that many cannot fit in what remains, so the caller
    /// may allocate `count` slots safely.
    fn count(&mut self, what: &'static str, min_item: usize) -> Result<usize, FrameError> {
        let count = self.u32(what)?;
        let fits = self.buf.len() / min_item;
        if count as usize > fits {
            return Err(FrameError::CountTooLarge {
                what,
                count,
                remaining: self.buf.len(),
            });
        }
        Ok(count as usize)
    }
}
