//! The key-value service of `dcf-node`: a deterministic state machine
//! applied from stream 1 ([`machine`]), the client wire protocol
//! ([`protocol`]), the server that ties them to the DCF engine
//! ([`server`]) and a client used by `dcfctl` and the harness ([`client`]).

pub mod checkpoint;
pub mod client;
pub mod machine;
pub mod protocol;
pub mod server;
