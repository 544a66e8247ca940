//! A test kit for the consensus core (the `testing` feature): member and
//! option fixtures, an in-memory disk model and an in-memory network of
//! [`StreamCore`](crate::StreamCore)s.
//!
//! - [`fixtures`]: members, options and entries as the scenario tests,
//!   unit tests, benches and the simulator build them;
//! - [`Disk`]: what a node keeps on disk: hard state, work mode, the
//!   host's applied index, and the log as a durable prefix plus an unsynced
//!   tail that a crash loses;
//! - [`Net`]: nodes stepped on a shared clock, with optional message loss
//!   and delay, isolation, crashes and restarts; it carries out every
//!   action the cores emit and records what the tests look at (applied
//!   entries, reads, role changes, exceptions, appends sent).
//!
//! Everything here is deterministic: randomness (loss, delay jitter) comes
//! from a seed the caller chooses, and the kit prints it.

mod disk;
pub mod fixtures;
mod net;

pub use disk::Disk;
pub use net::{Net, SentAppend, Storage};
