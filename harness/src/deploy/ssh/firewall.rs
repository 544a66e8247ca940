//! Partitions on SSH hosts: one iptables chain per run on each host,
//! jumped to from INPUT by a rule tagged with the run's tag, holding DROP
//! rules that match only this run's node ports. The host's own rules are
//! never touched, and removing the jump and the chain undoes everything.

use ssh_host::{command_line, SshError, SshHost};
use std::net::IpAddr;

/// The chain's name for a run (iptables allows 28 characters).
pub fn chain_name(tag: &str) -> String {
    format!("dcf-{tag}")
}

fn comment(tag: &str) -> String {
    format!("dcf-harness-{tag}")
}

/// The jump from INPUT, as arguments after `-I`/`-D`/`-C`.
fn jump(chain: &str, tag: &str) -> Vec<String> {
    [
        "INPUT",
        "-j",
        chain,
        "-m",
        "comment",
        "--comment",
        &comment(tag),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the argument vectors one after the other in one remote shell,
/// stopping at the first failure.
fn run_all(host: &SshHost, commands: &[Vec<String>]) -> Result<(), SshError> {
    let script = commands
        .iter()
        .map(|c| command_line(c))
        .collect::<Vec<_>>()
        .join(" && ");
    host.check(&["sh", "-c", &script]).map(|_| ())
}

fn iptables(args: &[&str]) -> Vec<String> {
    std::iter::once("iptables")
        .chain(std::iter::once("-w"))
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Creates the (empty) chain and the jump to it.
pub fn create(host: &SshHost, chain: &str, tag: &str) -> Result<(), SshError> {
    let mut insert = iptables(&["-I"]);
    insert.extend(jump(chain, tag));
    run_all(host, &[iptables(&["-N", chain]), insert])
}

/// One packet filter of a partition: drop TCP from `source` to `port`, or
/// from `source`'s `port` (the replies on connections this node opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drop {
    pub source: IpAddr,
    pub dport: Option<u16>,
    pub sport: Option<u16>,
}

impl Drop {
    fn args(&self, chain: &str) -> Vec<String> {
        let src = self.source.to_string();
        let mut a = iptables(&["-A", chain, "-s", &src, "-p", "tcp"]);
        if let Some(p) = self.dport {
            a.extend(["--dport".to_string(), p.to_string()]);
        }
        if let Some(p) = self.sport {
            a.extend(["--sport".to_string(), p.to_string()]);
        }
        a.extend(["-j".to_string(), "DROP".to_string()]);
        a
    }
}

/// Replaces the chain's rules with `drops` (none: heals the host).
pub fn set(host: &SshHost, chain: &str, drops: &[Drop]) -> Result<(), SshError> {
    let mut commands = vec![iptables(&["-F", chain])];
    commands.extend(drops.iter().map(|d| d.args(chain)));
    run_all(host, &commands)
}

/// Removes the jump and the chain if they exist; true if something was
/// removed.
pub fn remove(host: &SshHost, chain: &str, tag: &str) -> Result<bool, SshError> {
    let mut removed = false;
    loop {
        let mut delete = iptables(&["-D"]);
        delete.extend(jump(chain, tag));
        if host.run(&delete)?.status != 0 {
            break;
        }
        removed = true;
    }
    if host.run(&iptables(&["-n", "-L", chain]))?.status == 0 {
        run_all(host, &[iptables(&["-F", chain]), iptables(&["-X", chain])])?;
        removed = true;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_rules_match_only_the_given_ports() {
        assert!(chain_name("abcdef").len() <= 28);
        let d = Drop {
            source: "198.18.3.12".parse().unwrap(),
            dport: Some(27001),
            sport: None,
        };
        assert_eq!(
            d.args("dcf-abcdef").join(" "),
            "iptables -w -A dcf-abcdef -s 198.18.3.12 -p tcp --dport 27001 -j DROP"
        );
        assert_eq!(
            jump("dcf-abcdef", "abcdef").join(" "),
            "INPUT -j dcf-abcdef -m comment --comment dcf-harness-abcdef"
        );
    }
}
