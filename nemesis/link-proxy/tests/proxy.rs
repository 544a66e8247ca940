//! The proxy between a client and an echo server on loopback: bytes cross
//! intact and in order, a delay shows in the round trip, a stall holds
//! everything until it ends, and clearing the shape releases what waits.

use link_proxy::LinkProxy;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(c: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = Instant::now();
    c.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_stalls_and_heals_keep_bytes_in_order() {
    let target = echo_server().await;
    let proxy = LinkProxy::start("127.0.0.1:0".parse().unwrap(), target)
        .await
        .unwrap();
    let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();

    let healthy = round_trip(&mut c, b"ping").await;
    assert!(healthy < Duration::from_millis(100), "{healthy:?}");

    // 60 ms each way: at least 120 ms a round trip.
    proxy.shape().set_delay_ms(60, 10);
    let slow = round_trip(&mut c, b"slow").await;
    assert!(slow >= Duration::from_millis(120), "{slow:?}");

    // Many small writes with jitter arrive whole and in order.
    let msg: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    proxy.shape().set_delay_ms(5, 20);
    let writer = {
        let sent = msg.clone();
        let (mut r, mut w) = c.into_split();
        let t = tokio::spawn(async move {
            for chunk in sent.chunks(97) {
                w.write_all(chunk).await.unwrap();
            }
            w
        });
        let mut back = vec![0u8; msg.len()];
        r.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg, "order kept");
        let w = t.await.unwrap();
        r.reunite(w).unwrap()
    };
    let mut c = writer;

    // A stall holds everything; clearing releases it at once.
    proxy.shape().clear();
    proxy.shape().set_stalled(true);
    c.write_all(b"held").await.unwrap();
    let mut back = [0u8; 4];
    let got = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut back)).await;
    assert!(got.is_err(), "nothing crosses a stalled link");
    let t = Instant::now();
    proxy.shape().clear();
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"held");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    // A long delay in force, then healed: the waiting bytes go at once.
    proxy.shape().set_delay_ms(5_000, 0);
    c.write_all(b"late").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    proxy.shape().clear();
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"late");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert!(proxy.shape().bytes() > 40_000);

    // Dropping the proxy ends the connections through it.
    drop(proxy);
    let mut buf = [0u8; 1];
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = c.write_all(b"x").await;
        c.read(&mut buf).await
    })
    .await;
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_)) | Err(_)),
        "no echo once the proxy is gone"
    );
}
