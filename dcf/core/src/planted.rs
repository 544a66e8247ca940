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
}
