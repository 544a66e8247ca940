//! Planted bugs are refused unless the environment allows them, and a node
//! started with one says so in its log.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn node_cmd(dir: &std::path::Path, bug: &str) -> Command {
    let peer = free_port();
    let mut cmd = Command::new(NODE_BIN);
    cmd.arg("--node-id")
        .arg("1")
        .arg("--config")
        .arg(format!(
            r#"[{{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":{peer},"role":"LEADER"}}]"#
        ))
        .arg("--data-dir")
        .arg(dir)
        .arg("--client-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--planted-bug")
        .arg(bug)
        .env_remove("DCF_ALLOW_PLANTED_BUGS");
    cmd
}

#[test]
fn planted_bugs_need_the_environment_and_announce_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let out = node_cmd(&dir.path().join("a"), "read-lease")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DCF_ALLOW_PLANTED_BUGS=1") && err.contains("read-lease"),
        "{err}"
    );

    let out = node_cmd(&dir.path().join("b"), "bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-checksum"));

    let log = dir.path().join("c.stderr");
    let mut child = node_cmd(&dir.path().join("c"), "read-lease")
        .env("DCF_ALLOW_PLANTED_BUGS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < end && !seen.contains("serving clients") {
        std::thread::sleep(Duration::from_millis(50));
        seen = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("PLANTED BUG") && seen.contains("read-lease"),
        "{seen}"
    );
}

/// `dcf-node --help` names every planted bug, so the list cannot rot.
#[test]
fn help_lists_every_planted_bug() {
    let out = Command::new(NODE_BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    for b in dcf::planted::PlantedBug::ALL {
        assert!(help.contains(b.name()), "{} missing from --help", b.name());
    }
}
