//! The part of etcd's v3 gRPC API the harness uses (KV range, put and
//! txn; maintenance status; cluster member add, remove and list), as
//! protobuf messages declared here with their field numbers from etcd's
//! `rpc.proto` and `kv.proto`, called over a tonic channel.
//!
//! Declared by hand rather than generated from the `.proto` files so that
//! building the workspace needs no `protoc`: the README's commands must
//! work on a machine with only the Rust toolchain. Unknown fields in
//! etcd's answers are skipped by the decoder, so only what is read here
//! needs declaring.

use tonic::client::Grpc;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.RangeRequest` (one key; `serializable` lets the
/// contacted member answer from its own state).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.Compare.CompareResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    Equal = 0,
    Greater = 1,
    Less = 2,
    NotEqual = 3,
}

/// `etcdserverpb.Compare.CompareTarget`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    Version = 0,
    Create = 1,
    Mod = 2,
    Value = 3,
}

/// `etcdserverpb.Compare`: `target_union` holds the value compared with.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub result: i32,
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(oneof = "TargetUnion", tags = "6, 7")]
    pub target_union: Option<TargetUnion>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TargetUnion {
    #[prost(int64, tag = "6")]
    ModRevision(i64),
    #[prost(bytes, tag = "7")]
    Value(Vec<u8>),
}

impl Compare {
    /// The key's value equals `value`.
    pub fn value_equals(key: &str, value: &[u8]) -> Compare {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Value(value.to_vec())),
        }
    }

    /// The key was last modified at `revision` (0: it does not exist).
    pub fn mod_revision_equals(key: &str, revision: i64) -> Compare {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::ModRevision(revision)),
        }
    }
}

/// `etcdserverpb.RequestOp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    #[prost(oneof = "Request_", tags = "1, 2")]
    pub request: Option<Request_>,
}

/// The operations a transaction step can be.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request_ {
    #[prost(message, tag = "1")]
    Range(RangeRequest),
    #[prost(message, tag = "2")]
    Put(PutRequest),
}

/// `etcdserverpb.ResponseOp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseOp {
    #[prost(oneof = "Response_", tags = "1, 2")]
    pub response: Option<Response_>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Response_ {
    #[prost(message, tag = "1")]
    Range(RangeResponse),
    #[prost(message, tag = "2")]
    Put(PutResponse),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
    #[prost(message, repeated, tag = "3")]
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

/// `etcdserverpb.Member`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Member {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub peer_urls: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberAddRequest {
    #[prost(string, repeated, tag = "1")]
    pub peer_urls: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberAddResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub member: Option<Member>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberRemoveRequest {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberRemoveResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberListRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberListResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
}

/// A gRPC client of one etcd member; clones share the connection.
#[derive(Clone)]
pub struct EtcdRpc {
    grpc: Grpc<Channel>,
}

impl EtcdRpc {
    pub fn new(channel: Channel) -> EtcdRpc {
        EtcdRpc {
            grpc: Grpc::new(channel),
        }
    }

    /// One unary call of `method` (`/package.Service/Method`).
    async fn call<Q, A>(&mut self, method: &'static str, req: Q) -> Result<A, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(method);
        let resp = self
            .grpc
            .unary(Request::new(req), path, ProstCodec::<Q, A>::default())
            .await?;
        Ok(resp.into_inner())
    }

    pub async fn range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.call("/etcdserverpb.KV/Range", req).await
    }

    pub async fn put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.call("/etcdserverpb.KV/Put", req).await
    }

    pub async fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.call("/etcdserverpb.KV/Txn", req).await
    }

    pub async fn status(&mut self) -> Result<StatusResponse, Status> {
        self.call("/etcdserverpb.Maintenance/Status", StatusRequest {})
            .await
    }

    pub async fn member_add(
        &mut self,
        peer_urls: Vec<String>,
    ) -> Result<MemberAddResponse, Status> {
        self.call(
            "/etcdserverpb.Cluster/MemberAdd",
            MemberAddRequest { peer_urls },
        )
        .await
    }

    pub async fn member_remove(&mut self, id: u64) -> Result<MemberRemoveResponse, Status> {
        self.call(
            "/etcdserverpb.Cluster/MemberRemove",
            MemberRemoveRequest { id },
        )
        .await
    }

    pub async fn member_list(&mut self) -> Result<MemberListResponse, Status> {
        self.call("/etcdserverpb.Cluster/MemberList", MemberListRequest {})
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The encoding of a value compare: field 1 (result) is 0 and so
    /// omitted, target VALUE=3 in field 2, the key in field 3, the value
    /// in field 7 — as etcd's `rpc.proto` numbers them.
    #[test]
    fn compares_use_etcds_field_numbers() {
        let c = Compare::value_equals("k", b"v");
        assert_eq!(
            c.encode_to_vec(),
            vec![0x10, 3, 0x1a, 1, b'k', 0x3a, 1, b'v']
        );
        let c = Compare::mod_revision_equals("k", 5);
        assert_eq!(c.encode_to_vec(), vec![0x10, 2, 0x1a, 1, b'k', 0x30, 5]);
    }

    #[test]
    fn a_txn_put_is_request_op_field_2() {
        let op = RequestOp {
            request: Some(Request_::Put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            })),
        };
        assert_eq!(
            op.encode_to_vec(),
            vec![0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
    }
}
