//! # dcf-core
//!
//! The pure consensus state machine of DCF, one instance per stream. It
//! takes events (a message, a clock tick, a client proposal, "storage made
//! these entries durable") and returns actions (send, persist, apply,
//! reply). It has no tokio, sockets, files or clocks, so it can be unit
//! tested and run in a seeded deterministic simulation.
//!
//! # Membership changes
//!
//! [`StreamCore::add_member`], [`StreamCore::remove_member`],
//! [`StreamCore::change_member_role`] and
//! [`StreamCore::set_election_priority`] run on the leader and change one
//! node at a time through a configuration entry holding the whole new
//! membership, which every node adopts as soon as it is appended to its
//! log (and rolls back if the entry is truncated):
//! - refused ([`ConfigChangeError`]) unless this node is the leader, has
//!   committed an entry of its own term, no configuration entry above the
//!   commit index exists, no node is catching up, no transfer is running
//!   and the node is in normal work mode;
//! - [`check_single_change`]: the old and new weighted quorums must
//!   intersect (always true for a weight-1 voter), a voter that may lead
//!   must remain;
//! - a new voting member (or PASSIVE -> FOLLOWER) first catches up as a
//!   non-voting peer; the entry is appended once its match index is within
//!   `CoreOptions::catchup_max_lag` of the leader's last index, or the
//!   change fails after `catchup_timeout_elections` election timeouts;
//! - role changes: FOLLOWER <-> PASSIVE only (DCF's rule; switching to
//!   PASSIVE needs more than 3 voters; not the leader itself). LOGGER role
//!   changes are refused: a LOGGER has no state machine;
//! - the leader keeps replicating to a removed node until the removal
//!   commits; a leader that removed itself hands over (TimeoutNow to the
//!   most caught-up voter) and steps down once the removal commits;
//! - a node may campaign (and be voted for) if it may lead in its newest
//!   configuration, or that configuration is uncommitted and it may lead in
//!   the newest committed one; a node whose removal it (or the voter)
//!   knows committed never campaigns (gets no vote), and pre-vote keeps a
//!   removed node that missed its removal from bumping anyone's term;
//! - a node that is not in its configuration applies nothing until it is
//!   (a fresh node may be started with the old configuration).
//!
//! The result is followed with the returned [`ConfigChangeStarted`] ticket
//! and [`StreamCore::config_change_status`] (DCF's wait_timeout: poll until
//! `Committed` or `Failed`; a timeout while `CatchingUp`/`Appended` may
//! still succeed), or [`StreamCore::pending_config_change`].
//!
//! # Actions the host must carry out (besides the original ones)
//!
//! - [`Action::SaveWorkMode`]: persist the mode durably before later
//!   actions (`ControlFile::save_work_mode`), and after a restart call
//!   [`StreamCore::restore_work_mode`] with it right after
//!   [`StreamCore::new`].
//! - [`Exception::CommittedEntryConflict`] (inside [`Action::Exception`]):
//!   report it (DCF exception callback); the node must be rebuilt.
//!
//! See [`minority`] for what minority mode guarantees.
//!
//! # Test kit
//!
//! With the `testing` feature, `dcf_core::testing` offers member and
//! option fixtures, an in-memory disk model and an in-memory network of
//! cores with loss, delay, crashes and restarts; this crate's own tests,
//! benches and simulator are built on it.

pub mod config;
pub mod flow;
pub mod types;

pub use config::{
    ClusterConfig, ConfigError, Member, MemberKind, NodeId, Role, StreamId, StreamMembers,
};
pub use types::{
    AppendRequest, AppendResponse, Entry, EntryKind, Envelope, Index, LogTail, LogTailResponse,
    Message, Term, VoteRequest, VoteResponse,
};
pub mod log;
pub mod planted;
pub mod quorum;
pub mod snapshot;
pub mod stream;

pub mod minority;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use flow::{LoadSample, LoadThresholds};
pub use planted::PlantedBugs;
pub use snapshot::SnapshotMeta;

pub use stream::{
    check_single_change, Action, ConfigChangeError, ConfigChangeStarted, ConfigChangeStatus,
    CoreOptions, Exception, HardState, LeadershipError, PendingConfigChange, Progress,
    ProposeError, Restored, RunMode, StreamCore, StreamStatus, WorkMode, WorkModeError,
};
