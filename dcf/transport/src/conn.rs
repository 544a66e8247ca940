//! The protocol of one connection, over any byte stream.
//!
//! Everything here is generic over `AsyncRead` / `AsyncWrite` rather than
//! tied to `TcpStream`: [`crate::tcp`] passes a TCP stream or a TLS stream
//! over it (after the handshake), and tests use in-memory pipes.
//! Compression lives at the frame level ([`crate::codec`]) and needs
//! nothing here beyond counting.
//!
//! A connection is one-way: the connecting side sends a hello, then batch
//! frames; the accepting side only reads. The accepting side never writes,
//! so the connecting side treats any read result as "the peer closed" (EOF
//! or error) and reconnects at once instead of losing its next batch to a
//! dead socket.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::Wire;
use bytes::BytesMut;
use dcf_core::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::codec::{Codec, Frame, Hello};
use crate::error::FrameError;
use crate::header::{Compression, FrameHeader, HEADER_LEN};
use crate::stats::Counters;

/// Initial size of a payload buffer; it then grows geometrically as bytes
/// actually arrive, never beyond the declared (and bounded) payload length,
/// so a header that lies about its length costs no memory.
const READ_CHUNK: usize = 64 * 1024;
/// Payload buffers above this are released after use rather than kept.
const KEEP_BUF: usize = 1024 * 1024;

/// Why reading from a connection stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The connection failed or ended in the middle of a frame.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// A valid frame that breaks the connection protocol (forged `from`,
    /// misaddressed envelope, a second hello, a batch before the hello).
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Reads whole frames from a byte stream.
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    codec: Codec,
    buf: Vec<u8>,
    /// Whether the last frame returned by `next` came compressed.
    pub last_compressed: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(r: R, codec: Codec) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(READ_CHUNK, r),
            codec,
            buf: Vec::new(),
            last_compressed: false,
        }
    }

    /// The next frame and its size on the wire, or `None` on a clean end
    /// of stream between frames. An end of stream inside a frame is an
    /// I/O error (`UnexpectedEof`), not a [`FrameError`]: it is what a
    /// sender that crashed mid-write looks like, not a malformed frame.
    pub async fn next(&mut self) -> Result<Option<(Frame, usize)>, ReadError> {
        let mut head = [0u8; HEADER_LEN];
        let n = self.inner.read(&mut head).await?;
        if n == 0 {
            return Ok(None);
        }
        self.inner.read_exact(&mut head[n..]).await?;
        let header = FrameHeader::parse(&head, self.codec.max_frame())?;
        self.last_compressed = header.compression != Compression::None;
        let len = header.payload_len;
        self.buf.clear();
        let mut filled = 0;
        while filled < len {
            let target = len.min((filled * 2).max(READ_CHUNK));
            self.buf.resize(target, 0);
            self.inner.read_exact(&mut self.buf[filled..target]).await?;
            filled = target;
        }
        let frame = self.codec.decode_payload(&header, &self.buf[..len]);
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        Ok(Some((frame?, HEADER_LEN + len)))
    }
}

/// Reads batch frames after a connection's hello and forwards their
/// envelopes to `inbound`, until the peer closes (`Ok`) or misbehaves.
///
/// A whole frame is checked before any of it is forwarded, so a forged
/// frame delivers nothing. `on_first_batch` runs once, when the first valid
/// batch arrived (the point where the connection has proved it is a
/// working sender, not just something that can write a hello). `inbound.send` is awaited: when the consumer is
/// slow the connection stops being read and TCP flow control pushes back on
/// the sender, instead of this task buffering without bound.
pub(crate) async fn forward_batches<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    hello: Hello,
    local: NodeId,
    inbound: &mpsc::Sender<Wire>,
    counters: &Counters,
    on_first_batch: impl FnOnce(),
) -> Result<(), ReadError> {
    let mut on_first_batch = Some(on_first_batch);
    while let Some((frame, size)) = reader.next().await? {
        let envs = match frame {
            Frame::Batch(envs) => envs,
            Frame::Hello(h) => {
                return Err(ReadError::Protocol(format!("second hello {h:?}")));
            }
        };
        if let Some(bad) = envs
            .iter()
            .find(|e| e.from_node() != hello.from || e.to_node() != local)
        {
            return Err(ReadError::Protocol(format!(
                "envelope from {} to {} on a connection from {} to {}",
                bad.from_node(),
                bad.to_node(),
                hello.from,
                local
            )));
        }
        Counters::inc(&counters.frames_received);
        Counters::add(&counters.bytes_received, size as u64);
        if reader.last_compressed {
            Counters::inc(&counters.compressed_frames_received);
        }
        if let Some(f) = on_first_batch.take() {
            f();
        }
        for env in envs {
            if inbound.send(env).await.is_err() {
                // The node dropped its receiver: it is shutting down.
                return Ok(());
            }
            Counters::inc(&counters.envelopes_received);
        }
    }
    Ok(())
}

/// How an outgoing session ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The queue's sender is gone: the peer was removed.
    QueueClosed,
    /// The caller's `stop` future fired (e.g. the peer's address changed).
    Stopped,
    /// The peer closed the connection (or wrote to it, which it must not).
    PeerClosed,
    /// Writing failed.
    Io(io::Error),
    /// Writing took longer than the write timeout.
    TimedOut,
}

/// Parameters of an outgoing session.
pub(crate) struct WriterParams {
    pub hello: Hello,
    pub codec: Codec,
    pub write_timeout: Duration,
    /// At most this many envelopes are drained into one batch.
    pub max_batch: usize,
}

/// Runs one outgoing connection: writes the hello, then repeatedly drains
/// everything queued for the peer and writes it as batch frames, until
/// something ends the session. Envelopes taken from the queue for a write
/// that fails are lost (consensus retransmits).
pub(crate) async fn run_writer<S, F>(
    stream: S,
    p: &WriterParams,
    rx: &mut mpsc::Receiver<Wire>,
    counters: &Arc<Counters>,
    on_connected: impl FnOnce(),
    stop: F,
) -> SessionEnd
where
    S: AsyncRead + AsyncWrite,
    F: Future<Output = ()>,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut out = BytesMut::new();
    p.codec.encode_hello(p.hello, &mut out);
    let hello_len = out.len() as u64;
    if let Some(end) = write_out(&mut wr, &mut out, p.write_timeout).await {
        return end;
    }
    Counters::inc(&counters.frames_sent);
    Counters::add(&counters.bytes_sent, hello_len);
    on_connected();

    tokio::pin!(stop);
    let mut probe = [0u8; 64];
    let mut batch: Vec<Wire> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return SessionEnd::Stopped,
            r = rd.read(&mut probe) => match r {
                Ok(_) => return SessionEnd::PeerClosed,
                Err(e) => return SessionEnd::Io(e),
            },
            env = rx.recv() => {
                let Some(env) = env else { return SessionEnd::QueueClosed };
                batch.clear();
                batch.push(env);
                while batch.len() < p.max_batch {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                out.clear();
                let report = p.codec.encode_batches(&batch, &mut out);
                if report.oversize > 0 {
                    tracing::warn!(
                        peer = p.hello.to,
                        count = report.oversize,
                        max_frame = p.codec.max_frame(),
                        "dropping envelopes larger than the maximum frame size"
                    );
                    Counters::add(&counters.dropped_oversize, report.oversize as u64);
                }
                let bytes = out.len() as u64;
                if let Some(end) = write_out(&mut wr, &mut out, p.write_timeout).await {
                    return end;
                }
                Counters::add(&counters.frames_sent, report.frames as u64);
                Counters::add(&counters.compressed_frames_sent, report.compressed as u64);
                Counters::add(&counters.envelopes_sent, report.envelopes as u64);
                Counters::add(&counters.bytes_sent, bytes);
                if batch.capacity() > p.max_batch.max(1024) {
                    batch = Vec::new();
                }
            }
        }
    }
}

/// Writes and flushes `out` within `timeout`; `None` on success.
async fn write_out<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut BytesMut,
    timeout: Duration,
) -> Option<SessionEnd> {
    if out.is_empty() {
        return None;
    }
    let res = tokio::time::timeout(timeout, async {
        w.write_all(out).await?;
        w.flush().await
    })
    .await;
    match res {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(SessionEnd::Io(e)),
        Err(_) => Some(SessionEnd::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcf_core::{Envelope, Message};

    fn env(seq: u64) -> Wire {
        Wire::Consensus(Envelope {
            stream: 1,
            from: 1,
            to: 2,
            msg: Message::TimeoutNow { term: seq },
        })
    }

    /// The protocol runs over any byte stream (here an in-memory pipe):
    /// the seam a TLS stream will use.
    #[tokio::test]
    async fn writer_and_reader_over_an_in_memory_pipe() {
        let (a, b) = tokio::io::duplex(1024);
        let counters = Arc::new(Counters::default());
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..10 {
            tx.try_send(env(i)).unwrap();
        }
        drop(tx);
        let params = WriterParams {
            hello: Hello { from: 1, to: 2 },
            codec: Codec::default(),
            write_timeout: Duration::from_secs(5),
            max_batch: 16,
        };
        let c2 = counters.clone();
        let writer = tokio::spawn(async move {
            run_writer(a, &params, &mut rx, &c2, || {}, std::future::pending()).await
        });
        let mut reader = FrameReader::new(b, Codec::default());
        let (hello, _) = reader.next().await.unwrap().unwrap();
        assert_eq!(hello, Frame::Hello(Hello { from: 1, to: 2 }));
        let (inbound_tx, mut inbound_rx) = mpsc::channel(16);
        let mut first = 0;
        forward_batches(
            &mut reader,
            Hello { from: 1, to: 2 },
            2,
            &inbound_tx,
            &counters,
            || first += 1,
        )
        .await
        .unwrap();
        assert!(matches!(writer.await.unwrap(), SessionEnd::QueueClosed));
        assert_eq!(first, 1);
        for i in 0..10 {
            assert_eq!(inbound_rx.recv().await.unwrap(), env(i));
        }
        assert_eq!(counters.snapshot().envelopes_sent, 10);
    }
}
