//! # link-proxy
//!
//! Slow and stalling network links without `tc netem`: a userspace TCP
//! proxy for one link (the harness redirects a node's connections to a
//! peer through it, for example with a DNAT rule in the node's network
//! namespace). Every byte that crosses it in either direction is held for
//! the link's current delay plus a random jitter, in order, and nothing
//! crosses while the link is stalled. The shape changes at run time
//! ([`LinkShape`]) and applies to data already in flight.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let proxy = link_proxy::LinkProxy::start("127.0.0.1:0".parse().unwrap(),
//!                                          "127.0.0.1:9000".parse().unwrap()).await?;
//! proxy.shape().set_delay_ms(50, 20); // 50 ms +- 20 ms each way
//! proxy.shape().set_stalled(true);     // nothing crosses
//! proxy.shape().clear();               // a healthy link again
//! # Ok(()) }
//! ```

use rand::Rng;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// What a link currently does to its traffic (shared with its pumps).
#[derive(Debug, Default)]
pub struct LinkShape {
    delay_ms: AtomicU64,
    jitter_ms: AtomicU64,
    stalled: AtomicBool,
    /// Wakes pumps waiting on a stall or a delay when the shape changes.
    changed: Notify,
    /// Bytes that crossed, both directions.
    bytes: AtomicU64,
}

impl LinkShape {
    /// Every chunk waits `delay_ms` plus a uniform `0..=jitter_ms` (order
    /// is kept: a chunk never overtakes the one before it).
    pub fn set_delay_ms(&self, delay_ms: u64, jitter_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::SeqCst);
        self.jitter_ms.store(jitter_ms, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Holds all traffic while true.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// A healthy link: no delay, no stall.
    pub fn clear(&self) {
        self.delay_ms.store(0, Ordering::SeqCst);
        self.jitter_ms.store(0, Ordering::SeqCst);
        self.set_stalled(false);
    }

    /// (delay ms, jitter ms, stalled).
    pub fn get(&self) -> (u64, u64, bool) {
        (
            self.delay_ms.load(Ordering::SeqCst),
            self.jitter_ms.load(Ordering::SeqCst),
            self.stalled.load(Ordering::SeqCst),
        )
    }

    /// Bytes that crossed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// A chunk's share of the jitter, drawn once when it arrives (as a
    /// fraction, so a later change of the jitter applies to it too).
    fn jitter_draw() -> f64 {
        rand::thread_rng().gen_range(0.0..=1.0)
    }

    /// How long a chunk that drew `draw` is held now.
    fn hold(&self, draw: f64) -> Duration {
        let (d, j, _) = self.get();
        Duration::from_millis(d + (j as f64 * draw).round() as u64)
    }
}

/// A running proxy for one link; stopped (with every connection through
/// it) when dropped.
pub struct LinkProxy {
    local: SocketAddr,
    target: SocketAddr,
    shape: Arc<LinkShape>,
    accept: JoinHandle<()>,
    /// Every connection's task (each holds both sockets of its relay).
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl LinkProxy {
    /// Listens on `listen` and forwards every connection to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> std::io::Result<LinkProxy> {
        LinkProxy::start_from(listen, target, None).await
    }

    /// Like [`LinkProxy::start`], connecting to `target` from the address
    /// `source` (so the target, and its firewall, can tell which link a
    /// connection came through).
    pub async fn start_from(
        listen: SocketAddr,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let shape = Arc::new(LinkShape::default());
        let s = shape.clone();
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (inbound, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "link proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let s = s.clone();
                let task = tokio::spawn(async move {
                    if let Err(e) = relay(inbound, target, source, s).await {
                        tracing::debug!(%peer, %target, error = %e, "link proxy connection ended");
                    }
                });
                let mut conns = registry.lock().unwrap_or_else(|p| p.into_inner());
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        });
        Ok(LinkProxy {
            local,
            target,
            shape,
            accept,
            conns,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn shape(&self) -> &Arc<LinkShape> {
        &self.shape
    }
}

impl Drop for LinkProxy {
    /// Stops listening and closes every connection through the proxy (the
    /// peers see them end), so nothing of the link is left running.
    fn drop(&mut self) {
        self.accept.abort();
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }
}

/// One proxied connection: two pumps, each through a delay line.
async fn relay(
    inbound: TcpStream,
    target: SocketAddr,
    source: Option<IpAddr>,
    shape: Arc<LinkShape>,
) -> std::io::Result<()> {
    let outbound = match source {
        None => TcpStream::connect(target).await?,
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(target).await?
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    // Both pumps live in this task: aborting it closes all four halves.
    tokio::join!(pump(ri, wo, shape.clone()), pump(ro, wi, shape));
    Ok(())
}

/// Copies `from` to `to`, each chunk released at its arrival time plus the
/// link's hold, never before the chunk ahead of it, and not while stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shape: Arc<LinkShape>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, f64, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let arrived = Instant::now();
            if tx
                .send((arrived, LinkShape::jitter_draw(), buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    // One writer, in arrival order: a chunk never overtakes the one ahead.
    let writer = async move {
        while let Some((arrived, draw, chunk)) = rx.recv().await {
            loop {
                let changed = shape.changed.notified();
                if shape.stalled.load(Ordering::SeqCst) {
                    changed.await;
                    continue;
                }
                // Recomputed after every change: a healed link releases what
                // it was holding at once.
                let release = arrived + shape.hold(draw);
                if Instant::now() >= release {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(release) => {}
                    _ = changed => {}
                }
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            shape.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    // The reader ends at EOF (dropping the sender ends the writer once it
    // has written everything); after a failed write the reader ends at its
    // next chunk, which has nowhere to go.
    tokio::join!(reader, writer);
}
