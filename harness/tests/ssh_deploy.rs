//! `dcf-harness test --deploy ssh` against three real sshd "hosts" on this
//! machine: each a network namespace on a bridge running its own sshd with
//! a generated host key and the test's authorised key. Covers a register
//! run with partitions and kills (valid, logs collected, nothing left on
//! the hosts or here), planted bugs caught through partitions and through
//! clock skew, cleanup after a SIGKILLed harness, an unknown host key (refused before any node
//! starts, naming the host) and a host that does not answer (fails fast,
//! naming it). Needs root, ip, iptables and openssh-server: skipped with
//! the reason otherwise, failed under CI=true.

mod common;

use common::{node_binary, HARNESS};
use harness::deploy::netns;
use harness::deploy::Registry;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (namespaces, sshd logging in as root)".into());
    }
    if !Path::new(SSHD).exists() {
        return Some("sshd is missing (apt-get install openssh-server)".into());
    }
    for tool in ["ip", "iptables", "ssh-keygen"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            return Some(format!(
                "`{tool}` is missing (apt-get install iproute2 iptables openssh-client)"
            ));
        }
    }
    None
}

fn skip() -> bool {
    match skip_reason() {
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("required under CI=true: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
        None => false,
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Three hosts: namespaces with sshd, torn down (sshd, namespaces, bridge)
/// on drop, even when the test fails.
struct Hosts {
    dir: tempfile::TempDir,
    registry: Registry,
    sshd: Vec<Child>,
    ips: Vec<Ipv4Addr>,
    namespaces: Vec<String>,
    /// An address on the hosts' subnet that nothing answers on.
    silent: Ipv4Addr,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Hosts {
    fn start(n: u32) -> Hosts {
        let dir = tempfile::tempdir().unwrap();
        let tag = netns::unique_tag();
        let mut registry = Registry::new(&tag, "sshd-hosts", None);
        let net = netns::create(&tag, n, &mut registry).expect("namespaces for the hosts");
        let key = dir.path().join("client");
        keygen(&key);
        let client_pub = dir.path().join("client.pub");
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut known = String::new();
        let mut sshd = Vec::new();
        let mut ips = Vec::new();
        let mut namespaces = Vec::new();
        for (id, ns, ip) in &net.nodes {
            let host_key = dir.path().join(format!("host{id}"));
            keygen(&host_key);
            let public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
            let mut fields = public.split_whitespace();
            let (kind, b64) = (fields.next().unwrap(), fields.next().unwrap());
            known.push_str(&format!("{ip} {kind} {b64}\n"));
            let child = Command::new("ip")
                .args(["netns", "exec", ns, SSHD, "-D", "-e", "-f", "/dev/null"])
                .arg("-h")
                .arg(&host_key)
                .arg("-o")
                .arg(format!("AuthorizedKeysFile={}", client_pub.display()))
                .arg("-o")
                .arg(format!("ListenAddress={ip}"))
                .arg("-o")
                .arg(format!(
                    "PidFile={}",
                    dir.path().join(format!("sshd{id}.pid")).display()
                ))
                .args([
                    "-o",
                    "StrictModes=no",
                    "-o",
                    "PasswordAuthentication=no",
                    "-o",
                    "UsePAM=no",
                    "-o",
                    "PermitRootLogin=yes",
                    "-o",
                    "Subsystem=sftp internal-sftp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            sshd.push(child);
            ips.push(*ip);
            namespaces.push(ns.clone());
        }
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, known).unwrap();
        let hosts = Hosts {
            dir,
            registry,
            sshd,
            silent: netns::node_ip(net.prefix, n + 50),
            ips,
            namespaces,
            key,
            known_hosts,
        };
        for ip in &hosts.ips {
            let end = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect((*ip, 22)).is_err() {
                assert!(Instant::now() < end, "sshd on {ip} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        hosts
    }

    fn host_list(&self) -> String {
        self.ips
            .iter()
            .map(|ip| format!("root@{ip}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn remote_root(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    /// `dcf-harness test --deploy ssh` against these hosts.
    fn harness(&self, store: &Path, hosts: &str, known_hosts: &Path, more: &[&str]) -> Output {
        Command::new(HARNESS)
            .arg("test")
            .arg("--store")
            .arg(store)
            .arg("--node-binary")
            .arg(node_binary())
            .args(["--deploy", "ssh", "--hosts", hosts])
            .arg("--ssh-key")
            .arg(&self.key)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--remote-root")
            .arg(self.remote_root())
            .args(more)
            .output()
            .unwrap()
    }

    /// No node process of these hosts' remote root runs, no run directory
    /// is left under it, and no host has a rule of ours.
    fn assert_nothing_left(&self) {
        let root = self.remote_root().display().to_string();
        let ps = Command::new("pgrep").args(["-f", &root]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
            "node processes under {root} still run"
        );
        if let Ok(entries) = std::fs::read_dir(self.remote_root()) {
            let left: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| n != "bin")
                .collect();
            assert!(
                left.is_empty(),
                "run directories left on the hosts: {left:?}"
            );
        }
        for ns in &self.namespaces {
            let rules = Command::new("ip")
                .args(["netns", "exec", ns, "iptables", "-S"])
                .output()
                .unwrap();
            let rules = String::from_utf8_lossy(&rules.stdout);
            assert!(!rules.contains("dcf-"), "rules left in {ns}:\n{rules}");
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.registry.remove_all();
    }
}

fn results(store: &Path) -> Value {
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap()
}

/// The acceptance run: a register test with partitions and kills over SSH
/// is valid, collects the node logs and leaves nothing behind; then the
/// two refusals on the same hosts.
#[test]
fn ssh_hosts_run_valid_tests_and_refuse_bad_hosts() {
    if skip() {
        return;
    }
    let hosts = Hosts::start(3);
    let store = hosts.dir.path().join("store");
    let out = hosts.harness(
        &store,
        &hosts.host_list(),
        &hosts.known_hosts,
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "partition,kill",
            "--schedule",
            "3:partition:leader,8:heal,10:kill:minority,14:restart",
            "--time-limit",
            "20",
            "--seed",
            "5",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected valid; stderr:\n{stderr}"
    );
    let r = results(&store);
    let ok = r["run"]["client_ops"]["ok"]
        .as_u64()
        .or_else(|| r["client_ops"]["ok"].as_u64());
    assert!(ok.unwrap_or(0) > 500, "few successful operations: {r}");
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    for f in [
        "start-partition",
        "stop-partition",
        "start-kill",
        "stop-kill",
    ] {
        assert!(history.contains(&format!("\"f\":\"{f}\"")), "{f} missing");
    }
    for id in 1..=3 {
        let log = run.join("nodes").join(format!("n{id}")).join("stderr.log");
        assert!(log.is_file(), "{} not collected", log.display());
        assert!(run
            .join("nodes")
            .join(format!("n{id}"))
            .join("data")
            .is_dir());
    }
    hosts.assert_nothing_left();

    // The partitions bite: nodes that serve reads without confirming
    // leadership are caught under them.
    let store_bug = hosts.dir.path().join("store-bug");
    let out = hosts.harness(
        &store_bug,
        &hosts.host_list(),
        &hosts.known_hosts,
        &[
            "--nodes",
            "3",
            "--nemesis",
            "partition",
            "--planted-bug",
            "local-reads",
            "--schedule",
            "2:partition:leader,9:heal,11:partition:leader,18:heal",
            "--time-limit",
            "20",
            "--rate",
            "200",
            "--concurrency",
            "10",
            "--seed",
            "11",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the planted bug must be caught over SSH too; stderr:\n{stderr}"
    );
    hosts.assert_nothing_left();

    // Clock faults run on the hosts too (libfaketime there), and bite: a
    // read lease trusted on a leader whose clock runs slow is caught.
    let store_clock = hosts.dir.path().join("store-clock");
    let out = hosts.harness(
        &store_clock,
        &hosts.host_list(),
        &hosts.known_hosts,
        &[
            "--nodes",
            "3",
            "--nemesis",
            "clock,partition",
            "--planted-bug",
            "read-lease",
            "--schedule",
            "3:clock:slow-leader-10x,4:partition:leader,16:heal,17:reset-clock",
            "--time-limit",
            "22",
            "--seed",
            "11",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a slow-clock read lease must be caught over SSH; stderr:\n{stderr}"
    );
    let run = std::fs::canonicalize(store_clock.join("latest")).unwrap();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"rate\":0.1"),
        "the slow clock is recorded"
    );
    hosts.assert_nothing_left();

    // A SIGKILLed harness leaves its nodes running on the hosts;
    // `dcf-harness cleanup` removes them from the run's record.
    let store_killed = hosts.dir.path().join("store-killed");
    let mut child = Command::new(HARNESS)
        .arg("test")
        .arg("--store")
        .arg(&store_killed)
        .arg("--node-binary")
        .arg(node_binary())
        .args(["--deploy", "ssh", "--hosts", &hosts.host_list()])
        .arg("--ssh-key")
        .arg(&hosts.key)
        .arg("--known-hosts")
        .arg(&hosts.known_hosts)
        .arg("--remote-root")
        .arg(hosts.remote_root())
        .args([
            "--nodes",
            "3",
            "--nemesis",
            "partition",
            "--time-limit",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let history = || {
        std::fs::canonicalize(store_killed.join("latest"))
            .ok()
            .and_then(|r| std::fs::read_to_string(r.join("history.jsonl")).ok())
            .map_or(0, |h| h.lines().count())
    };
    while history() < 200 {
        assert!(Instant::now() < end, "the run did not get going");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let root = hosts.remote_root().display().to_string();
    let ps = Command::new("pgrep").args(["-f", &root]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "the killed harness's nodes should still run before cleanup"
    );
    let run = std::fs::canonicalize(store_killed.join("latest")).unwrap();
    let out = Command::new(HARNESS)
        .arg("cleanup")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("process"), "cleanup output: {said}");
    hosts.assert_nothing_left();

    // A known_hosts without the second host: refused before any node runs.
    let partial = hosts.dir.path().join("known_hosts_partial");
    let full = std::fs::read_to_string(&hosts.known_hosts).unwrap();
    let second = hosts.ips[1].to_string();
    let kept: String = full
        .lines()
        .filter(|l| !l.starts_with(&format!("{second} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&partial, kept).unwrap();
    let store2 = hosts.dir.path().join("store2");
    let out = hosts.harness(
        &store2,
        &hosts.host_list(),
        &partial,
        &["--nodes", "3", "--time-limit", "5"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&second) && stderr.contains("unknown host key"),
        "the refusal names the host: {stderr}"
    );
    let nodes = std::fs::canonicalize(store2.join("latest"))
        .unwrap()
        .join("nodes");
    assert!(
        !nodes.join("n1").join("stderr.log").exists(),
        "a node was started"
    );
    hosts.assert_nothing_left();

    // A host that does not answer: fails within a few timeouts, named.
    let store3 = hosts.dir.path().join("store3");
    let list = format!("{},root@{}", hosts.host_list(), hosts.silent);
    let began = Instant::now();
    let out = hosts.harness(
        &store3,
        &list,
        &hosts.known_hosts,
        &["--nodes", "3", "--time-limit", "5", "--ssh-timeout", "2"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&hosts.silent.to_string()),
        "the failure names the silent host: {stderr}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "took {:?}",
        began.elapsed()
    );
    hosts.assert_nothing_left();
}

/// `--deploy ssh` without hosts is a usage error that creates nothing.
#[test]
fn ssh_without_hosts_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(HARNESS)
        .current_dir(dir.path())
        .args(["test", "--deploy", "ssh"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--hosts"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
