//! What a run with membership changes needs besides the fault itself:
//! spare node slots prepared at setup for the nodes it may add.

use crate::test_cmd::TestArgs;
use nemesis::{Action, FaultKind};

/// Spare slots a run with `member` faults gets: enough for an add in
/// most steps of a long run (a slot is used once, unless the cluster
/// certainly refused the add).
pub const SPARES_FOR_MEMBER: u32 = 3;

/// The spare node slots the run's deployment prepares: some when the
/// `member` fault is requested, by `--nemesis` or the schedule, else none.
pub fn spare_nodes_for(args: &TestArgs) -> u32 {
    let in_nemesis = args.nemesis.kinds().contains(&FaultKind::Member);
    let in_schedule = args.schedule.as_ref().is_some_and(|s| {
        s.steps.iter().any(|st| match st.action {
            Action::Start(f) => f.kind() == FaultKind::Member,
            Action::Stop(k) => k == FaultKind::Member,
        })
    });
    if in_nemesis || in_schedule {
        SPARES_FOR_MEMBER
    } else {
        0
    }
}
