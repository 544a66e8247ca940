//! Quorum arithmetic: DCF's weighted quorum and its policy-based majority
//! (`MAJORITY_GROUPS`: an index counts as stored on a quorum only if at
//! least one node of every listed group stores it).

use crate::config::NodeId;
use crate::types::Index;

/// One voter's view for the commit computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoterMatch {
    pub node_id: NodeId,
    pub weight: u64,
    pub group: u32,
    pub matched: Index,
}

/// The highest index stored on voters whose weights add up to at least
/// `quorum` and, for every group in `majority_groups` that has a voter, on
/// at least one voter of that group. 0 if there is none.
///
/// Both conditions only get easier as the index falls, so the first
/// candidate (in descending order) that meets both is the answer.
pub fn quorum_index(voters: &[VoterMatch], quorum: u64, majority_groups: &[u32]) -> Index {
    let mut sorted: Vec<VoterMatch> = voters.to_vec();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.matched));
    let mut weight = 0u64;
    for v in &sorted {
        weight += v.weight;
        if weight < quorum {
            continue;
        }
        let n = v.matched;
        let groups_ok = majority_groups.iter().all(|g| {
            let members: Vec<&VoterMatch> = voters.iter().filter(|x| x.group == *g).collect();
            members.is_empty() || members.iter().any(|x| x.matched >= n)
        });
        if groups_ok {
            return n;
        }
    }
    0
}

/// True if the listed voters' weights add up to `quorum`.
pub fn has_quorum(weights: impl IntoIterator<Item = u64>, quorum: u64) -> bool {
    weights.into_iter().sum::<u64>() >= quorum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(node_id: NodeId, weight: u64, group: u32, matched: Index) -> VoterMatch {
        VoterMatch {
            node_id,
            weight,
            group,
            matched,
        }
    }

    #[test]
    fn plain_majority() {
        let vs = [v(1, 1, 0, 10), v(2, 1, 0, 7), v(3, 1, 0, 3)];
        assert_eq!(quorum_index(&vs, 2, &[]), 7);
        assert_eq!(quorum_index(&vs, 3, &[]), 3);
    }

    #[test]
    fn weights_count() {
        // node 3 alone holds weight 3 of 5: quorum 3 is reached by it alone.
        let vs = [v(1, 1, 0, 10), v(2, 1, 0, 9), v(3, 3, 0, 4)];
        assert_eq!(quorum_index(&vs, 3, &[]), 4);
        let vs = [v(1, 3, 0, 10), v(2, 1, 0, 9), v(3, 1, 0, 4)];
        assert_eq!(quorum_index(&vs, 3, &[]), 10);
    }

    #[test]
    fn majority_groups_need_one_node_each() {
        let vs = [v(1, 1, 1, 10), v(2, 1, 1, 9), v(3, 1, 2, 4), v(4, 1, 2, 2)];
        assert_eq!(quorum_index(&vs, 3, &[]), 4);
        assert_eq!(quorum_index(&vs, 2, &[]), 9);
        assert_eq!(quorum_index(&vs, 2, &[2]), 4);
        // a listed group without voters does not block commits
        assert_eq!(quorum_index(&vs, 2, &[7]), 9);
    }

    /// `quorum_index(voters, quorum, groups)`, one case a line: the voters
    /// as `matched:weight:group`, the quorum weight, the MAJORITY_GROUPS
    /// (`-` for none), and the expected index.
    const QUORUM_CASES: &str = "
    # voters                          | quorum | groups | index
    10:1:0 7:1:0 3:1:0                | 2      | -      | 7
    10:1:0 7:1:0 3:1:0                | 3      | -      | 3
    10:1:0 7:1:0 3:1:0                | 1      | -      | 10
    7:1:0 7:1:0 7:1:0                 | 2      | -      | 7
    5:1:0                             | 1      | -      | 5
    # a quorum the voters cannot reach, or no voters at all
    10:1:0 7:1:0 3:1:0                | 4      | -      | 0
                                      | 1      | -      | 0
    # weights: a heavy voter counts for several
    10:1:0 9:1:0 4:3:0                | 3      | -      | 4
    10:3:0 9:1:0 4:1:0                | 3      | -      | 10
    10:2:0 9:2:0 4:1:0                | 3      | -      | 9
    10:1:0 9:1:0 8:1:0 1:2:0 0:2:0    | 4      | -      | 1
    # MAJORITY_GROUPS: one voter of every listed group must hold it
    10:1:1 9:1:1 4:1:2 2:1:2          | 2      | 2      | 4
    10:1:1 9:1:1 4:1:2 2:1:2          | 2      | 1 2    | 4
    10:1:1 9:1:1 4:1:2 2:1:2          | 3      | 1      | 4
    10:1:1 9:1:2 4:1:3                | 2      | 1 2 3  | 4
    10:1:1 9:1:2 0:1:3                | 2      | 3      | 0
    # a listed group without voters blocks nothing
    10:1:1 9:1:1 4:1:2 2:1:2          | 2      | 7      | 9
    ";

    #[test]
    fn quorum_index_table() {
        let mut cases = 0;
        for line in QUORUM_CASES.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let [voters, quorum, groups, want] = cols[..] else {
                panic!("malformed case {line:?}");
            };
            let voters: Vec<VoterMatch> = voters
                .split_whitespace()
                .enumerate()
                .map(|(i, t)| {
                    let f: Vec<u64> = t.split(':').map(|x| x.parse().expect("number")).collect();
                    v(i as NodeId + 1, f[1], f[2] as u32, f[0])
                })
                .collect();
            let groups: Vec<u32> = match groups {
                "-" => vec![],
                g => g
                    .split_whitespace()
                    .map(|x| x.parse().expect("group"))
                    .collect(),
            };
            let quorum: u64 = quorum.parse().expect("quorum");
            let want: Index = want.parse().expect("index");
            assert_eq!(
                quorum_index(&voters, quorum, &groups),
                want,
                "case {line:?}"
            );
            // The order the voters are listed in plays no part.
            let reversed: Vec<VoterMatch> = voters.iter().rev().copied().collect();
            assert_eq!(
                quorum_index(&reversed, quorum, &groups),
                want,
                "case {line:?} reversed"
            );
            cases += 1;
        }
        assert_eq!(cases, 17);
    }

    #[test]
    fn has_quorum_counts_weights() {
        assert!(has_quorum([1, 1], 2));
        assert!(!has_quorum([1], 2));
        assert!(has_quorum([3], 3));
        assert!(!has_quorum([], 1));
    }
}
