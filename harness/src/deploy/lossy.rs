//! Lossy links for local nodes: for each lossy link `a -> b`, a rule in
//! `b`'s namespace drops packets from `a` at random with iptables'
//! `statistic` match. The rules live in the `mangle` table so that the
//! partition's `filter` table (replaced as a whole) never touches them,
//! and carry the run's tag in a comment.

use super::netns::Network;
use super::registry::NsRule;
use nemesis::{Link, NodeId};
use std::net::Ipv4Addr;

/// The comment on every loss rule of the run tagged `tag`.
pub fn comment(tag: &str) -> String {
    format!("dcf-harness-{tag}-loss")
}

/// The rules that make each link of `losses` drop its packets with the
/// given probability (thousandths). `sources(a)` lists the addresses `a`'s
/// packets may come from (its own, and its slow-net proxy's).
pub fn rules(
    net: &Network,
    losses: &[(Link, u32)],
    sources: impl Fn(NodeId) -> Vec<Ipv4Addr>,
) -> Vec<NsRule> {
    let comment = comment(&net.tag);
    let mut out = Vec::new();
    for &((from, to), permille) in losses {
        let Some(ns) = net.netns_of(to) else { continue };
        for src in sources(from) {
            out.push(NsRule {
                netns: ns.to_string(),
                table: "mangle".into(),
                rule: [
                    "INPUT",
                    "-s",
                    &format!("{src}/32"),
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &format!("{:.3}", permille.min(1000) as f64 / 1000.0),
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                    "-j",
                    "DROP",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            });
        }
    }
    out
}

/// True for a rule [`rules`] made for the run tagged `tag`.
pub fn is_loss_rule(rule: &NsRule, tag: &str) -> bool {
    let c = comment(tag);
    rule.rule.contains(&c)
}
