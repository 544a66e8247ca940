//! # nemesis
//!
//! The faults the harness injects into a deployed cluster: kernel-level
//! partitions, SIGKILL and restart, SIGSTOP/SIGCONT pauses, clock skew, disk
//! corruption and membership changes. Every fault has a start and a stop that
//! undoes it, and schedules say when each runs.
