//! End-to-end tests of the TCP transport on 127.0.0.1 with ephemeral ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dcf_core::{AppendResponse, Envelope, Message};
use dcf_transport::{
    Codec, Hello, Transport, TransportConfig, TransportError, TransportStats, Wire,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn any_local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn cfg(id: u32, listen: SocketAddr) -> TransportConfig {
    let mut c = TransportConfig::new(id, listen);
    c.backoff_min = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(200);
    c.connect_timeout = Duration::from_secs(2);
    c
}

fn msg(from: u32, to: u32, seq: u64) -> Envelope {
    Envelope {
        stream: 1,
        from,
        to,
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: true,
            index: seq,
            last_index: seq,
            applied_index: 0,
            seq,
        }),
    }
}

fn seq_of(e: &Wire) -> u64 {
    match e {
        Wire::Consensus(Envelope {
            msg: Message::AppendResponse(AppendResponse { seq, .. }),
            ..
        }) => *seq,
        _ => panic!("unexpected {e:?}"),
    }
}

/// A free loopback address nobody listens on (for a peer started later).
fn reserve_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind(any_local()).unwrap();
    l.local_addr().unwrap()
}

struct Node {
    t: Transport,
    rx: mpsc::Receiver<Wire>,
}

async fn start(c: TransportConfig, inbound_cap: usize) -> Node {
    let (tx, rx) = mpsc::channel(inbound_cap);
    let t = Transport::start(c, tx).await.expect("start");
    Node { t, rx }
}

/// Starts `n` nodes (ids 1..=n) that all know each other, and waits until
/// every node has accepted a hello from every other.
async fn cluster(n: u32) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        nodes.push(start(cfg(id, any_local()), 1024).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.t.local_addr()).collect();
    for (i, node) in nodes.iter().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            if i != j {
                node.t.set_peer(j as u32 + 1, *addr);
            }
        }
    }
    for node in &nodes {
        wait_for(|| node.t.stats().frames_received >= u64::from(n - 1)).await;
    }
    nodes
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not reached in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn recv(rx: &mut mpsc::Receiver<Wire>) -> Wire {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for an envelope")
        .expect("inbound closed")
}

/// Keeps sending `from -> to` envelopes until one arrives at `rx`; for
/// cases where the first sends may be lost to a dying connection.
async fn send_until_received(t: &Transport, rx: &mut mpsc::Receiver<Wire>, from: u32, to: u32) {
    let deadline = Instant::now() + WAIT;
    let mut seq = 1_000_000;
    loop {
        t.send(msg(from, to, seq));
        seq += 1;
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            assert_eq!((e.from_node(), e.to_node()), (from, to));
            return;
        }
        assert!(Instant::now() < deadline, "{from} never reached {to}");
    }
}

/// True if the peer closed `s` (EOF or reset) within the wait.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(WAIT, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn hello_bytes(from: u32, to: u32) -> BytesMut {
    let mut b = BytesMut::new();
    Codec::default().encode_hello(Hello { from, to }, &mut b);
    b
}

fn batch_bytes(envs: &[Envelope]) -> BytesMut {
    let envs: Vec<Wire> = envs.iter().cloned().map(Wire::from).collect();
    let mut b = BytesMut::new();
    Codec::default().encode_batch(&envs, &mut b).unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_exchange_thousands_in_order() {
    const N: u64 = 3000;
    let mut nodes = cluster(3).await;
    for (i, node) in nodes.iter().enumerate() {
        let from = i as u32 + 1;
        for seq in 0..N {
            for to in 1..=3u32 {
                if to != from {
                    node.t.send(msg(from, to, seq));
                }
            }
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let me = i as u32 + 1;
        let mut next: HashMap<u32, u64> = HashMap::new();
        for _ in 0..2 * N {
            let e = recv(&mut node.rx).await;
            assert_eq!(e.to_node(), me);
            let want = next.entry(e.from_node()).or_insert(0);
            assert_eq!(
                seq_of(&e),
                *want,
                "node {me} from {} out of order",
                e.from_node()
            );
            *want += 1;
        }
        assert_eq!(next.len(), 2);
        // Counters are bumped just after the write / hand-over they count,
        // so they may trail what the receivers already saw by a moment.
        wait_for(|| {
            let s = node.t.stats();
            s.envelopes_sent == 2 * N && s.envelopes_received == 2 * N
        })
        .await;
        let s: TransportStats = node.t.stats();
        assert_eq!(s.dropped_queue_full, 0);
        assert_eq!(s.bad_frames, 0);
        // Batching: far fewer data frames than envelopes (hellos included).
        assert!(s.frames_sent < N, "no batching: {s:?}");
    }
    for n in &nodes {
        n.t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_started_later_is_reached_after_reconnect() {
    let addr2 = reserve_addr();
    let mut n1 = start(cfg(1, any_local()), 64).await;
    n1.t.set_peer(2, addr2);
    // Let node 1 fail a few connects first.
    wait_for(|| n1.t.stats().connect_failures >= 2).await;
    let mut n2 = start(cfg(2, addr2).with_peer(1, n1.t.local_addr()), 64).await;
    n1.t.send(msg(1, 2, 7));
    let e = recv(&mut n2.rx).await;
    assert_eq!((e.from_node(), seq_of(&e)), (1, 7));
    let s = n1.t.stats();
    assert!(s.connects >= 1 && s.reconnects >= 1, "{s:?}");
    // And the other way round.
    n2.t.send(msg(2, 1, 8));
    assert_eq!(seq_of(&recv(&mut n1.rx).await), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_is_reconnected_to() {
    let mut nodes = cluster(2).await;
    let n2 = nodes.pop().unwrap();
    let mut n1 = nodes.pop().unwrap();
    let addr2 = n2.t.local_addr();
    n1.t.send(msg(1, 2, 1));
    let Node { t: t2, mut rx } = n2;
    assert_eq!(seq_of(&recv(&mut rx).await), 1);
    t2.shutdown().await;
    drop(t2);
    drop(rx);
    let before = n1.t.stats().connects;

    let mut n2 = start(cfg(2, addr2).with_peer(1, n1.t.local_addr()), 64).await;
    send_until_received(&n1.t, &mut n2.rx, 1, 2).await;
    let s = n1.t.stats();
    assert!(s.connects > before && s.reconnects >= 1, "{s:?}");
    // Node 2's own connection to node 1 works too.
    send_until_received(&n2.t, &mut n1.rx, 2, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_that_connection_only() {
    let mut nodes = cluster(2).await;
    let n2 = nodes.pop().unwrap();
    let mut n1 = nodes.pop().unwrap();
    let target = n1.t.local_addr();
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("random", (0..4096).map(|_| rng.gen()).collect()),
        ("oversize header", {
            let mut b = hello_bytes(2, 1).to_vec();
            b.extend_from_slice(&[b'D', b'F', 1, 0, 0xff, 0xff, 0xff, 0xff]);
            b
        }),
        ("unknown version", vec![b'D', b'F', 7, 0, 1, 0, 0, 0, 0]),
        ("hello then garbage", {
            let mut b = hello_bytes(2, 1).to_vec();
            b.extend((0..100).map(|_| rng.gen::<u8>()));
            b
        }),
    ];
    // A valid batch with one byte flipped inside the payload.
    let mut corrupt = hello_bytes(2, 1).to_vec();
    let mut batch = batch_bytes(&[msg(2, 1, 5)]).to_vec();
    batch[8] = 0x7f; // frame kind
    corrupt.extend(batch);
    cases.push(("bad frame kind", corrupt));

    for (i, (what, bytes)) in cases.iter().enumerate() {
        let mut s = TcpStream::connect(target).await.unwrap();
        // The peer may close before everything is written; that is fine.
        let _ = s.write_all(bytes).await;
        assert!(
            closed_by_peer(&mut s).await,
            "seed {seed}: {what} not closed"
        );
        let bad = n1.t.stats().bad_frames;
        assert!(bad > i as u64, "seed {seed}: {what}: bad_frames {bad}");
        // The node still serves its real peer.
        n2.t.send(msg(2, 1, i as u64));
        let e = recv(&mut n1.rx).await;
        assert_eq!((e.from_node(), seq_of(&e)), (2, i as u64), "seed {seed}");
    }
    assert!(n1.t.stats().bad_frames >= cases.len() as u64);
    assert!(
        n1.rx.try_recv().is_err(),
        "nothing from the garbage was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_from_and_unknown_nodes_are_rejected() {
    let mut nodes = cluster(2).await;
    let n2 = nodes.pop().unwrap();
    let mut n1 = nodes.pop().unwrap();
    let target = n1.t.local_addr();

    // Hello as node 2, then an envelope claiming to be from node 3.
    let mut s = TcpStream::connect(target).await.unwrap();
    s.write_all(&hello_bytes(2, 1)).await.unwrap();
    s.write_all(&batch_bytes(&[msg(2, 1, 100), msg(3, 1, 101)]))
        .await
        .unwrap();
    assert!(closed_by_peer(&mut s).await, "forged from not closed");
    assert_eq!(n1.t.stats().bad_frames, 1);

    // An envelope addressed to another node.
    let mut s = TcpStream::connect(target).await.unwrap();
    s.write_all(&hello_bytes(2, 1)).await.unwrap();
    s.write_all(&batch_bytes(&[msg(2, 3, 102)])).await.unwrap();
    assert!(closed_by_peer(&mut s).await, "misaddressed not closed");
    assert_eq!(n1.t.stats().bad_frames, 2);

    // Unknown node id, and a hello addressed to another node.
    for (from, to) in [(9, 1), (2, 5)] {
        let mut s = TcpStream::connect(target).await.unwrap();
        s.write_all(&hello_bytes(from, to)).await.unwrap();
        let _ = s.write_all(&batch_bytes(&[msg(from, to, 103)])).await;
        assert!(
            closed_by_peer(&mut s).await,
            "hello {from}->{to} not closed"
        );
    }
    assert_eq!(n1.t.stats().rejected_connections, 2);

    // Batch before hello.
    let mut s = TcpStream::connect(target).await.unwrap();
    s.write_all(&batch_bytes(&[msg(2, 1, 104)])).await.unwrap();
    assert!(closed_by_peer(&mut s).await);
    assert_eq!(n1.t.stats().bad_frames, 3);

    // None of it was delivered (the forged frame is rejected as a whole,
    // including its valid first envelope); the real peer still gets through.
    send_until_received(&n2.t, &mut n1.rx, 2, 1).await;
    while let Ok(e) = n1.rx.try_recv() {
        assert!(seq_of(&e) >= 1_000_000, "forged traffic delivered: {e:?}");
    }
    // A well-behaved raw client speaking as node 2 is served.
    let mut s = TcpStream::connect(target).await.unwrap();
    s.write_all(&hello_bytes(2, 1)).await.unwrap();
    s.write_all(&batch_bytes(&[msg(2, 1, 105)])).await.unwrap();
    let e = recv(&mut n1.rx).await;
    assert_eq!(seq_of(&e), 105);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_instead_of_blocking() {
    let mut c = cfg(1, any_local());
    c.max_queue = 8;
    // Nobody listens there, so nothing is ever drained.
    c.peers.insert(2, reserve_addr());
    let n1 = start(c, 16).await;
    let t0 = Instant::now();
    for seq in 0..10_000 {
        n1.t.send(msg(1, 2, seq));
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "send blocked");
    let s = n1.t.stats();
    assert_eq!(s.dropped_queue_full, 10_000 - 8, "{s:?}");
    // Unknown peers and foreign `from`s are dropped and counted too.
    n1.t.send(msg(1, 99, 0));
    n1.t.send(msg(5, 2, 0));
    let s = n1.t.stats();
    assert_eq!((s.dropped_unknown_peer, s.dropped_invalid), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_gets_backpressure_not_loss() {
    const N: u64 = 3000;
    let n1 = start(cfg(1, any_local()), 1024).await;
    let mut n2 = start(cfg(2, any_local()).with_peer(1, n1.t.local_addr()), 4).await;
    n1.t.set_peer(2, n2.t.local_addr());
    wait_for(|| n2.t.stats().frames_received >= 1).await;
    for seq in 0..N {
        n1.t.send(msg(1, 2, seq));
    }
    wait_for(|| n1.t.stats().envelopes_sent == N).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The reader is parked on the full inbound channel.
    assert!(n2.t.stats().envelopes_received <= 4, "{:?}", n2.t.stats());
    for seq in 0..N {
        assert_eq!(seq_of(&recv(&mut n2.rx).await), seq);
    }
    assert_eq!(n1.t.stats().dropped_queue_full, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_and_shutdown() {
    let mut nodes = cluster(3).await;
    let n3 = nodes.pop().unwrap();
    let mut n2 = nodes.pop().unwrap();
    let mut n1 = nodes.pop().unwrap();

    // Node 2 moves: node 1 follows the new address.
    let Node {
        t: old2,
        rx: old_rx,
    } = n2;
    old2.shutdown().await;
    drop((old2, old_rx));
    n2 = start(cfg(2, any_local()).with_peer(1, n1.t.local_addr()), 64).await;
    n1.t.set_peer(2, n2.t.local_addr());
    assert_eq!(n1.t.peers()[&2], n2.t.local_addr());
    send_until_received(&n1.t, &mut n2.rx, 1, 2).await;

    // Node 1 removes node 3: sends to it are dropped, its connection is
    // closed and refused from then on.
    n1.t.remove_peer(3);
    assert!(!n1.t.peers().contains_key(&3));
    n1.t.send(msg(1, 3, 0));
    assert_eq!(n1.t.stats().dropped_unknown_peer, 1);
    let rejected = n1.t.stats().rejected_connections;
    for seq in 0..20 {
        n3.t.send(msg(3, 1, seq));
    }
    wait_for(|| n1.t.stats().rejected_connections > rejected).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    while let Ok(e) = n1.rx.try_recv() {
        assert_ne!(e.from_node(), 3, "removed peer delivered {e:?}");
    }

    // Shutdown closes the listener and all connections.
    let addr1 = n1.t.local_addr();
    n1.t.shutdown().await;
    assert!(
        TcpStream::connect(addr1).await.is_err(),
        "listener still open"
    );
    n1.t.send(msg(1, 2, 0));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), n2.rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bind_error_is_reported() {
    let busy = std::net::TcpListener::bind(any_local()).unwrap();
    let (tx, _rx) = mpsc::channel(1);
    match Transport::start(cfg(1, busy.local_addr().unwrap()), tx).await {
        Err(TransportError::Bind { addr, .. }) => assert_eq!(addr, busy.local_addr().unwrap()),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("bound a busy address"),
    }
    let (tx, _rx) = mpsc::channel(1);
    let mut c = cfg(1, any_local());
    c.max_queue = 0;
    assert!(matches!(
        Transport::start(c, tx).await,
        Err(TransportError::InvalidConfig(_))
    ));
}

/// Regression: the DCF engine calls `set_peer` from its own thread, outside
/// the transport's runtime (membership changes add peers at run time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_peer_from_a_thread_outside_the_runtime() {
    let mut n1 = start(cfg(1, any_local()), 64).await;
    let mut n2 = start(cfg(2, any_local()).with_peer(1, n1.t.local_addr()), 64).await;
    let n2_addr = n2.t.local_addr();
    let t1 = std::sync::Arc::new(n1.t);
    let t1b = t1.clone();
    std::thread::spawn(move || t1b.set_peer(2, n2_addr))
        .join()
        .expect("set_peer must not panic");
    t1.send(msg(1, 2, 5));
    assert_eq!(seq_of(&recv(&mut n2.rx).await), 5);
    n2.t.send(msg(2, 1, 6));
    assert_eq!(seq_of(&recv(&mut n1.rx).await), 6);
}
