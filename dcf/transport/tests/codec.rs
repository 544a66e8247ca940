//! Round trips of every message variant and rejection of each kind of
//! malformed frame, with hand-built inputs.

use bytes::BytesMut;
use dcf_core::{
    AppendRequest, AppendResponse, Entry, EntryKind, Envelope, LogTail, LogTailResponse, Message,
    VoteRequest, VoteResponse,
};
use dcf_transport::{
    Codec, Frame, FrameError, Hello, HostEnvelope, HostMessage, SnapshotStatus, Wire, HEADER_LEN,
    MAGIC, VERSION,
};

fn env(msg: Message) -> Wire {
    Wire::Consensus(Envelope {
        stream: 7,
        from: 1,
        to: 2,
        msg,
    })
}

fn host(msg: HostMessage) -> Wire {
    Wire::Host(HostEnvelope {
        stream: 7,
        from: 1,
        to: 2,
        msg,
    })
}

/// Every consensus and every host message, some of them twice.
fn all_variants() -> Vec<Wire> {
    vec![
        env(Message::VoteRequest(VoteRequest {
            term: 5,
            pre_vote: true,
            last_index: 100,
            last_term: 4,
            transfer: false,
        })),
        env(Message::VoteRequest(VoteRequest {
            term: u64::MAX,
            pre_vote: false,
            last_index: u64::MAX,
            last_term: 0,
            transfer: true,
        })),
        env(Message::VoteResponse(VoteResponse {
            term: 9,
            pre_vote: false,
            granted: true,
        })),
        env(Message::Append(AppendRequest {
            term: 3,
            prev_index: 10,
            prev_term: 2,
            entries: vec![
                Entry {
                    term: 3,
                    index: 11,
                    key: 42,
                    kind: EntryKind::Data,
                    data: b"hello".to_vec(),
                },
                Entry {
                    term: 3,
                    index: 12,
                    key: u64::MAX,
                    kind: EntryKind::Config,
                    data: vec![],
                },
                Entry {
                    term: 3,
                    index: 13,
                    key: 0,
                    kind: EntryKind::Data,
                    data: (0..=255u8).collect(),
                },
            ],
            commit: 9,
            first_index: 1,
            min_applied: 8,
            seq: 77,
            minority: false,
        })),
        // A heartbeat: an append with no entries.
        env(Message::Append(AppendRequest {
            term: 3,
            prev_index: 13,
            prev_term: 3,
            entries: vec![],
            commit: 13,
            first_index: 1,
            min_applied: 13,
            seq: 78,
            minority: true,
        })),
        env(Message::AppendResponse(AppendResponse {
            term: 3,
            success: true,
            index: 13,
            last_index: 13,
            applied_index: 12,
            seq: 78,
        })),
        env(Message::AppendResponse(AppendResponse {
            term: 4,
            success: false,
            index: 2,
            last_index: 20,
            applied_index: 0,
            seq: 0,
        })),
        env(Message::TimeoutNow { term: 12 }),
        env(Message::WorkModeReport {
            term: 1012,
            minority: true,
        }),
        env(Message::WorkModeReport {
            term: 3,
            minority: false,
        }),
        host(HostMessage::Forward {
            req: 9,
            key: 3,
            data: b"forwarded".to_vec(),
        }),
        host(HostMessage::ForwardReply {
            req: 9,
            accepted: true,
            term: 4,
            index: 77,
            leader: 2,
        }),
        host(HostMessage::User { data: vec![] }),
        host(HostMessage::User {
            data: vec![1, 2, 3],
        }),
        env(Message::LogTail(LogTail {
            term: 3,
            prev_index: 10,
            prev_term: 2,
            entries: vec![Entry {
                term: 3,
                index: 11,
                key: 5,
                kind: EntryKind::Config,
                data: b"{}".to_vec(),
            }],
            last_index: 11,
            last_term: 3,
        })),
        env(Message::LogTailResponse(LogTailResponse {
            term: 4,
            success: false,
            index: 7,
        })),
        host(HostMessage::SnapshotChunk {
            index: 500,
            term: 6,
            members: b"{\"members\":[]}".to_vec(),
            total: 1 << 40,
            offset: 262_144,
            crc: 0xdead_beef,
            data: vec![9; 100],
        }),
        host(HostMessage::SnapshotAck {
            index: 500,
            term: 6,
            next_offset: 262_244,
            status: SnapshotStatus::Installed,
        }),
        Wire::Consensus(Envelope {
            stream: u32::MAX,
            from: u32::MAX,
            to: 0,
            msg: Message::TimeoutNow { term: 0 },
        }),
        Wire::Host(HostEnvelope {
            stream: u32::MAX,
            from: 0,
            to: u32::MAX,
            msg: HostMessage::User { data: vec![1] },
        }),
    ]
}

fn encode(envs: &[Wire]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Codec::default().encode_batch(envs, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn every_variant_round_trips_alone_and_batched() {
    let codec = Codec::default();
    let all = all_variants();
    for e in &all {
        let bytes = encode(std::slice::from_ref(e));
        assert_eq!(bytes.len(), HEADER_LEN + 5 + Codec::envelope_len(e));
        assert_eq!(
            codec.decode(&bytes),
            Ok(Frame::Batch(vec![e.clone()])),
            "{e:?}"
        );
    }
    let bytes = encode(&all);
    assert_eq!(codec.decode(&bytes), Ok(Frame::Batch(all)));
    assert_eq!(codec.decode(&encode(&[])), Ok(Frame::Batch(vec![])));
}

#[test]
fn hello_round_trips() {
    let codec = Codec::default();
    let mut out = BytesMut::new();
    let h = Hello { from: 3, to: 250 };
    codec.encode_hello(h, &mut out);
    assert_eq!(&out[..4], &[MAGIC[0], MAGIC[1], VERSION, 0]);
    assert_eq!(codec.decode(&out), Ok(Frame::Hello(h)));
}

#[test]
fn header_layout_is_as_documented() {
    let e = env(Message::TimeoutNow { term: 0x0102 });
    let b = encode(&[e]);
    assert_eq!(&b[0..2], b"DF");
    assert_eq!(b[2], 1);
    assert_eq!(b[3], 0);
    let len = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, b.len() - HEADER_LEN);
    // kind 2 (batch), count 1, stream 7, from 1, to 2, tag 5, term.
    assert_eq!(b[8], 2);
    assert_eq!(&b[9..13], &1u32.to_le_bytes());
    assert_eq!(&b[13..17], &7u32.to_le_bytes());
    assert_eq!(b[25], 5);
    assert_eq!(&b[26..34], &0x0102u64.to_le_bytes());
}

/// Consensus and host messages share one tag space, with the tags of the
/// documented layout (which nodes of earlier versions also speak).
#[test]
fn every_message_has_its_documented_tag() {
    let tag = |w: &Wire| encode(std::slice::from_ref(w))[HEADER_LEN + 5 + 12];
    let mut seen = std::collections::BTreeSet::new();
    for w in all_variants() {
        let want = match &w {
            Wire::Consensus(e) => match e.msg {
                Message::VoteRequest(_) => 1,
                Message::VoteResponse(_) => 2,
                Message::Append(_) => 3,
                Message::AppendResponse(_) => 4,
                Message::TimeoutNow { .. } => 5,
                Message::WorkModeReport { .. } => 9,
                Message::LogTail(_) => 10,
                Message::LogTailResponse(_) => 11,
            },
            Wire::Host(e) => match e.msg {
                HostMessage::Forward { .. } => 6,
                HostMessage::ForwardReply { .. } => 7,
                HostMessage::User { .. } => 8,
                HostMessage::SnapshotChunk { .. } => 12,
                HostMessage::SnapshotAck { .. } => 13,
            },
        };
        assert_eq!(tag(&w), want, "{w:?}");
        seen.insert(want);
    }
    assert_eq!(seen.len(), 13, "every message kind is among the variants");
}

/// Sets the header's payload length to match a hand-edited payload.
fn fix_len(b: &mut [u8]) {
    let len = (b.len() - HEADER_LEN) as u32;
    b[4..8].copy_from_slice(&len.to_le_bytes());
}

#[test]
fn rejects_each_kind_of_malformed_frame() {
    let codec = Codec::default();
    let good = encode(&[env(Message::TimeoutNow { term: 1 })]);

    let mut b = good.clone();
    b[1] = b'X';
    assert_eq!(codec.decode(&b), Err(FrameError::BadMagic([b'D', b'X'])));

    let mut b = good.clone();
    b[2] = 9;
    assert_eq!(codec.decode(&b), Err(FrameError::UnknownVersion(9)));

    let mut b = good.clone();
    b[3] = 0x10;
    assert_eq!(codec.decode(&b), Err(FrameError::UnknownFlags(0x10)));
    // A plain payload flagged as ZSTD does not decompress.
    b[3] = 2;
    assert!(matches!(
        codec.decode(&b),
        Err(FrameError::Decompress { .. } | FrameError::Oversize { .. })
    ));

    assert!(matches!(
        codec.decode(&good[..5]),
        Err(FrameError::Truncated { .. })
    ));
    assert!(matches!(
        codec.decode(&good[..good.len() - 1]),
        Err(FrameError::Truncated { .. })
    ));

    let mut b = good.clone();
    b.push(0);
    assert_eq!(codec.decode(&b), Err(FrameError::TrailingBytes(1)));

    // Trailing bytes inside the payload (length covers them).
    let mut b = good.clone();
    b.extend_from_slice(&[0, 0, 0]);
    fix_len(&mut b);
    assert_eq!(codec.decode(&b), Err(FrameError::TrailingBytes(3)));

    let mut b = good.clone();
    b[8] = 3;
    assert_eq!(codec.decode(&b), Err(FrameError::UnknownFrameKind(3)));

    let mut b = good.clone();
    b[25] = 99;
    assert_eq!(codec.decode(&b), Err(FrameError::UnknownMessageTag(99)));

    // Entry kind byte of the first entry of an append.
    let append = env(Message::Append(AppendRequest {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: vec![Entry {
            term: 1,
            index: 1,
            key: 0,
            kind: EntryKind::Data,
            data: vec![1, 2, 3],
        }],
        commit: 0,
        first_index: 1,
        min_applied: 0,
        seq: 0,
        minority: false,
    }));
    let mut b = encode(std::slice::from_ref(&append));
    let entry_kind_at = 26 + 7 * 8 + 1 + 4 + 24;
    assert_eq!(b[entry_kind_at], 0);
    b[entry_kind_at] = 2;
    assert_eq!(codec.decode(&b), Err(FrameError::UnknownEntryKind(2)));

    // Entry data length longer than what remains.
    let mut b = encode(&[append]);
    b[entry_kind_at + 1..entry_kind_at + 5].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        codec.decode(&b),
        Err(FrameError::Truncated { .. })
    ));

    // A boolean that is neither 0 nor 1.
    let mut b = encode(&[env(Message::VoteResponse(VoteResponse {
        term: 1,
        pre_vote: false,
        granted: true,
    }))]);
    b[34] = 2;
    assert_eq!(codec.decode(&b), Err(FrameError::InvalidBool(2)));
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let codec = Codec::default();
    let mut b = encode(&[env(Message::TimeoutNow { term: 1 })]);
    b[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        codec.decode(&b),
        Err(FrameError::CountTooLarge {
            count: u32::MAX,
            ..
        })
    ));
    let append = env(Message::Append(AppendRequest {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: vec![],
        commit: 0,
        first_index: 1,
        min_applied: 0,
        seq: 0,
        minority: true,
    }));
    let mut b = encode(&[append]);
    let count_at = 26 + 7 * 8 + 1;
    b[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        codec.decode(&b),
        Err(FrameError::CountTooLarge { what: "entry", .. })
    ));
}

#[test]
fn oversize_is_rejected_on_both_sides() {
    let small = Codec::new(100);
    let big = env(Message::Append(AppendRequest {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: vec![Entry {
            term: 1,
            index: 1,
            key: 0,
            kind: EntryKind::Data,
            data: vec![0; 200],
        }],
        commit: 0,
        first_index: 1,
        min_applied: 0,
        seq: 0,
        minority: false,
    }));
    let mut out = BytesMut::new();
    assert!(matches!(
        small.encode_batch(std::slice::from_ref(&big), &mut out),
        Err(FrameError::Oversize { max: 100, .. })
    ));
    assert!(
        out.is_empty(),
        "a failed encode leaves the output untouched"
    );
    let bytes = encode(&[big]);
    assert!(matches!(
        small.decode(&bytes),
        Err(FrameError::Oversize { max: 100, .. })
    ));
    // Only the header is needed to refuse it.
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&bytes[..HEADER_LEN]);
    assert!(dcf_transport::FrameHeader::parse(&header, 100).is_err());
}

#[test]
fn encode_batches_splits_and_skips_oversize() {
    let codec = Codec::new(200);
    let small = env(Message::TimeoutNow { term: 1 }); // 21 bytes each
    let huge = env(Message::Append(AppendRequest {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: vec![Entry {
            term: 1,
            index: 1,
            key: 0,
            kind: EntryKind::Data,
            data: vec![0; 300],
        }],
        commit: 0,
        first_index: 1,
        min_applied: 0,
        seq: 0,
        minority: true,
    }));
    let mut envs = vec![small.clone(); 20];
    envs.insert(5, huge);
    let mut out = BytesMut::new();
    let r = codec.encode_batches(&envs, &mut out);
    assert_eq!(r.oversize, 1);
    assert_eq!(r.envelopes, 20);
    // 9 envelopes of 21 bytes + 5 fixed = 194 <= 200 per frame.
    assert_eq!(r.frames, 3);
    // Decode the frames back one by one: order is preserved.
    let mut rest = &out[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        assert!(len <= 200);
        match codec.decode(&rest[..HEADER_LEN + len]).unwrap() {
            Frame::Batch(v) => got.extend(v),
            f => panic!("unexpected {f:?}"),
        }
        rest = &rest[HEADER_LEN + len..];
    }
    assert_eq!(got, vec![small; 20]);
}
