//! Deliberate defects for testing a harness, never for production: each
//! breaks one rule of the protocol at the place the rule lives, so that a
//! test can show the harness catches the class of bug. All are off unless
//! a host turns them on explicitly (`dcf-node --planted-bug NAME`, which
//! also needs `DCF_ALLOW_PLANTED_BUGS=1`).

/// The defects the consensus core can carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Breaks "a read is served only after a quorum confirmed the leader
    /// still leads": a leader that heard from a quorum within one election
    /// timeout by its own clock serves reads at once (a lease trusting the
    /// local clock, which a skewed or paused clock defeats).
    pub read_lease: bool,
    /// Breaks "no configuration change before the leader committed an
    /// entry of its own term, and one change at a time".
    pub unsafe_member_change: bool,
    /// Breaks "a candidate entering minority mode raises its term by
    /// 1000", which fences off the old majority's terms.
    pub minority_without_term_bump: bool,
    /// Breaks "only entries of the leader's own term are committed by
    /// counting replicas" (Raft's figure 8): an older term's entry stored
    /// on a quorum counts as committed, though a later leader may still
    /// overwrite it.
    pub old_term_commit: bool,
    /// Breaks "a vote is durable before it is answered": the vote lives in
    /// memory only, so a node restarted in the same term can vote again.
    pub vote_not_persisted: bool,
    /// Breaks "a leader that sees a higher term steps down": it adopts the
    /// term but goes on leading, beside the leader elected in that term.
    pub no_step_down: bool,
    /// Breaks "a follower commits (and applies) no further than the
    /// leader's commit index": it takes everything it received and matched
    /// as committed.
    pub apply_beyond_commit: bool,
}
