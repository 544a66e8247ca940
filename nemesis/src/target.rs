//! Which nodes a process fault (kill, pause) hits. Pure selection logic,
//! separate from carrying the fault out.

use crate::control::NodeId;
use crate::topology::majority;
use rand::seq::SliceRandom;
use rand::Rng;
use std::fmt;
use std::str::FromStr;

/// The nodes a kill or pause acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One random node.
    One,
    /// A random strict minority: ⌊(n-1)/2⌋ nodes (so the rest can still
    /// elect a leader).
    Minority,
    /// A random majority: ⌊n/2⌋ + 1 nodes.
    Majority,
    /// The current leader (a random node when no leader is known; the event
    /// says so).
    Leader,
    /// Every node.
    All,
}

impl Target {
    /// Every target, in a fixed order (the default schedule picks from it).
    pub const ALL: [Target; 5] = [
        Target::One,
        Target::Minority,
        Target::Majority,
        Target::Leader,
        Target::All,
    ];

    /// The name used in schedules and events.
    pub fn name(self) -> &'static str {
        match self {
            Target::One => "one",
            Target::Minority => "minority",
            Target::Majority => "majority",
            Target::Leader => "leader",
            Target::All => "all",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown target {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The nodes `target` selects among `nodes`, sorted. `leader` is used by
/// [`Target::Leader`]; when it is `None` a random node is chosen.
pub fn select<R: Rng + ?Sized>(
    target: Target,
    nodes: &[NodeId],
    leader: Option<NodeId>,
    rng: &mut R,
) -> Vec<NodeId> {
    let mut shuffled = nodes.to_vec();
    shuffled.sort_unstable();
    shuffled.dedup();
    let n = shuffled.len();
    shuffled.shuffle(rng);
    let count = match target {
        Target::One => n.min(1),
        Target::Minority => (n.saturating_sub(1)) / 2,
        Target::Majority => majority(n).min(n),
        Target::All => n,
        Target::Leader => {
            if let Some(l) = leader.filter(|l| shuffled.contains(l)) {
                return vec![l];
            }
            n.min(1)
        }
    };
    let mut picked: Vec<NodeId> = shuffled.into_iter().take(count).collect();
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn targets_pick_the_documented_counts() {
        for (n, minority, majority) in [(3u32, 1usize, 2usize), (5, 2, 3), (7, 3, 4)] {
            let nodes: Vec<NodeId> = (1..=n).collect();
            let mut rng = StdRng::seed_from_u64(n as u64);
            let count = |t, rng: &mut StdRng| select(t, &nodes, None, rng).len();
            assert_eq!(count(Target::One, &mut rng), 1);
            assert_eq!(count(Target::Minority, &mut rng), minority);
            assert_eq!(count(Target::Majority, &mut rng), majority);
            assert_eq!(count(Target::All, &mut rng), n as usize);
            assert_eq!(select(Target::Leader, &nodes, Some(3), &mut rng), vec![3]);
            assert_eq!(count(Target::Leader, &mut rng), 1);
            let picked = select(Target::Majority, &nodes, None, &mut rng);
            assert!(picked.iter().all(|x| nodes.contains(x)));
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        }
    }

    #[test]
    fn target_names_round_trip() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
        }
        assert!("most".parse::<Target>().unwrap_err().contains("\"most\""));
    }
}
