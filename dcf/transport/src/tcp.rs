//! TCP connection management: the listener, one outgoing connection per
//! peer, membership changes and shutdown.
//!
//! Shape: every peer has a bounded queue and one writer task that owns the
//! outgoing connection to it (so envelopes to one peer leave in the order
//! they were sent, batched); every accepted connection has one reader task.
//! `send` only ever does a `try_send` on a queue, so consensus code never
//! blocks on the network: a full queue means the peer is slow or dead, and
//! the message is dropped and counted.
//!
//! Ordering: envelopes to one peer are written in order on one connection.
//! A write failure loses the batch being written, and after a reconnect the
//! receiver closes the older connection from the same node once the new
//! one carries a valid batch. So a message may be lost, and one peer's
//! messages may be reordered only across a reconnect, in the short window
//! before the old connection is closed. Consensus tolerates both.
//!
//! TLS: with [`TransportConfig::tls`] set, every connection runs a TLS
//! handshake right after the TCP connect / accept, in the connection's own
//! task (so a slow or failing handshake never holds up the accept loop or
//! other peers), and the hello and batches go inside TLS. A failed
//! handshake (untrusted certificate, plain TCP on a TLS port) is logged
//! with `warn!`, counted in [`TransportStats::tls_failures`], and costs
//! only that connection; the writer retries with back-off as after any
//! connect failure.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::wire::Wire;
use dcf_core::NodeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::codec::{Codec, Frame, Hello};
use crate::config::TransportConfig;
use crate::conn::{forward_batches, run_writer, FrameReader, ReadError, SessionEnd, WriterParams};
use crate::error::TransportError;
use crate::stats::{Counters, TransportStats};
use crate::tls::{server_name, TlsContext};

/// A connection's byte stream after any handshake: TCP or TLS over TCP.
/// Boxed so the protocol code exists once for both (one virtual call per
/// buffered read or write is nothing next to a syscall).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

/// The rustls error inside an I/O error from a TLS stream, if any (e.g.
/// the alert a peer sends when it refuses our certificate).
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// A running transport of one node, shared by all its streams.
///
/// Dropping it stops every task like [`Transport::shutdown`] does, but
/// without waiting for them.
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handle and the tasks.
struct Shared {
    cfg: TransportConfig,
    codec: Codec,
    /// Built once at start from `cfg.tls`; `None` = plain TCP.
    tls: Option<TlsContext>,
    counters: Arc<Counters>,
    inbound: mpsc::Sender<Wire>,
    peers: Mutex<HashMap<NodeId, Peer>>,
    conns: Mutex<HashMap<u64, InConn>>,
    next_conn: AtomicU64,
    closed: AtomicBool,
    /// The runtime the transport was started on: `set_peer` may be called
    /// from threads outside it (the DCF engine thread), so tasks are
    /// spawned through this handle.
    runtime: tokio::runtime::Handle,
}

/// An outgoing peer: its queue, its address (watched by the writer so an
/// address change reconnects at once) and its writer task.
struct Peer {
    tx: mpsc::Sender<Wire>,
    addr: watch::Sender<SocketAddr>,
    task: JoinHandle<()>,
}

/// An accepted connection; `node` is known once its hello was accepted.
struct InConn {
    node: Option<NodeId>,
    task: JoinHandle<()>,
}

/// Locks a mutex, ignoring poisoning: the maps stay consistent because no
/// code panics while holding them, and a transport must keep working.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    /// Binds the listener and starts the accept loop and one writer per
    /// configured peer. Received envelopes go to `inbound`; when it is
    /// full, reading stops (back-pressure on the senders).
    ///
    /// With TLS configured, the CA, certificate, key and CRL files are read
    /// and checked here, so a bad path or malformed PEM fails the start
    /// with a [`TransportError`] naming the file.
    pub async fn start(
        cfg: TransportConfig,
        inbound: mpsc::Sender<Wire>,
    ) -> Result<Transport, TransportError> {
        cfg.validate()?;
        let tls = cfg.tls.as_ref().map(TlsContext::load).transpose()?;
        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|source| TransportError::Bind {
                    addr: cfg.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let initial: Vec<(NodeId, SocketAddr)> = cfg.peers.iter().map(|(k, v)| (*k, *v)).collect();
        let shared = Arc::new(Shared {
            codec: Codec::new(cfg.max_frame).with_compression(cfg.compression, cfg.compress_level),
            tls,
            cfg,
            counters: Arc::new(Counters::default()),
            inbound,
            peers: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        });
        for (id, addr) in initial {
            shared.set_peer(id, addr);
        }
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        info!(
            node = shared.cfg.node_id,
            %local_addr,
            tls = shared.tls.is_some(),
            compression = %shared.cfg.compression,
            "transport listening"
        );
        Ok(Transport {
            shared,
            local_addr,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.shared.cfg.node_id
    }

    /// Queues `msg` (a consensus [`dcf_core::Envelope`] or a
    /// [`crate::HostEnvelope`]) for its destination without ever blocking.
    /// Dropped and counted when the peer's queue is full, the destination
    /// is unknown, or its sender is not this node. A message to this node
    /// itself is handed straight to the inbound channel (dropped if that
    /// is full).
    pub fn send(&self, msg: impl Into<Wire>) {
        let env: Wire = msg.into();
        let s = &self.shared;
        let c = &s.counters;
        if env.from_node() != s.cfg.node_id {
            debug!(
                from = env.from_node(),
                node = s.cfg.node_id,
                "dropping envelope with a foreign from"
            );
            Counters::inc(&c.dropped_invalid);
            return;
        }
        let to = env.to_node();
        if to == s.cfg.node_id {
            if s.inbound.try_send(env).is_err() {
                Counters::inc(&c.dropped_queue_full);
            }
            return;
        }
        let tx = lock(&s.peers).get(&to).map(|p| p.tx.clone());
        let Some(tx) = tx else {
            debug!(to, "dropping envelope to an unknown peer");
            Counters::inc(&c.dropped_unknown_peer);
            return;
        };
        match tx.try_send(env) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(to, "peer queue full, dropping envelope");
                Counters::inc(&c.dropped_queue_full);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!(to, "peer removed, dropping envelope");
                Counters::inc(&c.dropped_unknown_peer);
            }
        }
    }

    /// Adds a peer, or changes its address (the writer then reconnects to
    /// the new address at once). Connections from `node_id` are accepted
    /// from now on. Ignored for this node's own id and after shutdown.
    pub fn set_peer(&self, node_id: NodeId, addr: SocketAddr) {
        self.shared.set_peer(node_id, addr);
    }

    /// Removes a peer: its queue is discarded, its outgoing connection and
    /// any incoming connection from it are closed, and new connections
    /// from it are refused.
    pub fn remove_peer(&self, node_id: NodeId) {
        let s = &self.shared;
        if let Some(p) = lock(&s.peers).remove(&node_id) {
            p.task.abort();
            info!(node = s.cfg.node_id, peer = node_id, "peer removed");
        }
        let victims: Vec<JoinHandle<()>> = {
            let mut conns = lock(&s.conns);
            let ids: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| c.node == Some(node_id))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| conns.remove(&id))
                .map(|c| c.task)
                .collect()
        };
        for t in victims {
            t.abort();
        }
    }

    /// The current peers and their addresses.
    pub fn peers(&self) -> HashMap<NodeId, SocketAddr> {
        lock(&self.shared.peers)
            .iter()
            .map(|(id, p)| (*id, *p.addr.borrow()))
            .collect()
    }

    /// Envelopes queued for all peers and not yet taken by their writers:
    /// the send-queue length DCF's flow control compares with
    /// FLOW_CONTROL_NET_QUEUE_MESSAGE_NUM_THRESHOLD. Cheap (no I/O).
    pub fn queued_messages(&self) -> usize {
        lock(&self.shared.peers)
            .values()
            .map(|p| p.tx.max_capacity() - p.tx.capacity())
            .sum()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting, closes every connection and stops every task, and
    /// waits until they are gone. Queued envelopes are discarded. Later
    /// `send`s are dropped (counted as unknown peer).
    pub async fn shutdown(&self) {
        let tasks = self.shared.stop_all(&self.accept);
        for t in tasks {
            let _ = t.await;
        }
        info!(node = self.shared.cfg.node_id, "transport shut down");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // Without this the tasks (which hold the shared state) would run on.
        let _ = self.shared.stop_all(&self.accept);
    }
}

impl Shared {
    fn set_peer(self: &Arc<Self>, node_id: NodeId, addr: SocketAddr) {
        if node_id == self.cfg.node_id {
            debug!(node = node_id, "ignoring self as a peer");
            return;
        }
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut peers = lock(&self.peers);
        if let Some(p) = peers.get(&node_id) {
            if *p.addr.borrow() != addr {
                info!(node = self.cfg.node_id, peer = node_id, %addr, "peer address changed");
                p.addr.send_replace(addr);
            }
            return;
        }
        let (tx, rx) = mpsc::channel(self.cfg.max_queue);
        let (addr_tx, addr_rx) = watch::channel(addr);
        let task = self
            .runtime
            .spawn(peer_writer(node_id, addr_rx, rx, self.clone()));
        peers.insert(
            node_id,
            Peer {
                tx,
                addr: addr_tx,
                task,
            },
        );
        debug!(node = self.cfg.node_id, peer = node_id, %addr, "peer added");
    }

    fn is_peer(&self, node_id: NodeId) -> bool {
        lock(&self.peers).contains_key(&node_id)
    }

    /// Aborts every task and returns their handles (to await if wanted).
    /// Handles are taken out of the maps before aborting, so no lock is
    /// held while a task is being cancelled.
    fn stop_all(&self, accept: &Mutex<Option<JoinHandle<()>>>) -> Vec<JoinHandle<()>> {
        self.closed.store(true, Ordering::SeqCst);
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        tasks.extend(lock(accept).take());
        tasks.extend(lock(&self.peers).drain().map(|(_, p)| p.task));
        tasks.extend(lock(&self.conns).drain().map(|(_, c)| c.task));
        for t in &tasks {
            t.abort();
        }
        tasks
    }
}

/// Accepts connections until aborted; each gets a reader task.
async fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                Counters::inc(&s.counters.accepted);
                if s.closed.load(Ordering::SeqCst) {
                    return;
                }
                let id = s.next_conn.fetch_add(1, Ordering::Relaxed);
                // The map is locked across the spawn so the task cannot try
                // to deregister before it is registered.
                let mut conns = lock(&s.conns);
                let task = tokio::spawn(serve_conn(stream, addr, id, s.clone()));
                conns.insert(id, InConn { node: None, task });
            }
            Err(e) => {
                // E.g. out of file descriptors: keep serving existing
                // connections and retry shortly instead of spinning.
                warn!(node = s.cfg.node_id, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Removes a connection from the registry when its task ends or is aborted.
struct ConnGuard {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // Dropping the JoinHandle detaches; the task is ending anyway.
        drop(lock(&self.shared.conns).remove(&self.id));
    }
}

/// Serves one accepted connection: check the hello, then forward batches.
async fn serve_conn(stream: TcpStream, addr: SocketAddr, id: u64, s: Arc<Shared>) {
    let _guard = ConnGuard {
        id,
        shared: s.clone(),
    };
    let _ = stream.set_nodelay(true);
    let local = s.cfg.node_id;
    let c = &s.counters;
    let stream: BoxIo = match &s.tls {
        None => Box::new(stream),
        Some(tls) => {
            match tokio::time::timeout(s.cfg.connect_timeout, tls.acceptor.accept(stream)).await {
                Ok(Ok(t)) => Box::new(t),
                Ok(Err(e)) => {
                    Counters::inc(&c.tls_failures);
                    warn!(node = local, %addr, error = %e, "TLS handshake failed, refusing connection");
                    return;
                }
                Err(_) => {
                    Counters::inc(&c.tls_failures);
                    warn!(node = local, %addr, "TLS handshake timed out, refusing connection");
                    return;
                }
            }
        }
    };
    let mut reader = FrameReader::new(stream, s.codec);
    let first = tokio::time::timeout(s.cfg.connect_timeout, reader.next()).await;
    let (hello, size) = match first {
        Ok(Ok(Some((Frame::Hello(h), size)))) => (h, size),
        Ok(Ok(Some((Frame::Batch(_), _)))) => {
            Counters::inc(&c.bad_frames);
            warn!(node = local, %addr, "batch before hello, closing connection");
            return;
        }
        Ok(Ok(None)) => {
            debug!(node = local, %addr, "connection closed before hello");
            return;
        }
        Ok(Err(ReadError::Io(e))) => {
            debug!(node = local, %addr, error = %e, "connection failed before hello");
            return;
        }
        Ok(Err(e)) => {
            Counters::inc(&c.bad_frames);
            warn!(node = local, %addr, error = %e, "bad hello, closing connection");
            return;
        }
        Err(_) => {
            Counters::inc(&c.rejected_connections);
            warn!(node = local, %addr, "no hello in time, closing connection");
            return;
        }
    };
    if hello.to != local || !s.is_peer(hello.from) {
        Counters::inc(&c.rejected_connections);
        warn!(
            node = local,
            %addr,
            from = hello.from,
            to = hello.to,
            "refusing connection from an unknown node or addressed to another node"
        );
        return;
    }
    Counters::inc(&c.frames_received);
    Counters::add(&c.bytes_received, size as u64);
    set_conn_node(&s, id, hello.from);
    debug!(node = local, %addr, peer = hello.from, "accepted connection");
    let first_batch = || close_older_conns(&s, id, hello.from);
    match forward_batches(&mut reader, hello, local, &s.inbound, c, first_batch).await {
        Ok(()) => debug!(node = local, peer = hello.from, "connection closed"),
        Err(ReadError::Io(e)) => {
            debug!(node = local, peer = hello.from, error = %e, "connection lost")
        }
        Err(e) => {
            Counters::inc(&c.bad_frames);
            warn!(node = local, %addr, peer = hello.from, error = %e, "closing connection");
        }
    }
}

/// Records which node a connection belongs to, so removing the peer
/// closes it.
fn set_conn_node(s: &Shared, id: u64, node: NodeId) {
    if let Some(c) = lock(&s.conns).get_mut(&id) {
        c.node = Some(node);
    }
}

/// Closes older connections from the same node. Its writer keeps one
/// connection at a time, so once a newer connection carries valid batches
/// an older one is dead from the sender's side (it reconnected after a
/// write timeout or a partition) and would otherwise linger half-open,
/// since this side never writes on it. Done only after a valid batch, not
/// at the hello, so that a client that merely says hello with a known id
/// and then sends garbage cannot cut off the real peer.
fn close_older_conns(s: &Shared, id: u64, node: NodeId) {
    let old: Vec<JoinHandle<()>> = {
        let mut conns = lock(&s.conns);
        let ids: Vec<u64> = conns
            .iter()
            .filter(|(cid, c)| **cid != id && c.node == Some(node))
            .map(|(cid, _)| *cid)
            .collect();
        ids.into_iter()
            .filter_map(|i| conns.remove(&i))
            .map(|c| c.task)
            .collect()
    };
    for t in old {
        debug!(
            node = s.cfg.node_id,
            peer = node,
            "closing older connection from the same node"
        );
        t.abort();
    }
}

/// Owns the outgoing connection to one peer: connect, run a session,
/// back off, reconnect; forever, until the peer is removed.
async fn peer_writer(
    peer: NodeId,
    mut addr_rx: watch::Receiver<SocketAddr>,
    mut rx: mpsc::Receiver<Wire>,
    s: Arc<Shared>,
) {
    let c = &s.counters;
    let local = s.cfg.node_id;
    let params = WriterParams {
        hello: Hello {
            from: local,
            to: peer,
        },
        codec: s.codec,
        write_timeout: s.cfg.write_timeout,
        max_batch: s.cfg.max_queue,
    };
    let mut backoff = Backoff::new(s.cfg.backoff_min, s.cfg.backoff_max);
    // Whether a connection was lost or an attempt failed: the next
    // successful connect then counts as a reconnect.
    let mut lost = false;
    loop {
        let addr = *addr_rx.borrow_and_update();
        match connect(&s, peer, addr).await {
            Ok(stream) => {
                let started = Instant::now();
                let on_connected = || {
                    Counters::inc(&c.connects);
                    if lost {
                        Counters::inc(&c.reconnects);
                    }
                    debug!(node = local, peer, %addr, "connected");
                };
                let end = {
                    let changed = addr_rx.changed();
                    let stop = async move {
                        // Err means the peer entry is gone; the task is
                        // being aborted, so just wait for that.
                        if changed.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    run_writer(stream, &params, &mut rx, c, on_connected, stop).await
                };
                lost = true;
                match end {
                    SessionEnd::QueueClosed => return,
                    SessionEnd::Stopped => {
                        backoff.reset();
                        continue;
                    }
                    SessionEnd::PeerClosed => {
                        debug!(node = local, peer, %addr, "peer closed the connection")
                    }
                    SessionEnd::Io(e) => {
                        Counters::inc(&c.write_failures);
                        if let Some(te) = tls_error(&e) {
                            // With TLS 1.3 the client finishes its side of
                            // the handshake before the server has checked
                            // the client certificate; a refusal arrives
                            // here, as an alert.
                            Counters::inc(&c.tls_failures);
                            warn!(node = local, peer, %addr, error = %te, "TLS session refused by peer");
                        } else {
                            debug!(node = local, peer, %addr, error = %e, "write failed");
                        }
                    }
                    SessionEnd::TimedOut => {
                        Counters::inc(&c.write_failures);
                        warn!(node = local, peer, %addr, "write timed out, reconnecting");
                    }
                }
                if started.elapsed() >= s.cfg.backoff_max {
                    backoff.reset();
                }
            }
            Err(()) => {
                lost = true;
                Counters::inc(&c.connect_failures);
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            r = addr_rx.changed() => {
                if r.is_err() {
                    return;
                }
                backoff.reset();
            }
        }
    }
}

/// Connects to a peer within the connect timeout and, with TLS on, runs
/// the handshake (within the same timeout again). Failures are logged
/// here: TLS failures with `warn!` (a certificate problem needs an
/// operator), TCP failures with `debug!` (a peer that is down is normal).
async fn connect(s: &Shared, peer: NodeId, addr: SocketAddr) -> Result<BoxIo, ()> {
    let local = s.cfg.node_id;
    let stream = match tokio::time::timeout(s.cfg.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            debug!(node = local, peer, %addr, error = %e, "connect failed");
            return Err(());
        }
        Err(_) => {
            debug!(node = local, peer, %addr, "connect timed out");
            return Err(());
        }
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = &s.tls else {
        return Ok(Box::new(stream));
    };
    let handshake = tls.connector.connect(server_name(addr), stream);
    match tokio::time::timeout(s.cfg.connect_timeout, handshake).await {
        Ok(Ok(t)) => Ok(Box::new(t)),
        Ok(Err(e)) => {
            Counters::inc(&s.counters.tls_failures);
            warn!(node = local, peer, %addr, error = %e, "TLS handshake with peer failed");
            Err(())
        }
        Err(_) => {
            Counters::inc(&s.counters.tls_failures);
            warn!(node = local, peer, %addr, "TLS handshake with peer timed out");
            Err(())
        }
    }
}
