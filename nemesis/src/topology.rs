//! Partition topologies: pure functions from the node list (and an RNG for
//! the random ones) to a symmetric [`Grudge`]. They know nothing about how a
//! partition is carried out, so they are tested on their own.

use crate::control::{Grudge, NodeId};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// How a partition splits the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topology {
    /// Nodes sorted by id; the first ⌈n/2⌉ against the rest (so for odd n
    /// the lower ids form the majority).
    Halves,
    /// Like `halves` but on a random permutation of the nodes.
    RandomHalves,
    /// One random node against the rest.
    One,
    /// The current leader against the rest (a random node when no leader is
    /// known; the event says so).
    Leader,
    /// The current leader and as many random others as still leave a
    /// majority outside (one for 5 nodes): the old leader keeps replicating
    /// to a follower that cannot commit, while the majority elects a new
    /// leader that overwrites what they share. Without a known leader a
    /// random minority.
    LeaderMinority,
    /// Jepsen's majorities ring: every node sees a majority (itself
    /// included) and no two nodes see the same majority.
    MajoritiesRing,
    /// Two halves that cannot see each other, joined by one node that sees
    /// both.
    Bridge,
}

impl Topology {
    /// Every topology, in a fixed order (the default schedule picks from it).
    pub const ALL: [Topology; 7] = [
        Topology::Halves,
        Topology::RandomHalves,
        Topology::One,
        Topology::Leader,
        Topology::LeaderMinority,
        Topology::MajoritiesRing,
        Topology::Bridge,
    ];

    /// The name used in schedules and events.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Halves => "halves",
            Topology::RandomHalves => "random-halves",
            Topology::One => "one",
            Topology::Leader => "leader",
            Topology::LeaderMinority => "leader-minority",
            Topology::MajoritiesRing => "majorities-ring",
            Topology::Bridge => "bridge",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Topology::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Topology::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown topology {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The size of a majority of `n` nodes.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// A symmetric grudge that cuts every node of `a` off from every node of
/// `b` (both directions). Every node of either side gets an entry, possibly
/// empty, so the grudge names the whole cluster.
pub fn split_grudge(a: &[NodeId], b: &[NodeId]) -> Grudge {
    let mut g = Grudge::new();
    for &x in a {
        g.entry(x).or_default().extend(b.iter().copied());
    }
    for &y in b {
        g.entry(y).or_default().extend(a.iter().copied());
    }
    g
}

/// The nodes isolated from all others: `isolated` against the rest.
pub fn isolate(nodes: &[NodeId], isolated: NodeId) -> Grudge {
    let rest: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != isolated).collect();
    split_grudge(&[isolated], &rest)
}

/// `halves` on the given order: the first ⌈n/2⌉ against the rest.
pub fn halves(ordered: &[NodeId]) -> Grudge {
    let cut = ordered.len().div_ceil(2);
    split_grudge(&ordered[..cut], &ordered[cut..])
}

/// The majorities ring on the given ring order.
///
/// Node `i` sees the nodes within ring distance `k` of it, where `k` is the
/// smallest number with `2k + 1 >= majority(n)`. Seeing is symmetric (ring
/// distance is), every node sees `2k + 1 >= majority` nodes, and for n >= 4
/// `2k + 1 < n` so the windows are distinct. For n = 3 no symmetric ring
/// exists (each node would have to see exactly one other), so the grudge is
/// the path `a - b - c`: `a` and `c` cannot see each other, `b` sees both;
/// the views {a,b}, {a,b,c}, {b,c} are distinct majorities. For n < 3 every
/// majority is the whole cluster, so the grudge is empty.
pub fn majorities_ring(ring: &[NodeId]) -> Grudge {
    let n = ring.len();
    let mut g: Grudge = ring.iter().map(|&x| (x, BTreeSet::new())).collect();
    if n < 3 {
        return g;
    }
    if n == 3 {
        return split_grudge(&[ring[0]], &[ring[2]])
            .into_iter()
            .chain(std::iter::once((ring[1], BTreeSet::new())))
            .collect();
    }
    let m = majority(n);
    let k = (m - 1).div_ceil(2);
    for i in 0..n {
        for j in 0..n {
            let d = i.abs_diff(j);
            let ring_distance = d.min(n - d);
            if ring_distance > k {
                g.get_mut(&ring[i])
                    .expect("all nodes present")
                    .insert(ring[j]);
            }
        }
    }
    g
}

/// The bridge on the given order: the first ⌊n/2⌋ nodes against the last
/// ⌈n/2⌉ - 1, with node number ⌊n/2⌋ (0-based) seeing both sides. Each side
/// plus the bridge is a majority for odd n.
pub fn bridge(ordered: &[NodeId]) -> Grudge {
    let n = ordered.len();
    if n < 3 {
        return ordered.iter().map(|&x| (x, BTreeSet::new())).collect();
    }
    let half = n / 2;
    let left = &ordered[..half];
    let right = &ordered[half + 1..];
    let mut g = split_grudge(left, right);
    g.insert(ordered[half], BTreeSet::new());
    g
}

/// The leader (first in `others_shuffled` when `None`) and random others,
/// as many as leave a majority on the far side, against the rest.
pub fn leader_minority(
    sorted: &[NodeId],
    leader: Option<NodeId>,
    others_shuffled: &[NodeId],
) -> Grudge {
    let size = sorted.len() - majority(sorted.len());
    let mut side: Vec<NodeId> = leader.into_iter().collect();
    side.extend(
        others_shuffled
            .iter()
            .copied()
            .filter(|x| Some(*x) != leader),
    );
    side.truncate(size.max(1));
    let rest: Vec<NodeId> = sorted
        .iter()
        .copied()
        .filter(|x| !side.contains(x))
        .collect();
    split_grudge(&side, &rest)
}

/// The grudge of a topology. `leader` is used by [`Topology::Leader`] and
/// [`Topology::LeaderMinority`]; when it is `None` a random node stands in
/// (the caller reports that).
pub fn grudge_for<R: Rng + ?Sized>(
    topology: Topology,
    nodes: &[NodeId],
    leader: Option<NodeId>,
    rng: &mut R,
) -> Grudge {
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut shuffled = sorted.clone();
    shuffled.shuffle(rng);
    match topology {
        Topology::Halves => halves(&sorted),
        Topology::RandomHalves => halves(&shuffled),
        Topology::One => match shuffled.first() {
            Some(&x) => isolate(&sorted, x),
            None => Grudge::new(),
        },
        Topology::Leader => match leader
            .filter(|l| sorted.contains(l))
            .or(shuffled.first().copied())
        {
            Some(x) => isolate(&sorted, x),
            None => Grudge::new(),
        },
        Topology::LeaderMinority => {
            leader_minority(&sorted, leader.filter(|l| sorted.contains(l)), &shuffled)
        }
        Topology::MajoritiesRing => majorities_ring(&shuffled),
        Topology::Bridge => bridge(&shuffled),
    }
}

/// What node `x` can see under `g` (itself included).
pub fn view(g: &Grudge, nodes: &[NodeId], x: NodeId) -> BTreeSet<NodeId> {
    let blocked = g.get(&x).cloned().unwrap_or_default();
    nodes
        .iter()
        .copied()
        .filter(|n| !blocked.contains(n))
        .collect()
}

/// True if `g` is symmetric: `a` drops `b` exactly when `b` drops `a`.
pub fn is_symmetric(g: &Grudge) -> bool {
    g.iter().all(|(a, bs)| {
        bs.iter()
            .all(|b| g.get(b).is_some_and(|back| back.contains(a)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ids(n: u32) -> Vec<NodeId> {
        (1..=n).collect()
    }

    #[test]
    fn halves_puts_the_lower_ceil_half_first() {
        let g = halves(&ids(5));
        assert_eq!(g[&1], BTreeSet::from([4, 5]));
        assert_eq!(g[&3], BTreeSet::from([4, 5]));
        assert_eq!(g[&4], BTreeSet::from([1, 2, 3]));
        assert!(is_symmetric(&g));
        let g = halves(&ids(3));
        assert_eq!(g[&1], BTreeSet::from([3]));
        assert_eq!(g[&3], BTreeSet::from([1, 2]));
        let g = halves(&ids(7));
        assert_eq!(g[&7], BTreeSet::from([1, 2, 3, 4]));
    }

    #[test]
    fn every_topology_is_symmetric_and_names_every_node() {
        for n in [3u32, 5, 7] {
            for seed in 0..20 {
                for t in Topology::ALL {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let g = grudge_for(t, &ids(n), Some(2), &mut rng);
                    assert!(is_symmetric(&g), "{t} n={n} {g:?}");
                    assert_eq!(g.keys().copied().collect::<Vec<_>>(), ids(n), "{t} n={n}");
                    assert!(g.iter().all(|(a, bs)| !bs.contains(a)), "{t}: self-grudge");
                    assert!(g.values().any(|bs| !bs.is_empty()), "{t} n={n}: no cut");
                }
            }
        }
    }

    #[test]
    fn random_halves_has_a_majority_and_a_minority_side() {
        for n in [3u32, 5, 7] {
            let mut rng = StdRng::seed_from_u64(9);
            let g = grudge_for(Topology::RandomHalves, &ids(n), None, &mut rng);
            let mut sizes: Vec<usize> =
                ids(n).iter().map(|&x| view(&g, &ids(n), x).len()).collect();
            sizes.sort_unstable();
            sizes.dedup();
            assert_eq!(sizes, vec![n as usize / 2, n.div_ceil(2) as usize]);
        }
    }

    #[test]
    fn one_and_leader_isolate_a_single_node() {
        for n in [3u32, 5, 7] {
            let mut rng = StdRng::seed_from_u64(1);
            let g = grudge_for(Topology::Leader, &ids(n), Some(2), &mut rng);
            assert_eq!(view(&g, &ids(n), 2), BTreeSet::from([2]));
            for x in ids(n).into_iter().filter(|&x| x != 2) {
                assert_eq!(g[&x], BTreeSet::from([2]));
            }
            let g = grudge_for(Topology::One, &ids(n), None, &mut rng);
            let isolated: Vec<_> = ids(n)
                .into_iter()
                .filter(|&x| view(&g, &ids(n), x).len() == 1)
                .collect();
            assert_eq!(isolated.len(), 1);
            // Without a known leader, `leader` still isolates exactly one node.
            let g = grudge_for(Topology::Leader, &ids(n), None, &mut rng);
            assert_eq!(
                g.values().filter(|bs| bs.len() == n as usize - 1).count(),
                1
            );
        }
    }

    #[test]
    fn leader_minority_cuts_the_leader_with_a_minority() {
        for n in [3u32, 5, 7] {
            let mut rng = StdRng::seed_from_u64(4);
            let nodes = ids(n);
            let g = grudge_for(Topology::LeaderMinority, &nodes, Some(2), &mut rng);
            let side = view(&g, &nodes, 2);
            assert_eq!(side.len(), n as usize - majority(n as usize), "n={n}");
            let far = nodes.iter().find(|x| !side.contains(x)).copied().unwrap();
            assert_eq!(view(&g, &nodes, far).len(), majority(n as usize));
            // Without a known leader a random minority is cut off.
            let g = grudge_for(Topology::LeaderMinority, &nodes, None, &mut rng);
            let mut sizes: Vec<usize> = nodes.iter().map(|&x| view(&g, &nodes, x).len()).collect();
            sizes.sort_unstable();
            sizes.dedup();
            assert_eq!(sizes.len(), 2);
            assert_eq!(sizes[0], n as usize - majority(n as usize));
        }
    }

    #[test]
    fn majorities_ring_gives_each_node_its_own_majority() {
        for n in [3u32, 4, 5, 6, 7, 9] {
            for seed in 0..10 {
                let mut rng = StdRng::seed_from_u64(seed);
                let nodes = ids(n);
                let g = grudge_for(Topology::MajoritiesRing, &nodes, None, &mut rng);
                let views: Vec<BTreeSet<NodeId>> =
                    nodes.iter().map(|&x| view(&g, &nodes, x)).collect();
                for (x, v) in nodes.iter().zip(&views) {
                    assert!(v.contains(x));
                    assert!(v.len() >= majority(n as usize), "n={n} {x} sees {v:?}");
                }
                let distinct: BTreeSet<_> = views.iter().collect();
                assert_eq!(distinct.len(), n as usize, "n={n}: two nodes share a view");
                // Nobody sees everyone except in the n = 3 path.
                let full = views.iter().filter(|v| v.len() == n as usize).count();
                assert_eq!(full, usize::from(n == 3), "n={n}");
            }
        }
    }

    #[test]
    fn bridge_node_sees_both_sides_that_do_not_see_each_other() {
        for n in [3u32, 5, 7] {
            let nodes = ids(n);
            let mut rng = StdRng::seed_from_u64(4);
            let g = grudge_for(Topology::Bridge, &nodes, None, &mut rng);
            let bridges: Vec<_> = nodes.iter().copied().filter(|x| g[x].is_empty()).collect();
            assert_eq!(bridges.len(), 1, "n={n} {g:?}");
            let others: Vec<_> = nodes.iter().copied().filter(|x| !g[x].is_empty()).collect();
            assert_eq!(others.len(), n as usize - 1);
            for x in &others {
                // Each non-bridge node sees its own side plus the bridge: a
                // majority for odd n.
                let v = view(&g, &nodes, *x);
                assert!(v.contains(&bridges[0]));
                assert_eq!(v.len(), majority(n as usize), "n={n}");
            }
        }
    }

    #[test]
    fn topology_names_round_trip() {
        for t in Topology::ALL {
            assert_eq!(t.name().parse::<Topology>().unwrap(), t);
        }
        let e = "diagonal".parse::<Topology>().unwrap_err();
        assert!(
            e.contains("diagonal") && e.contains("majorities-ring"),
            "{e}"
        );
    }
}
