//! Which links a network fault (slow-net, lossy-net) hits. Pure selection
//! logic, separate from carrying the fault out.

use crate::control::{Link, NodeId};
use rand::seq::SliceRandom;
use rand::Rng;
use std::fmt;
use std::str::FromStr;

/// The links a network fault acts on; each pair of nodes it picks is hit
/// in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkTarget {
    /// The two directions between one random pair of nodes.
    Link,
    /// Every link of one random node.
    Node,
    /// Every link of the current leader (a random node when none is known).
    Leader,
    /// Every link.
    All,
}

impl LinkTarget {
    /// Every link target, in a fixed order (the default schedule picks from it).
    pub const ALL: [LinkTarget; 4] = [
        LinkTarget::Link,
        LinkTarget::Node,
        LinkTarget::Leader,
        LinkTarget::All,
    ];

    /// The name used in schedules and events.
    pub fn name(self) -> &'static str {
        match self {
            LinkTarget::Link => "link",
            LinkTarget::Node => "node",
            LinkTarget::Leader => "leader",
            LinkTarget::All => "all",
        }
    }
}

impl fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LinkTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LinkTarget::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = LinkTarget::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown link target {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The directed links `target` selects among `nodes`, sorted, both
/// directions of every pair it picks.
pub fn select<R: Rng + ?Sized>(
    target: LinkTarget,
    nodes: &[NodeId],
    leader: Option<NodeId>,
    rng: &mut R,
) -> Vec<Link> {
    let mut nodes = nodes.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    let all: Vec<Link> = nodes
        .iter()
        .flat_map(|&a| nodes.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
        .collect();
    let of = |n: NodeId| -> Vec<Link> {
        all.iter()
            .copied()
            .filter(|&(a, b)| a == n || b == n)
            .collect()
    };
    match target {
        LinkTarget::All => all,
        LinkTarget::Link => match all.choose(rng) {
            Some(&(a, b)) => {
                let mut pair = vec![(a, b), (b, a)];
                pair.sort_unstable();
                pair
            }
            None => Vec::new(),
        },
        LinkTarget::Node => nodes.choose(rng).map(|&n| of(n)).unwrap_or_default(),
        LinkTarget::Leader => match leader.filter(|l| nodes.contains(l)) {
            Some(l) => of(l),
            None => nodes.choose(rng).map(|&n| of(n)).unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn targets_pick_the_documented_links() {
        let nodes = [1, 2, 3, 4, 5];
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(select(LinkTarget::All, &nodes, None, &mut rng).len(), 20);
        let pair = select(LinkTarget::Link, &nodes, None, &mut rng);
        assert_eq!(pair.len(), 2);
        assert_eq!(pair[0], (pair[1].1, pair[1].0), "both directions");
        let node = select(LinkTarget::Node, &nodes, None, &mut rng);
        assert_eq!(node.len(), 8);
        let leader = select(LinkTarget::Leader, &nodes, Some(3), &mut rng);
        assert!(leader.iter().all(|&(a, b)| a == 3 || b == 3) && leader.len() == 8);
        assert!(select(LinkTarget::All, &[1], None, &mut rng).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for t in LinkTarget::ALL {
            assert_eq!(t.name().parse::<LinkTarget>().unwrap(), t);
        }
        assert!("pair"
            .parse::<LinkTarget>()
            .unwrap_err()
            .contains("\"pair\""));
    }
}
