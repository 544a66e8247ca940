//! # nemesis
//!
//! The faults the harness injects into a deployed cluster: kernel-level
//! partitions, SIGKILL and restart, SIGSTOP/SIGCONT pauses, clock skew,
//! slow and lossy links, power loss, disk corruption, membership changes,
//! minority mode and log compaction. Every fault has a start
//! and a stop that undoes it, and schedules say when each runs. Faults act
//! through [`control::ClusterControl`], which each deployment implements.
//!
//! - [`faults`]: the fault kinds, one module each, registered in one list;
//! - [`control`]: what faults need of a deployment ([`ClusterControl`]);
//! - [`topology`]: partition shapes as grudges;
//! - [`target`]: which nodes a kill or pause hits;
//! - [`choice`]: what the randomised schedule picks from (`partition`,
//!   `partition:leader`);
//! - [`schedule`]: the randomised schedules (composed, serial) and the
//!   explicit grammar;
//! - [`runner`]: [`Nemesis`], which executes a schedule and undoes it all.

pub mod choice;
pub mod control;
pub mod faults;
pub mod links;
pub mod members;
pub mod runner;
pub mod schedule;
pub mod target;
pub mod topology;

pub use choice::FaultChoice;
pub use control::{
    Capability, ClockSkew, ClusterControl, FaultError, Grudge, Link, LinkDelay, NodeId,
};
pub use faults::{style_of, ActiveFaults, Fault, FaultKind, FaultStyle, FaultType};
pub use links::LinkTarget;
pub use members::{MemberAck, MemberChange, MemberReply};
pub use runner::{Nemesis, NemesisEvent, Phase};
pub use schedule::{
    parse_explicit, parse_schedule, Action, ComposedSchedule, DefaultTiming, Schedule,
    ScheduleError, SerialSchedule, Step,
};
pub use target::Target;
pub use topology::Topology;
