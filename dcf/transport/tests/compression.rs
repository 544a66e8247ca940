//! Frame compression (DCF's COMPRESS_ALGORITHM / COMPRESS_LEVEL): round
//! trips at the level edges, plain fallback for small or incompressible
//! frames, mixed senders to one receiver over TCP, and decompression bombs
//! refused with a `FrameError`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use dcf_transport::{
    Codec, Compression, Frame, FrameError, FrameHeader, Hello, HostEnvelope, HostMessage,
    Transport, TransportConfig, TransportError, Wire, HEADER_LEN,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn user(from: u32, to: u32, data: Vec<u8>) -> Wire {
    Wire::Host(HostEnvelope {
        stream: 1,
        from,
        to,
        msg: HostMessage::User { data },
    })
}

/// Compressible data: repeated text with a counter.
fn text(n: usize, salt: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(format!("entry {salt} key {i} value ").as_bytes());
        i += 1;
    }
    v.truncate(n);
    v
}

fn encode(codec: &Codec, envs: &[Wire]) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec.encode_batch(envs, &mut out).unwrap();
    out.to_vec()
}

/// A frame with the given compression flag and raw payload bytes.
fn raw_frame(c: Compression, payload: &[u8]) -> Vec<u8> {
    let mut b = FrameHeader::new(c, payload.len()).to_bytes().to_vec();
    b.extend_from_slice(payload);
    b
}

#[test]
fn every_algorithm_and_level_edge_round_trips() {
    let envs: Vec<Wire> = (0..20).map(|i| user(1, 2, text(500, i))).collect();
    let plain_len = encode(&Codec::new(1 << 20), &envs).len();
    for (c, levels) in [
        (Compression::None, vec![1]),
        (Compression::Lz4, vec![1, 5, 9]),
        (Compression::Zstd, vec![1, 3, 19, 22]),
    ] {
        for level in levels {
            let codec = Codec::new(1 << 20).with_compression(c, level);
            let bytes = encode(&codec, &envs);
            let h = FrameHeader::parse(bytes[..HEADER_LEN].try_into().unwrap(), 1 << 20).unwrap();
            assert_eq!(h.compression, c, "{c} level {level}");
            if c != Compression::None {
                assert!(
                    bytes.len() * 3 < plain_len,
                    "{c} level {level}: {} of {plain_len} bytes",
                    bytes.len()
                );
            }
            // Any receiver decodes it, whatever it would send itself.
            for rc in [Compression::None, Compression::Lz4, Compression::Zstd] {
                let receiver = Codec::new(1 << 20).with_compression(rc, 1);
                assert_eq!(
                    receiver.decode(&bytes),
                    Ok(Frame::Batch(envs.clone())),
                    "{c} level {level} to a {rc} receiver"
                );
            }
        }
    }
}

#[test]
fn config_rejects_levels_out_of_range() {
    let mut cfg = TransportConfig::new(1, "127.0.0.1:0".parse().unwrap());
    for (alg, level, ok) in [
        (0, 1, true),
        (1, 1, true),
        (1, 22, true),
        (1, 23, false),
        (1, 0, false),
        (2, 1, true),
        (2, 9, true),
        (2, 10, false),
        (3, 1, false),
    ] {
        let r = cfg.set_dcf_compression(alg, level);
        assert_eq!(r.is_ok(), ok, "algorithm {alg} level {level}: {r:?}");
        if ok {
            cfg.validate().unwrap();
        } else {
            assert!(matches!(r, Err(TransportError::InvalidConfig(_))));
        }
    }
    cfg.set_dcf_compression(2, 3).unwrap();
    assert_eq!(cfg.compression, Compression::Lz4);
    cfg.set_dcf_compression(1, 3).unwrap();
    assert_eq!(cfg.compression, Compression::Zstd);
    cfg.compress_level = 40;
    assert!(cfg.validate().is_err());
}

#[test]
fn small_and_incompressible_frames_go_plain() {
    let mut rng = StdRng::seed_from_u64(7);
    for c in [Compression::Lz4, Compression::Zstd] {
        let codec = Codec::new(1 << 20).with_compression(c, 3);
        // A heartbeat-sized batch.
        let small = vec![user(1, 2, b"tiny".to_vec())];
        let b = encode(&codec, &small);
        assert_eq!(b[3], 0, "{c}: small frame compressed");
        assert_eq!(codec.decode(&b), Ok(Frame::Batch(small)));
        // Random bytes do not shrink.
        let noise = vec![user(1, 2, (0..4000).map(|_| rng.gen()).collect())];
        let b = encode(&codec, &noise);
        assert_eq!(b[3], 0, "{c}: incompressible frame compressed");
        assert_eq!(codec.decode(&b), Ok(Frame::Batch(noise)));
        // Hellos are never compressed.
        let mut out = BytesMut::new();
        codec.encode_hello(Hello { from: 1, to: 2 }, &mut out);
        assert_eq!(out[3], 0);
    }
}

#[test]
fn highly_compressible_frame_at_max_size_round_trips() {
    // All zeros: LZ4's and ZSTD's best ratio, at the maximum frame size,
    // must pass the decoder's expansion bounds.
    let max = 1 << 20;
    let envs = vec![user(1, 2, vec![0u8; max - 64])];
    for c in [Compression::Lz4, Compression::Zstd] {
        let codec = Codec::new(max).with_compression(c, 1);
        let b = encode(&codec, &envs);
        assert!(b.len() < max / 100, "{c}: {} bytes", b.len());
        assert_eq!(codec.decode(&b), Ok(Frame::Batch(envs.clone())), "{c}");
    }
    // encode_batches splits by plain size, then compresses each frame.
    let many: Vec<Wire> = (0..40).map(|i| user(1, 2, text(40_000, i))).collect();
    let codec = Codec::new(max).with_compression(Compression::Zstd, 1);
    let mut out = BytesMut::new();
    let report = codec.encode_batches(&many, &mut out);
    assert!(report.frames >= 2, "{report:?}");
    assert_eq!(report.compressed, report.frames);
    let mut got = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let h = FrameHeader::parse(rest[..HEADER_LEN].try_into().unwrap(), max).unwrap();
        let (frame, tail) = rest.split_at(HEADER_LEN + h.payload_len);
        match codec.decode(frame).unwrap() {
            Frame::Batch(e) => got.extend(e),
            f => panic!("unexpected {f:?}"),
        }
        rest = tail;
    }
    assert_eq!(got, many);
}

#[test]
fn decompression_bombs_are_refused() {
    let max = 256 * 1024;
    let codec = Codec::new(max);
    // The plain payload of a batch that is far larger than max.
    let huge = {
        let mut out = BytesMut::new();
        Codec::new(64 << 20)
            .encode_batch(&[user(1, 2, vec![0u8; 32 << 20])], &mut out)
            .unwrap();
        out.split_off(HEADER_LEN).to_vec()
    };
    let z = zstd::bulk::compress(&huge, 3).unwrap();
    let l = lz4_flex::block::compress(&huge);
    assert!(z.len() < max && l.len() < max, "bomb fits in a frame");
    for (c, packed) in [(Compression::Zstd, &z), (Compression::Lz4, &l)] {
        // Honest declared length: refused before decompressing.
        let mut p = (huge.len() as u32).to_le_bytes().to_vec();
        p.extend_from_slice(packed);
        let started = Instant::now();
        assert_eq!(
            codec.decode(&raw_frame(c, &p)),
            Err(FrameError::Oversize {
                len: huge.len(),
                max
            }),
            "{c}"
        );
        // A lie (small declared length): the output is cut at the
        // declared size and refused.
        for declared in [0u32, 100, max as u32] {
            let mut p = declared.to_le_bytes().to_vec();
            p.extend_from_slice(packed);
            let r = codec.decode(&raw_frame(c, &p));
            assert!(
                matches!(r, Err(FrameError::Decompress { algorithm, .. }) if algorithm == c),
                "{c} declared {declared}: {r:?}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{c} too slow");
    }
    // LZ4 claiming far more than its input can expand to.
    let mut p = (max as u32).to_le_bytes().to_vec();
    p.extend_from_slice(&[0x1f, 0]);
    assert!(matches!(
        codec.decode(&raw_frame(Compression::Lz4, &p)),
        Err(FrameError::Decompress { .. })
    ));
    // Too short to hold the length prefix.
    assert!(matches!(
        codec.decode(&raw_frame(Compression::Zstd, &[1, 2])),
        Err(FrameError::Truncated { .. })
    ));
}

fn cfg(id: u32, c: Compression, level: i32) -> TransportConfig {
    let mut cfg = TransportConfig::new(id, "127.0.0.1:0".parse().unwrap());
    cfg.backoff_min = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(200);
    cfg.compression = c;
    cfg.compress_level = level;
    cfg
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_senders_reach_one_receiver() {
    // Node 1 receives (and sends plain); 2 sends LZ4, 3 ZSTD, 4 nothing.
    let (tx, mut rx) = mpsc::channel(8192);
    let recv = Transport::start(cfg(1, Compression::None, 1), tx)
        .await
        .unwrap();
    let raddr = recv.local_addr();
    let mut senders = Vec::new();
    for (id, c, level) in [
        (2, Compression::Lz4, 9),
        (3, Compression::Zstd, 19),
        (4, Compression::None, 1),
    ] {
        recv.set_peer(id, "127.0.0.1:9".parse().unwrap());
        let (stx, _srx) = mpsc::channel(16);
        let t = Transport::start(cfg(id, c, level).with_peer(1, raddr), stx)
            .await
            .unwrap();
        senders.push((t, _srx));
    }
    const N: usize = 2000;
    for i in 0..N {
        for (t, _) in &senders {
            t.send(user(t.node_id(), 1, text(100 + i % 300, i as u64)));
        }
    }
    let mut next = [0usize; 5];
    for _ in 0..3 * N {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        let i = next[e.from_node() as usize];
        assert_eq!(e, user(e.from_node(), 1, text(100 + i % 300, i as u64)));
        next[e.from_node() as usize] += 1;
    }
    assert_eq!(&next[2..], &[N, N, N]);
    let stats: Vec<_> = senders.iter().map(|(t, _)| t.stats()).collect();
    assert!(stats[0].compressed_frames_sent > 0, "{:?}", stats[0]);
    assert!(stats[1].compressed_frames_sent > 0, "{:?}", stats[1]);
    assert_eq!(stats[2].compressed_frames_sent, 0);
    // LZ4 and ZSTD senders wrote far fewer bytes than the plain one.
    assert!(stats[0].bytes_sent * 2 < stats[2].bytes_sent, "{stats:?}");
    assert!(stats[1].bytes_sent * 2 < stats[2].bytes_sent, "{stats:?}");
    // Sender counters are bumped just after the write, so re-read them.
    wait_for(|| {
        let sent: u64 = senders
            .iter()
            .map(|(t, _)| t.stats().compressed_frames_sent)
            .sum();
        recv.stats().compressed_frames_received == sent
    })
    .await;
    assert_eq!(recv.stats().bad_frames, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bomb_over_tcp_closes_only_that_connection() {
    let max = 64 * 1024;
    let (tx, mut rx) = mpsc::channel(64);
    let mut c1 = cfg(1, Compression::None, 1);
    c1.max_frame = max;
    let n1 = Transport::start(c1, tx).await.unwrap();
    let (tx2, _rx2) = mpsc::channel(64);
    let n2 = Transport::start(
        cfg(2, Compression::Zstd, 3).with_peer(1, n1.local_addr()),
        tx2,
    )
    .await
    .unwrap();
    n1.set_peer(2, n2.local_addr());
    let addr: SocketAddr = n1.local_addr();

    // 1 GiB of zeros as a ZSTD stream, declared as 1000 bytes.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let packed = enc.finish().unwrap();
    assert!(packed.len() < max);
    let mut payload = 1000u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&packed);

    let mut bytes = BytesMut::new();
    Codec::default().encode_hello(Hello { from: 2, to: 1 }, &mut bytes);
    bytes.put_slice(&raw_frame(Compression::Zstd, &payload));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&bytes).await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {closed:?}"
    );
    wait_for(|| n1.stats().bad_frames >= 1).await;

    // The real node 2 (sending ZSTD) still gets through.
    let deadline = Instant::now() + WAIT;
    let mut i = 0u64;
    loop {
        n2.send(user(2, 1, text(2000, i)));
        i += 1;
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            assert_eq!(e.from_node(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "node 2 never got through");
    }
    assert!(n1.stats().compressed_frames_received >= 1);
}
