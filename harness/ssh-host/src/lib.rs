//! # ssh-host
//!
//! What the harness needs from a host it reaches over SSH, on libssh2
//! (the `ssh2` crate): a session per host reused for the whole run (and
//! re-established once when it breaks), host keys verified against
//! `known_hosts` (unknown and changed keys refused with the fingerprint,
//! unless trust-on-first-use is asked for), commands built only from
//! quoted arguments, uploads that skip files already there, processes
//! started detached with a pid file and signalled by that pid, and SFTP
//! downloads of whole directories.

pub mod host;
pub mod quote;
pub mod spec;

pub use host::{ConnectOptions, HostKeyPolicy, Output, SshError, SshHost};
pub use quote::{command_line, quote};
pub use spec::{parse_hosts_file, HostSpec};
