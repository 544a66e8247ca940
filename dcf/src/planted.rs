//! Deliberate defects a node can be started with, to show that a harness
//! catches the class of bug each stands for. Never for production: they
//! are off unless named with `dcf-node --planted-bug NAME`, which is
//! refused unless the environment also says
//! `DCF_ALLOW_PLANTED_BUGS=1`, so nobody turns one on by accident. Each is
//! a few lines at the place its rule lives, marked `PLANTED BUG`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The environment variable that must be `1` for planted bugs to be accepted.
pub const ALLOW_ENV: &str = "DCF_ALLOW_PLANTED_BUGS";

/// One deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// Reads served from local state without confirming leadership.
    LocalReads,
    /// A write acknowledged (and counted toward commit) before it is fsynced.
    AckBeforeFsync,
    /// A read lease that trusts the local clock.
    ReadLease,
    /// Membership changes before the leader committed an entry of its own
    /// term, and several at once.
    UnsafeMemberChange,
    /// Minority mode without the term bump that fences the old majority.
    MinorityWithoutTermBump,
    /// A torn or corrupt log tail accepted without checking its checksum.
    NoChecksum,
    /// Log truncation (`dcfctl truncate` and automatic compaction) without
    /// taking a checkpoint first; a restart then skips the lost entries.
    TruncateWithoutCheckpoint,
    /// A retried write applied again instead of answered from the record
    /// of its first application.
    DuplicateApply,
    /// Entries of an older term committed by counting replicas (Raft's
    /// figure 8).
    OldTermCommit,
    /// A vote answered without being made durable.
    VoteNotPersisted,
    /// A leader that takes a higher term it sees but does not step down.
    NoStepDown,
    /// A follower that applies entries beyond the leader's commit index.
    ApplyBeyondCommit,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 12] = [
        PlantedBug::LocalReads,
        PlantedBug::AckBeforeFsync,
        PlantedBug::ReadLease,
        PlantedBug::UnsafeMemberChange,
        PlantedBug::MinorityWithoutTermBump,
        PlantedBug::NoChecksum,
        PlantedBug::TruncateWithoutCheckpoint,
        PlantedBug::DuplicateApply,
        PlantedBug::OldTermCommit,
        PlantedBug::VoteNotPersisted,
        PlantedBug::NoStepDown,
        PlantedBug::ApplyBeyondCommit,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::LocalReads => "local-reads",
            PlantedBug::AckBeforeFsync => "ack-before-fsync",
            PlantedBug::ReadLease => "read-lease",
            PlantedBug::UnsafeMemberChange => "unsafe-member-change",
            PlantedBug::MinorityWithoutTermBump => "minority-without-term-bump",
            PlantedBug::NoChecksum => "no-checksum",
            PlantedBug::TruncateWithoutCheckpoint => "truncate-without-checkpoint",
            PlantedBug::DuplicateApply => "duplicate-apply",
            PlantedBug::OldTermCommit => "old-term-commit",
            PlantedBug::VoteNotPersisted => "vote-not-persisted",
            PlantedBug::NoStepDown => "no-step-down",
            PlantedBug::ApplyBeyondCommit => "apply-beyond-commit",
        }
    }

    /// The rule the defect breaks.
    pub fn rule(self) -> &'static str {
        match self {
            PlantedBug::LocalReads => "a read is served only by a leader that a quorum confirmed",
            PlantedBug::AckBeforeFsync => "nothing is acknowledged before it is durable",
            PlantedBug::ReadLease => "leadership is confirmed by a quorum round, not by the local clock",
            PlantedBug::UnsafeMemberChange => {
                "one membership change at a time, only after the leader committed an entry of its term"
            }
            PlantedBug::MinorityWithoutTermBump => {
                "a candidate entering minority mode raises its term by 1000 to fence the old majority"
            }
            PlantedBug::NoChecksum => "every log entry read back is checked against its CRC32C",
            PlantedBug::TruncateWithoutCheckpoint => {
                "the log is truncated only below a durable checkpoint"
            }
            PlantedBug::DuplicateApply => {
                "a tagged write is applied at most once; a retry gets the recorded result"
            }
            PlantedBug::OldTermCommit => {
                "a leader commits by counting replicas only entries of its own term"
            }
            PlantedBug::VoteNotPersisted => "a vote is durable before it is answered",
            PlantedBug::NoStepDown => "a leader that sees a higher term steps down",
            PlantedBug::ApplyBeyondCommit => {
                "a follower applies nothing beyond the leader's commit index"
            }
        }
    }
}

/// The run most likely to expose a planted bug: the `dcf-harness test`
/// options (workload, nodes, faults, schedule) the zoo uses for it. Kept
/// here, next to the bug, so that whoever adds a bug also says how it is
/// caught. The zoo adds `--planted-bug`, `--seed` and `--time-limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZooRecipe {
    /// Options for `dcf-harness test`, e.g. `["--workload", "register"]`.
    pub args: &'static [&'static str],
    /// Why these faults expose the bug (shown by the zoo).
    pub why: &'static str,
    /// When today's faults cannot catch the bug reliably: what would be
    /// needed (shown by the zoo and in its page).
    pub limitation: Option<&'static str>,
}

/// Every 10 s every node compacts its log, then all are killed and
/// restarted (random targets too often leave the lost
/// prefix on a follower that never serves it). Appends, unlike register
/// writes, keep every earlier value visible, so the loss shows in the run
/// and not only in the final reads.
const TRUNCATE_SCHEDULE: &str = "6:compact:all,8:kill:all,10:restart,10:repeat";

/// Every 8 s the leader is killed (restarted 2 s later), then cut off
/// (healed 3 s later): each time, writes it replicated
/// but did not answer are retried on the next leader.
const DUPLICATE_APPLY_SCHEDULE: &str =
    "4:kill:leader,6:restart,8:partition:leader,11:heal,8:repeat";

/// `old-term-commit`: the leader is killed every 3 s (restarted 1 s later).
const OLD_TERM_COMMIT_SCHEDULE: &str = "2:kill:leader,3:restart,3:repeat";

/// `vote-not-persisted`: every 6 s all nodes are killed (restarted 1 s
/// later), so every vote of the current term meets a restart.
const VOTE_SCHEDULE: &str = "3:kill:all,4:restart,6:repeat";

/// `no-step-down`: every 4 s the leader is cut off for 1.6 s or paused for
/// 1.5 s, alternately (with the harness's ELECTION_TIMEOUT=1000 the others
/// elect a new leader after about 1.1 s, and a leader that heard nobody
/// for 2 s steps down by itself), so that it comes back still leading and
/// sees the new term.
const NO_STEP_DOWN_SCHEDULE: &str =
    "2:partition:leader,3.6:heal,6:pause:leader,7.5:resume,8:repeat";

/// `apply-beyond-commit`: every 6 s the leader and one follower are cut
/// off from the other three for 3 s. The old leader replicates the writes
/// it still receives to that follower, which (with the bug) applies them;
/// after the heal the new leader overwrites them and the follower reports
/// a conflict with entries it had counted as committed.
const APPLY_BEYOND_COMMIT_SCHEDULE: &str = "2:partition:leader-minority,5:heal,6:repeat";

impl PlantedBug {
    /// How the zoo exposes this bug.
    pub fn zoo_recipe(self) -> ZooRecipe {
        match self {
            PlantedBug::LocalReads => ZooRecipe {
                args: &["--workload", "register", "--nodes", "5", "--nemesis", "partition:leader"],
                why: "a leader cut off from the majority keeps serving reads while a new leader takes writes",
                limitation: None,
            },
            PlantedBug::AckBeforeFsync => ZooRecipe {
                args: &[
                    "--workload",
                    "register",
                    "--nodes",
                    "3",
                    "--nemesis",
                    "power-loss",
                    "--schedule",
                    "3:power-loss:majority,4:power-on,6:power-loss:all,7:power-on,9:repeat",
                ],
                why: "a power cut loses acknowledged but unsynced writes on a majority",
                limitation: None,
            },
            PlantedBug::ReadLease => ZooRecipe {
                args: &[
                    "--workload",
                    "register",
                    "--nodes",
                    "5",
                    "--nemesis",
                    "clock,partition",
                    "--schedule",
                    "3:clock:slow-leader-10x,4:partition:leader,12:heal,13:reset-clock,12:repeat",
                ],
                why: "a leader whose clock runs slow trusts its lease after a partition cut it off",
                limitation: None,
            },
            PlantedBug::UnsafeMemberChange => ZooRecipe {
                args: &[
                    "--workload",
                    "register",
                    "--nodes",
                    "5",
                    "--nemesis",
                    "partition,member,kill",
                    "--schedule",
                    "3:partition:leader,3.3:member:burst,4.5:kill:leader,9:restart,10:heal,12:repeat",
                ],
                why: "a burst of removals sent to a leader just cut off lets it commit alone while the others elect a new leader",
                limitation: None,
            },
            PlantedBug::MinorityWithoutTermBump => ZooRecipe {
                args: &["--workload", "register", "--nodes", "3", "--nemesis", "minority"],
                why: "the minority leader's term must fence the old majority's",
                limitation: None,
            },
            PlantedBug::NoChecksum => ZooRecipe {
                args: &[
                    "--workload",
                    "register",
                    "--nodes",
                    "3",
                    "--nemesis",
                    "corrupt",
                    "--schedule",
                    "2:corrupt:one,3:repair,2:repeat",
                ],
                why: "a damaged entry is applied instead of refused",
                limitation: None,
            },
            PlantedBug::TruncateWithoutCheckpoint => ZooRecipe {
                args: &[
                    "--workload",
                    "list-append",
                    "--nodes",
                    "3",
                    "--nemesis",
                    "compact,kill",
                    "--schedule",
                    TRUNCATE_SCHEDULE,
                ],
                why: "every node truncates its log, then all restart: without a checkpoint they lost the appends before the truncation, and the next read of a list misses its head",
                limitation: None,
            },
            PlantedBug::DuplicateApply => ZooRecipe {
                args: &[
                    "--workload",
                    "list-append",
                    "--nodes",
                    "3",
                    "--rate",
                    "300",
                    "--write-retries",
                    "8",
                    "--nemesis",
                    "partition,kill",
                    "--schedule",
                    DUPLICATE_APPLY_SCHEDULE,
                ],
                why: "appends committed but unanswered when the leader dies or is cut off are retried (--write-retries) on the next leader and applied twice",
                limitation: None,
            },
            PlantedBug::OldTermCommit => ZooRecipe {
                args: &["--workload", "register", "--nodes", "3", "--nemesis", "kill", "--schedule", OLD_TERM_COMMIT_SCHEDULE],
                why: "the leader is killed every 3 s, so every run has many new leaders: one whose commit index first \
                      moves to an older term's entry breaks the harness's own-term-commit rule on the node logs (losing \
                      that entry would need a rare sequence of leaders, Raft's Figure 8)",
                limitation: None,
            },
            PlantedBug::VoteNotPersisted => ZooRecipe {
                args: &["--workload", "register", "--nodes", "3", "--nemesis", "kill", "--schedule", VOTE_SCHEDULE],
                why: "every node that voted in the current term is killed and restarted: a restart that comes back in \
                      that term without the vote breaks the harness's durable-votes rule on the node logs (a second \
                      leader of the term would need two elections to interleave within milliseconds)",
                limitation: None,
            },
            PlantedBug::NoStepDown => ZooRecipe {
                args: &["--workload", "register", "--nodes", "5", "--nemesis", "partition,pause", "--schedule", NO_STEP_DOWN_SCHEDULE],
                why: "a leader cut off or paused for longer than an election timeout but shorter than its step-down \
                      time comes back to the new leader's term and leads in it beside the new leader",
                limitation: None,
            },
            PlantedBug::ApplyBeyondCommit => ZooRecipe {
                args: &["--workload", "register", "--nodes", "5", "--nemesis", "partition", "--schedule", APPLY_BEYOND_COMMIT_SCHEDULE],
                why: "a follower cut off with the old leader applies its uncommitted writes, which the new leader overwrites",
                limitation: None,
            },
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Written by its name, as on the command line (a harness records the
/// bugs a run was started with).
impl serde::Serialize for PlantedBug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PlantedBug::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown planted bug {s:?} (known: {})",
                    PlantedBug::ALL.map(|b| b.name()).join(", ")
                )
            })
    }
}

/// The defects a node runs with (empty: a correct node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs(BTreeSet<PlantedBug>);

impl PlantedBugs {
    /// The set, if the environment allows planted bugs (or it is empty).
    pub fn allowed(bugs: impl IntoIterator<Item = PlantedBug>) -> Result<PlantedBugs, String> {
        let set: BTreeSet<PlantedBug> = bugs.into_iter().collect();
        if !set.is_empty() && std::env::var(ALLOW_ENV).as_deref() != Ok("1") {
            return Err(format!(
                "planted bugs are deliberate defects for testing a harness; refusing {} unless {ALLOW_ENV}=1",
                set.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(PlantedBugs(set))
    }

    /// The set without the environment check (for tests and for the
    /// deprecated `--unsafe-local-reads`).
    pub fn of(bugs: impl IntoIterator<Item = PlantedBug>) -> PlantedBugs {
        PlantedBugs(bugs.into_iter().collect())
    }

    pub fn contains(&self, b: PlantedBug) -> bool {
        self.0.contains(&b)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = PlantedBug> + '_ {
        self.0.iter().copied()
    }

    /// The defects that live in the consensus core.
    pub fn core(&self) -> crate::core::PlantedBugs {
        crate::core::PlantedBugs {
            read_lease: self.contains(PlantedBug::ReadLease),
            unsafe_member_change: self.contains(PlantedBug::UnsafeMemberChange),
            minority_without_term_bump: self.contains(PlantedBug::MinorityWithoutTermBump),
            old_term_commit: self.contains(PlantedBug::OldTermCommit),
            vote_not_persisted: self.contains(PlantedBug::VoteNotPersisted),
            no_step_down: self.contains(PlantedBug::NoStepDown),
            apply_beyond_commit: self.contains(PlantedBug::ApplyBeyondCommit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for b in PlantedBug::ALL {
            assert_eq!(b.name().parse::<PlantedBug>(), Ok(b));
            assert!(!b.rule().is_empty());
            let recipe = b.zoo_recipe();
            assert!(recipe.args.contains(&"--nemesis") && !recipe.why.is_empty());
        }
        let e = "lazy-fsync".parse::<PlantedBug>().unwrap_err();
        assert!(e.contains("ack-before-fsync"), "{e}");
        assert!(PlantedBugs::allowed([]).is_ok());
        let set = PlantedBugs::of([PlantedBug::ReadLease, PlantedBug::NoChecksum]);
        assert!(set.core().read_lease && !set.core().unsafe_member_change);
    }
}
