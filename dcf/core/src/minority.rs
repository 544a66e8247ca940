//! # Minority mode guarantees
//!
//! `StreamCore::set_work_mode(now, WorkMode::Minority { vote_num })` is
//! DCF's emergency switch for when the majority of a stream is lost. It
//! deliberately trades safety for availability. What it does:
//!
//! - M1. `vote_num` must be in `1..=V`, `V` = the number of voting members
//!   (FOLLOWER/LEADER and LOGGER) of the node's configuration; otherwise
//!   `WorkModeError::BadVoteNum` and nothing changes. The mode is local to
//!   the node it is called on and is persisted through
//!   `Action::SaveWorkMode` (the host restores it with
//!   `StreamCore::restore_work_mode` after a restart).
//! - M2. A non-leader that may lead, switching from normal to minority
//!   mode, becomes CANDIDATE at once with term = old term + 1000 (no
//!   pre-vote) and wins with `vote_num` granted votes, each voter counting
//!   1 whatever its weight (its own vote included). A leader switching keeps
//!   its term and leadership.
//! - M3. A minority leader commits an entry of its own term once it is
//!   durable on `vote_num` voting members counting 1 each, among which only
//!   itself and followers whose latest `WorkModeReport` (sent at least
//!   once per heartbeat interval while either side is in minority mode)
//!   said "minority" and arrived within 2 × election timeout.
//!   MAJORITY_GROUPS are ignored in minority mode.
//! - M4. A minority leader never steps down by itself: it ignores higher
//!   terms (refuses their vote requests, drops their appends) and does not
//!   check that it hears from a quorum.
//! - M5. A node in normal mode that is not a leader follows a leader that
//!   flags its appends as minority even if that leader's term is lower
//!   than its own; it keeps its own (higher) term and vote.
//! - M6. Membership, role and priority changes and leadership transfers
//!   are refused while the leader is in minority mode
//!   (`ConfigChangeError::MinorityMode`, `LeadershipError::MinorityMode`).
//!
//! ## What still holds in minority mode
//!
//! - G1 (no committed entry is ever dropped by a node). A node never
//!   truncates an entry at or below its own commit index. A follower whose
//!   committed entry conflicts with the minority leader's log refuses that
//!   leader's appends and raises `Exception::CommittedEntryConflict` (at
//!   most once a second) until the host rebuilds it (wipes the stream's
//!   data and restarts it empty); its commit index never decreases and the
//!   entries it applied are never handed out again.
//! - G2 (the minority leader keeps its own log). Every entry in the
//!   minority leader's log when it entered minority mode, or appended
//!   since, stays in its log while it leads, and once it commits an entry
//!   of its own term all entries before that one are committed on it, in
//!   log order.
//! - G3 (per-node order). On every node, entries are handed to the host
//!   (`Action::Apply`) once each, in index order, and only after they are
//!   committed on that node.
//! - G4 (liveness). With `vote_num` = 1, a lone surviving voter set to
//!   minority mode becomes leader and commits new writes without any other
//!   node.
//!
//! ## What does NOT hold in minority mode
//!
//! - L1 (lost writes). Writes acknowledged (committed) by the lost
//!   majority that the minority leader's log does not contain are lost to
//!   the cluster: nodes on which they are not committed silently truncate
//!   them when they follow the minority leader; nodes on which they are
//!   committed refuse it (G1) and must be rebuilt, losing them too.
//! - L2 (split brain). If the "lost" majority is in fact alive, or several
//!   nodes are switched to minority mode with `2 × vote_num <= V`, two
//!   leaders can commit different entries at the same index: committed
//!   entries then differ between nodes, and reads are not linearizable.
//! - L3 (election safety). Two leaders may exist at the same time (a
//!   minority leader never steps down, M4).
//!
//! ## On the way back (`set_work_mode(now, WorkMode::Normal)`)
//!
//! - N1. The quorum becomes the weighted majority of the node's
//!   configuration again (plus MAJORITY_GROUPS); no election is forced
//!   and the leader keeps its term. It steps down as usual if it cannot
//!   hear from a quorum for 2 × election timeout (AUTO), or on seeing a
//!   higher term (normal-mode nodes that followed it with a higher term,
//!   M5, now answer with that term and make it step down; an election
//!   follows).
//! - N2 (what survives). An entry committed by the minority leader
//!   survives the return to normal (is in the log of every later leader
//!   and is never truncated by any node) if, after that leader returned
//!   to normal mode and while it was still leader in the same term, its
//!   commit index reached an index at or above that entry (i.e. an entry
//!   of its term was stored on a weighted majority of its configuration)
//!   and no node is in minority mode afterwards. From that point on all
//!   normal-mode guarantees hold again. Entries committed only in
//!   minority mode and not so confirmed can be lost if a node without
//!   them is elected (for example a majority whose term exceeds the
//!   minority leader's term).
//! - N3. Nodes that rejoin with a log that conflicts with the minority
//!   leader's only in uncommitted entries converge to the leader's log
//!   (their conflicting tail is truncated); nodes with conflicting
//!   committed entries stay out (G1) until rebuilt.
