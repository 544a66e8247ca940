//! The client wire protocol of `dcf-node`: every message is a 4-byte
//! big-endian length followed by that many bytes of JSON. A length over
//! [`MAX_FRAME`] closes the connection (the stream can no longer be
//! trusted); a frame that is not a valid request gets an error reply.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::machine::{MicroOp, WriteTag};

/// Largest accepted frame (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// A client request; `id` is echoed in the response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
    /// A write's exactly-once tag: a retry of the write carries the same
    /// tag, and the node applies a tag at most once, answering a retry
    /// with the first application's result. Absent (older clients, reads,
    /// admin requests): no deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<WriteTag>,
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RequestBody {
    /// Linearizable read of one key.
    Get {
        key: String,
    },
    Put {
        key: String,
        value: Value,
    },
    Cas {
        key: String,
        from: Value,
        to: Value,
    },
    Append {
        key: String,
        value: Value,
    },
    /// A transaction of micro-operations applied atomically.
    Txn {
        ops: Vec<MicroOp>,
    },
    /// The contacted node's stream info (stream 1).
    Status,
    /// The contacted node's cluster info.
    ClusterInfo,
    SetParam {
        name: String,
        value: String,
    },
    GetParam {
        name: String,
    },
    /// Add a node (`gs_ctl member --operation=add`); sent to the leader.
    MemberAdd {
        node_id: u32,
        ip: String,
        port: u16,
        role: String,
        wait_ms: u64,
    },
    /// Remove a node; sent to the leader.
    MemberRemove {
        node_id: u32,
        wait_ms: u64,
    },
    /// Change a node's role (FOLLOWER, PASSIVE, LOGGER); sent to the leader.
    MemberRole {
        node_id: u32,
        role: String,
        wait_ms: u64,
    },
    /// Hand leadership to a node (`cm_ctl switchover`); sent to the leader.
    Promote {
        node_id: u32,
        timeout_ms: u64,
    },
    /// The leader gives up leadership.
    Demote,
    /// Work mode of the contacted node (`cm_ctl setrunmode`):
    /// `normal`, or `minority` with `vote_num`.
    SetWorkMode {
        mode: String,
        vote_num: Option<u64>,
    },
    /// Change a node's election priority; sent to the leader.
    SetPriority {
        node_id: u32,
        priority: u64,
        wait_ms: u64,
    },
    /// Pause replication from the leader to a node for `time_us` µs.
    PauseRep {
        node_id: u32,
        time_us: u64,
    },
    /// `dcf_truncate` on the contacted node: drop its log entries below
    /// `first_kept` (entries not yet applied are kept).
    Truncate {
        first_kept: u64,
    },
}

impl RequestBody {
    /// True if the request changes state (so a lost reply is indeterminate).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            RequestBody::Put { .. }
                | RequestBody::Cas { .. }
                | RequestBody::Append { .. }
                | RequestBody::Txn { .. }
                | RequestBody::SetParam { .. }
                | RequestBody::MemberAdd { .. }
                | RequestBody::MemberRemove { .. }
                | RequestBody::MemberRole { .. }
                | RequestBody::Promote { .. }
                | RequestBody::Demote
                | RequestBody::SetWorkMode { .. }
                | RequestBody::SetPriority { .. }
                | RequestBody::PauseRep { .. }
                | RequestBody::Truncate { .. }
        )
    }
}

/// The three outcomes of a request, as in Jepsen: done, definitely not
/// done, or unknown (a write that may still take effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done; `value` holds the result.
    Ok,
    /// Definitely did not and will not take effect.
    Fail,
    /// May or may not take effect.
    Info,
}

/// Why a request failed or has an unknown outcome. Clients act on the
/// code (the `error` text is for people): only [`FailureCode::executed`]
/// codes mean the operation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCode {
    /// The node is not the leader, or not ready to lead; nothing was done.
    NotLeader,
    /// The leader could not confirm its leadership with a quorum.
    NoQuorum,
    /// A cas ran and found a value other than its `from`.
    CasMismatch,
    /// No answer in time; for a write the outcome is unknown.
    Timeout,
    /// The request was malformed or its arguments invalid.
    BadRequest,
    /// Another leader's entry took the proposed index: it never applied.
    Replaced,
    /// The node is stopping; for a write the outcome is unknown.
    Stopping,
    /// No node could be reached, so nothing was sent (client side).
    Unreachable,
    /// The connection broke after the request was sent (client side).
    ConnectionLost,
    /// Refused for another reason (an admin change, a parameter).
    Refused,
    /// An internal error (storage, transport) of the node.
    Internal,
}

impl FailureCode {
    /// True when a failure with this code means the operation was carried
    /// out and observed the state: a cas that found another value. Every
    /// other failure did not run (or, as `info`, may have).
    pub fn executed(self) -> bool {
        matches!(self, FailureCode::CasMismatch)
    }

    /// The code's name on the wire (`not-leader`, `cas-mismatch`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::NotLeader => "not-leader",
            FailureCode::NoQuorum => "no-quorum",
            FailureCode::CasMismatch => "cas-mismatch",
            FailureCode::Timeout => "timeout",
            FailureCode::BadRequest => "bad-request",
            FailureCode::Replaced => "replaced",
            FailureCode::Stopping => "stopping",
            FailureCode::Unreachable => "unreachable",
            FailureCode::ConnectionLost => "connection-lost",
            FailureCode::Refused => "refused",
            FailureCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub outcome: Outcome,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it failed or is indeterminate (absent on `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<FailureCode>,
    /// When the node is not the leader: the leader's node id, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u32>,
    /// When the node is not the leader: the leader's DCF address (ip:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
    /// The node that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
}

impl Response {
    pub fn ok(id: u64, value: Value) -> Response {
        Response {
            id,
            outcome: Outcome::Ok,
            value,
            error: None,
            code: None,
            leader_id: None,
            leader_addr: None,
            node: None,
        }
    }
    /// A definite failure with its code.
    pub fn fail(id: u64, code: FailureCode, error: impl Into<String>) -> Response {
        Response {
            outcome: Outcome::Fail,
            error: Some(error.into()),
            code: Some(code),
            ..Response::ok(id, Value::Null)
        }
    }
    /// An unknown outcome with its code.
    pub fn info(id: u64, code: FailureCode, error: impl Into<String>) -> Response {
        Response {
            outcome: Outcome::Info,
            error: Some(error.into()),
            code: Some(code),
            ..Response::ok(id, Value::Null)
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> std::io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame of {} bytes is too large", payload.len()),
        ));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_have_a_stable_json_shape() {
        let r = Request {
            id: 7,
            body: RequestBody::Cas {
                key: "k".into(),
                from: json!(1),
                to: json!(2),
            },
            tag: None,
        };
        let s = serde_json::to_value(&r).unwrap();
        assert_eq!(s, json!({"id":7,"type":"cas","key":"k","from":1,"to":2}));
        let back: Request = serde_json::from_value(s).unwrap();
        assert_eq!(back, r);
        let resp = Response::fail(7, FailureCode::CasMismatch, "cas mismatch");
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["outcome"], "fail");
        assert_eq!(v["code"], "cas-mismatch");
        let back: Response = serde_json::from_value(v).unwrap();
        assert_eq!(back.code, Some(FailureCode::CasMismatch));
        // Replies without a code (older nodes) still parse.
        let old: Response =
            serde_json::from_value(json!({"id": 1, "outcome": "fail", "error": "x"})).unwrap();
        assert_eq!(old.code, None);
    }

    #[test]
    fn a_write_tag_is_optional_on_the_wire() {
        let r = Request {
            id: 3,
            body: RequestBody::Append {
                key: "l".into(),
                value: json!(1),
            },
            tag: Some(WriteTag { client: 5, seq: 9 }),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tag"], json!({"client": 5, "seq": 9}));
        assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
        // A request of an older client (no tag) still decodes, untagged.
        let old: Request =
            serde_json::from_value(json!({"id": 1, "type": "put", "key": "k", "value": 2}))
                .unwrap();
        assert_eq!(old.tag, None);
        // No tag is written when there is none.
        let get = Request {
            id: 1,
            body: RequestBody::Get { key: "k".into() },
            tag: None,
        };
        assert!(serde_json::to_value(&get).unwrap().get("tag").is_none());
    }

    #[test]
    fn only_a_cas_mismatch_means_the_operation_ran() {
        use FailureCode::*;
        for c in [
            NotLeader,
            NoQuorum,
            Timeout,
            BadRequest,
            Replaced,
            Stopping,
            Unreachable,
            ConnectionLost,
            Refused,
            Internal,
        ] {
            assert!(!c.executed(), "{c}");
            let wire = serde_json::to_value(c).unwrap();
            assert_eq!(wire, c.as_str());
        }
        assert!(CasMismatch.executed());
    }

    #[tokio::test]
    async fn oversize_frames_are_refused() {
        let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut data).await,
            Err(FrameError::TooLarge(_))
        ));
        let mut ok: Vec<u8> = vec![];
        write_frame(&mut ok, b"{}").await.unwrap();
        let mut rd: &[u8] = &ok;
        assert_eq!(read_frame(&mut rd).await.unwrap().unwrap(), b"{}");
        assert!(read_frame(&mut rd).await.unwrap().is_none());
    }
}
