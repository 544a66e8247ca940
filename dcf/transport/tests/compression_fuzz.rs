//! Fuzz-style tests of compressed frames with a seeded RNG: mutations of
//! valid LZ4 and ZSTD frames (header, length prefix and compressed bytes)
//! and random compressed payloads must give errors, never panics; whatever
//! still decodes must be a well-formed frame that re-encodes and decodes
//! to itself. (Compressed frames are not canonical, so unlike
//! `codec_fuzz.rs` the bytes are not compared.) Set DCF_FUZZ_SEED to
//! replay; the seed is in every failure message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::BytesMut;
use dcf_core::{Envelope, Message};
use dcf_transport::{
    Codec, Compression, Frame, FrameHeader, HostEnvelope, HostMessage, Wire, HEADER_LEN,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    match std::env::var("DCF_FUZZ_SEED") {
        Ok(s) => s.parse().expect("DCF_FUZZ_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Compressible envelopes big enough to be compressed.
fn batch(rng: &mut StdRng) -> Vec<Wire> {
    (0..rng.gen_range(1..8))
        .map(|_| {
            let word: Vec<u8> = (0..rng.gen_range(1..6))
                .map(|_| rng.gen_range(b'a'..=b'z'))
                .collect();
            let n = rng.gen_range(0..600);
            let data: Vec<u8> = word.iter().copied().cycle().take(n).collect();
            let host = |msg| {
                Wire::Host(HostEnvelope {
                    stream: 1,
                    from: 1,
                    to: 2,
                    msg,
                })
            };
            match rng.gen_range(0..3) {
                0 => host(HostMessage::User { data }),
                1 => host(HostMessage::Forward {
                    req: rng.gen(),
                    key: rng.gen_range(0..10),
                    data,
                }),
                _ => Wire::Consensus(Envelope {
                    stream: 1,
                    from: 1,
                    to: 2,
                    msg: Message::TimeoutNow { term: rng.gen() },
                }),
            }
        })
        .collect()
}

fn mutate(rng: &mut StdRng, b: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..7) {
            0 if b.len() > HEADER_LEN => {
                // Inside the compressed bytes (past the length prefix), where
                // the decompressors get exercised.
                let i = rng.gen_range(HEADER_LEN..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if b.len() > HEADER_LEN => {
                let i = rng.gen_range(HEADER_LEN..b.len());
                b[i] = rng.gen();
            }
            2 if b.len() >= HEADER_LEN + 4 => {
                // Lie in the declared plain length.
                let v: u32 = match rng.gen_range(0..3) {
                    0 => u32::MAX,
                    1 => rng.gen_range(0..70_000),
                    _ => {
                        let old = u32::from_le_bytes(b[8..12].try_into().unwrap());
                        old.wrapping_add(rng.gen_range(1..4)).wrapping_sub(2)
                    }
                };
                b[8..12].copy_from_slice(&v.to_le_bytes());
            }
            3 => {
                let n = rng.gen_range(HEADER_LEN.min(b.len())..=b.len());
                b.truncate(n);
            }
            4 if b.len() > HEADER_LEN => {
                let i = rng.gen_range(HEADER_LEN..=b.len());
                let extra: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                b.splice(i..i, extra);
            }
            5 if b.len() >= HEADER_LEN => {
                // Switch the algorithm flag.
                b[3] = rng.gen_range(0..4);
            }
            _ => {}
        }
    }
    // Mostly keep the length field consistent so the payload is reached.
    if b.len() >= HEADER_LEN && rng.gen_range(0..4) != 0 {
        let len = (b.len() - HEADER_LEN) as u32;
        b[4..8].copy_from_slice(&len.to_le_bytes());
    }
}

/// Decodes without panicking; a success must be a frame that survives a
/// plain re-encode and decode.
fn check(codec: &Codec, bytes: &[u8], seed: u64, case: usize) -> bool {
    let res = catch_unwind(AssertUnwindSafe(|| codec.decode(bytes)));
    let Ok(res) = res else {
        panic!("decoder panicked: seed {seed} case {case} input {bytes:02x?}");
    };
    match res {
        Ok(frame) => {
            let mut out = BytesMut::new();
            match &frame {
                Frame::Hello(h) => codec.encode_hello(*h, &mut out),
                Frame::Batch(envs) => {
                    if codec.encode_batch(envs, &mut out).is_err() {
                        return true;
                    }
                }
            }
            assert_eq!(
                codec.decode(&out).as_ref(),
                Ok(&frame),
                "seed {seed} case {case}"
            );
            true
        }
        Err(_) => false,
    }
}

#[test]
fn mutated_compressed_frames_never_panic() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let max = 64 * 1024;
    let receiver = Codec::new(max);
    let mut compressed = [0usize; 3];
    let mut failed = 0;
    for case in 0..6000 {
        let c = [Compression::Lz4, Compression::Zstd][case % 2];
        let level = if c == Compression::Lz4 {
            rng.gen_range(1..=9)
        } else {
            rng.gen_range(1..=5)
        };
        let sender = Codec::new(max).with_compression(c, level);
        let envs = batch(&mut rng);
        let mut out = BytesMut::new();
        sender.encode_batch(&envs, &mut out).unwrap();
        let bytes = out.to_vec();
        compressed[usize::from(bytes[3])] += 1;
        assert_eq!(
            receiver.decode(&bytes),
            Ok(Frame::Batch(envs)),
            "round trip: seed {seed} case {case}"
        );
        let mut m = bytes.clone();
        mutate(&mut rng, &mut m);
        if !check(&receiver, &m, seed, case) {
            failed += 1;
        }
    }
    assert!(
        compressed[1] > 1000 && compressed[2] > 1000,
        "seed {seed}: too few compressed frames {compressed:?}"
    );
    assert!(
        failed > 3000,
        "seed {seed}: mutations mostly decoded ({failed})"
    );
}

#[test]
fn random_compressed_payloads_never_panic() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let codec = Codec::new(64 * 1024);
    for case in 0..20_000 {
        let c = [Compression::Lz4, Compression::Zstd][case % 2];
        let mut payload: Vec<u8> = Vec::new();
        let declared: u32 = match rng.gen_range(0..3) {
            0 => rng.gen_range(0..64),
            1 => rng.gen_range(0..70_000),
            _ => rng.gen(),
        };
        payload.extend_from_slice(&declared.to_le_bytes());
        if c == Compression::Zstd && rng.gen() {
            // A valid zstd magic so the frame header parser is reached.
            payload.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        }
        payload.extend((0..rng.gen_range(0..200)).map(|_| rng.gen::<u8>()));
        let mut b = FrameHeader::new(c, payload.len()).to_bytes().to_vec();
        b.extend_from_slice(&payload);
        check(&codec, &b, seed, case);
    }
}
