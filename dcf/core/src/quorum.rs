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
}
