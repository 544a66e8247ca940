//! # workloads
//!
//! What the harness's clients do: each workload names its operation
//! generator, the client that turns an operation into requests to a
//! `dcf-node`, and the checkers that judge the resulting history
//! (register → linearizability, list-append → Elle-style cycles).
