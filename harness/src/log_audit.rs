//! Safety rules checked across the nodes' logs, for what a history cannot
//! show: the harness reads what every node announced (roles, votes, the
//! term and vote it loaded at start-up) and holds the cluster to Raft's
//! rules on them.
//!
//! - **Election safety**: at most one node leads a stream in a term.
//! - **Durable votes**: a node that granted its vote in a term (or voted
//!   for itself as a candidate) and restarts must come back in a later
//!   term, or in that term with that vote. A vote that a restart forgets
//!   can elect a second leader of the term; the histories see that only
//!   when two elections interleave within milliseconds, the logs at the
//!   first restart.
//! - **Leaders commit their own term's entries**: the first entry a
//!   leader's commit index moves to is of the leader's term (older entries
//!   are committed only with one of its own: Raft's Figure 8). Breaking it
//!   loses a committed entry only after a rare sequence of leaders; the
//!   leader's `first commit as leader` line shows it at every election.
//!
//! Both use lines a correct node logs anyway (`role changed`, `vote
//! granted` as the answer leaves, `loaded stream` at start-up), so a
//! violation is reported as the node's safety alarm would be: it makes
//! the run invalid and its time is the time to detect.

use crate::logscan::Finding;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The finding kind of a violated rule (the one node alarms have).
const KIND: &str = "safety-alarm";

/// One node's log: the node's name and its lines.
struct NodeLog {
    node: String,
    file: String,
    text: String,
}

/// What a line of a node's log says, as far as the rules care.
#[derive(Debug, PartialEq)]
enum Event {
    /// A fresh data folder: the node starts with no promises.
    FreshData,
    /// Start-up loaded the stream's term and vote.
    Loaded {
        stream: u64,
        term: u64,
        voted_for: Option<u64>,
    },
    /// The node's role in the stream changed.
    Role {
        stream: u64,
        role: String,
        term: u64,
    },
    /// The node granted its vote.
    VoteGranted { stream: u64, to: u64, term: u64 },
    /// The node, leader of `term`, first moved its commit index to an
    /// entry of `entry_term`.
    FirstLeaderCommit {
        stream: u64,
        term: u64,
        commit: u64,
        entry_term: Option<u64>,
    },
}

/// Every violation found in the logs under `nodes_dir/<node>/`.
pub fn audit(nodes_dir: &Path) -> Vec<Finding> {
    let logs = node_logs(nodes_dir);
    let mut out = Vec::new();
    for log in &logs {
        out.extend(durable_votes(log));
        out.extend(own_term_commits(log));
    }
    out.extend(election_safety(&logs));
    out
}

/// Each node's main log: `stderr.log`, else the node's own log file.
fn node_logs(nodes_dir: &Path) -> Vec<NodeLog> {
    let dirs = reports::logs::node_dirs(nodes_dir);
    dirs.into_iter()
        .filter_map(|dir| {
            let node = dir.file_name()?.to_str()?.to_string();
            let path = [
                dir.join("stderr.log"),
                dir.join("data").join("dcf-node.log"),
            ]
            .into_iter()
            .find(|p| p.is_file())?;
            let text = std::fs::read_to_string(&path).ok()?;
            let file = path.file_name()?.to_str()?.to_string();
            Some(NodeLog { node, file, text })
        })
        .collect()
}

/// The node's id from its folder name (`n3` -> 3).
fn node_id(node: &str) -> Option<u64> {
    node.strip_prefix('n')?.parse().ok()
}

/// The value of `key=` in a tracing line (`key=value`, space-separated).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn num(line: &str, key: &str) -> Option<u64> {
    field(line, key)?.parse().ok()
}

/// `Some(3)` -> 3, `None` -> none.
fn optional_id(v: &str) -> Option<Option<u64>> {
    if v == "None" {
        return Some(None);
    }
    v.strip_prefix("Some(")?
        .strip_suffix(')')?
        .parse()
        .ok()
        .map(Some)
}

fn parse(line: &str) -> Option<Event> {
    if line.contains("persisted the initial configuration metadata") {
        return Some(Event::FreshData);
    }
    if !line.contains("dcf::engine") {
        return None;
    }
    let stream = num(line, "stream")?;
    if line.contains(" loaded stream ") {
        return Some(Event::Loaded {
            stream,
            term: num(line, "term")?,
            voted_for: optional_id(field(line, "voted_for")?)?,
        });
    }
    if line.contains(" role changed ") {
        return Some(Event::Role {
            stream,
            role: field(line, "role")?.to_string(),
            term: num(line, "term")?,
        });
    }
    if line.contains(" vote granted ") {
        return Some(Event::VoteGranted {
            stream,
            to: num(line, "to")?,
            term: num(line, "term")?,
        });
    }
    if line.contains(" first commit as leader ") {
        return Some(Event::FirstLeaderCommit {
            stream,
            term: num(line, "term")?,
            commit: num(line, "commit")?,
            entry_term: optional_id(field(line, "entry_term")?)?,
        });
    }
    None
}

fn finding(log: &NodeLog, line: usize, text: &str, why: String) -> Finding {
    Finding {
        node: log.node.clone(),
        file: log.file.clone(),
        line,
        kind: KIND,
        // The line first: its time is when the violation became visible.
        text: format!("{}  [{why}]", text.chars().take(300).collect::<String>()),
    }
}

/// Restarts that forgot a vote granted (or cast for itself) in the term
/// they came back in, or came back in an earlier term.
fn durable_votes(log: &NodeLog) -> Vec<Finding> {
    let me = node_id(&log.node);
    // Per stream: the newest vote promised since the last start, with the
    // line that promised it.
    let mut promised: BTreeMap<u64, (u64, u64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, line) in log.text.lines().enumerate() {
        match parse(line) {
            Some(Event::FreshData) => promised.clear(),
            Some(Event::VoteGranted { stream, to, term }) => {
                promised.insert(stream, (term, to, i + 1));
            }
            Some(Event::Role { stream, role, term }) if role == "CANDIDATE" => {
                if let Some(me) = me {
                    promised.insert(stream, (term, me, i + 1));
                }
            }
            Some(Event::Loaded {
                stream,
                term,
                voted_for,
            }) => {
                if let Some((t, to, at)) = promised.remove(&stream) {
                    let why = if term < t {
                        Some(format!(
                            "durable votes: {} voted for n{to} in term {t} (line {at}) but restarted in term {term}",
                            log.node
                        ))
                    } else if term == t && voted_for != Some(to) {
                        Some(format!(
                            "durable votes: {} voted for n{to} in term {t} (line {at}) but restarted in that term with vote {}",
                            log.node,
                            voted_for.map_or("none".to_string(), |v| format!("n{v}"))
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        out.push(finding(log, i + 1, line, why));
                    }
                }
                if let Some(v) = voted_for {
                    promised.insert(stream, (term, v, i + 1));
                }
            }
            _ => {}
        }
    }
    out
}

/// Leaders whose commit index first moved to an entry of an older term.
fn own_term_commits(log: &NodeLog) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, line) in log.text.lines().enumerate() {
        let Some(Event::FirstLeaderCommit {
            stream,
            term,
            commit,
            entry_term: Some(t),
        }) = parse(line)
        else {
            continue;
        };
        if t != term {
            let why = format!(
                "leaders commit their own term's entries: {}, leader of stream {stream} in term {term}, first committed index {commit}, an entry of term {t}",
                log.node
            );
            out.push(finding(log, i + 1, line, why));
        }
    }
    out
}

/// Terms in which more than one node became leader of a stream; one
/// finding per such term, at the line of the second leader.
fn election_safety(logs: &[NodeLog]) -> Vec<Finding> {
    // (stream, term) -> first leader (node, line); the terms already reported.
    let mut leaders: BTreeMap<(u64, u64), (usize, usize)> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    let mut seconds = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        for (i, line) in log.text.lines().enumerate() {
            let Some(Event::Role { stream, role, term }) = parse(line) else {
                continue;
            };
            if role != "LEADER" {
                continue;
            }
            match leaders.get(&(stream, term)) {
                None => {
                    leaders.insert((stream, term), (n, i + 1));
                }
                Some(&(first, at)) if first != n && reported.insert((stream, term)) => {
                    seconds.push((n, i, first, at, stream, term));
                }
                Some(_) => {}
            }
        }
    }
    seconds
        .into_iter()
        .map(|(n, i, first, at, stream, term)| {
            let log = &logs[n];
            let line = log.text.lines().nth(i).unwrap_or_default();
            let why = format!(
                "election safety: {} and {} both led stream {stream} in term {term} ({} line {at})",
                logs[first].node, log.node, logs[first].node
            );
            finding(log, i + 1, line, why)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-12-02T18:22:45.238666Z  INFO dcf::engine::actions:";
    const S: &str = "2026-12-02T18:22:45.136436Z  INFO dcf::engine::start:";

    fn write(dir: &Path, node: &str, lines: &[String]) {
        std::fs::create_dir_all(dir.join(node)).unwrap();
        std::fs::write(dir.join(node).join("stderr.log"), lines.join("\n")).unwrap();
    }

    fn loaded(term: u64, vote: &str) -> String {
        format!(
            "{S} loaded stream stream=1 term={term} voted_for={vote} first_index=1 last_index=0"
        )
    }

    fn role(role: &str, term: u64) -> String {
        format!("{T} role changed stream=1 role={role} term={term} leader=None")
    }

    fn granted(to: u64, term: u64) -> String {
        format!("{T} vote granted stream=1 to={to} term={term}")
    }

    #[test]
    fn parses_the_lines_the_node_writes() {
        assert_eq!(
            parse(&loaded(4, "Some(2)")),
            Some(Event::Loaded {
                stream: 1,
                term: 4,
                voted_for: Some(2)
            })
        );
        assert_eq!(
            parse(&granted(3, 7)),
            Some(Event::VoteGranted {
                stream: 1,
                to: 3,
                term: 7
            })
        );
        assert_eq!(
            parse(&role("LEADER", 2)),
            Some(Event::Role {
                stream: 1,
                role: "LEADER".into(),
                term: 2
            })
        );
    }

    #[test]
    fn a_restart_that_forgets_its_vote_is_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "n2",
            &[
                loaded(0, "None"),
                role("FOLLOWER", 1),
                granted(1, 1),
                loaded(1, "None"),
            ],
        );
        let f = audit(dir.path());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].node.as_str(), f[0].line, f[0].kind), ("n2", 4, KIND));
        assert!(
            f[0].text.contains("voted for n1 in term 1 (line 3)"),
            "{}",
            f[0].text
        );
        assert!(
            f[0].text.starts_with("2026-12-02T18:22:45"),
            "time first: {}",
            f[0].text
        );
    }

    #[test]
    fn a_restart_that_remembers_or_moves_on_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "n2",
            &[
                granted(1, 1),
                loaded(1, "Some(1)"),
                role("CANDIDATE", 2),
                loaded(2, "Some(2)"),
                granted(3, 3),
                loaded(5, "None"),
            ],
        );
        assert_eq!(audit(dir.path()), Vec::new());
    }

    #[test]
    fn a_candidate_that_restarts_in_an_earlier_term_is_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "n3",
            &[role("CANDIDATE", 4), loaded(3, "Some(3)")],
        );
        let f = audit(dir.path());
        assert_eq!(f.len(), 1);
        assert!(f[0].text.contains("restarted in term 3"), "{}", f[0].text);
    }

    #[test]
    fn a_fresh_data_folder_makes_no_promises() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = format!("{S} persisted the initial configuration metadata dir=/x");
        write(dir.path(), "n4", &[granted(1, 6), fresh, loaded(0, "None")]);
        assert_eq!(audit(dir.path()), Vec::new());
    }

    fn first_commit(term: u64, commit: u64, entry_term: u64) -> String {
        format!("{T} first commit as leader stream=1 term={term} commit={commit} entry_term=Some({entry_term})")
    }

    #[test]
    fn a_leader_whose_first_commit_is_of_an_older_term_is_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "n1",
            &[
                first_commit(2, 10, 2),
                first_commit(4, 17, 3),
                first_commit(5, 30, 5),
            ],
        );
        let f = audit(dir.path());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].line, 2);
        assert!(
            f[0].text
                .contains("in term 4, first committed index 17, an entry of term 3"),
            "{}",
            f[0].text
        );
        assert_eq!(
            parse(&first_commit(4, 17, 3)),
            Some(Event::FirstLeaderCommit {
                stream: 1,
                term: 4,
                commit: 17,
                entry_term: Some(3)
            })
        );
    }

    #[test]
    fn two_leaders_of_one_term_are_a_violation_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "n1", &[role("LEADER", 1), role("LEADER", 3)]);
        write(dir.path(), "n2", &[role("LEADER", 2), role("LEADER", 3)]);
        write(dir.path(), "n3", &[role("LEADER", 3)]);
        let f = audit(dir.path());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].node.as_str(), f[0].line), ("n2", 2));
        assert!(
            f[0].text.contains("n1 and n2 both led stream 1 in term 3"),
            "{}",
            f[0].text
        );
    }

    #[test]
    fn one_leader_per_term_is_fine_even_if_it_says_so_twice() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "n1", &[role("LEADER", 1), role("LEADER", 1)]);
        write(dir.path(), "n2", &[role("FOLLOWER", 1), role("LEADER", 2)]);
        assert_eq!(audit(dir.path()), Vec::new());
    }
}
