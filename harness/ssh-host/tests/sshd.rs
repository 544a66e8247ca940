//! Against a real sshd on loopback (started by the test with generated
//! keys): host-key checks, quoted commands, uploads, detached processes,
//! downloads, and a host that does not answer. Needs root and Debian's
//! openssh-server; skipped with the reason otherwise, failed under CI=true.

use ssh_host::{ConnectOptions, HostKeyPolicy, HostSpec, SshError, SshHost};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (sshd logs in as root)".into());
    }
    if !Path::new(SSHD).exists() {
        return Some("sshd is missing (apt-get install openssh-server)".into());
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An sshd on 127.0.0.1:port with its own host key, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Sshd {
    fn start(dir: &Path, host_key: &Path, client_pub: &Path, port: u16) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f", "/dev/null", "-p", &port.to_string()])
            .arg("-h")
            .arg(host_key)
            .arg("-o")
            .arg(format!("AuthorizedKeysFile={}", client_pub.display()))
            .args([
                "-o",
                "ListenAddress=127.0.0.1",
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
            .arg("-o")
            .arg(format!(
                "PidFile={}",
                dir.join(format!("sshd-{port}.pid")).display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { child, port }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    client_key: PathBuf,
    client_pub: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let client_key = dir.path().join("client");
    keygen(&client_key);
    let client_pub = dir.path().join("client.pub");
    Setup {
        dir,
        client_key,
        client_pub,
    }
}

fn opts(s: &Setup, accept_new: bool) -> ConnectOptions {
    ConnectOptions {
        key: Some(s.client_key.clone()),
        host_keys: HostKeyPolicy {
            known_hosts: s.dir.path().join("known_hosts"),
            accept_new,
        },
        timeout: Duration::from_secs(5),
    }
}

fn spec(port: u16) -> HostSpec {
    format!("root@127.0.0.1:{port}").parse().unwrap()
}

#[test]
fn host_keys_are_verified_unknown_and_changed_ones_refused() {
    if skip() {
        return;
    }
    let s = setup();
    let hk1 = s.dir.path().join("hostkey1");
    keygen(&hk1);
    let port = free_port();
    let sshd = Sshd::start(s.dir.path(), &hk1, &s.client_pub, port);

    // Unknown: refused, naming the host and the fingerprint.
    let e = SshHost::connect(spec(port), opts(&s, false))
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, SshError::UnknownHostKey { .. }), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("SHA256:"),
        "{msg}"
    );

    // Trust on first use writes it; afterwards it is known.
    SshHost::connect(spec(port), opts(&s, true)).expect("accepted");
    let kh = std::fs::read_to_string(s.dir.path().join("known_hosts")).unwrap();
    assert!(kh.contains(&format!("[127.0.0.1]:{port}")), "{kh}");
    let h = SshHost::connect(spec(port), opts(&s, false)).expect("known now");
    assert_eq!(h.check(&["echo", "ok"]).unwrap(), "ok\n");
    drop(h);
    drop(sshd);

    // Same address, another host key: refused even with trust on first use.
    let hk2 = s.dir.path().join("hostkey2");
    keygen(&hk2);
    let _sshd = Sshd::start(s.dir.path(), &hk2, &s.client_pub, port);
    let e = SshHost::connect(spec(port), opts(&s, true))
        .err()
        .expect("refused");
    assert!(matches!(e, SshError::ChangedHostKey { .. }), "{e}");
    assert!(e.to_string().contains("HOST KEY CHANGED"), "{e}");
}

#[test]
fn commands_files_and_processes() {
    if skip() {
        return;
    }
    let s = setup();
    let hk = s.dir.path().join("hostkey");
    keygen(&hk);
    let sshd = Sshd::start(s.dir.path(), &hk, &s.client_pub, free_port());
    let h = SshHost::connect(spec(sshd.port), opts(&s, true)).unwrap();

    // Arguments arrive exactly, whatever they hold.
    let tricky = ["two words", "it's", "$(id)", "a;b|c", "*", "", "new\nline"];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(tricky);
    let out = h.check(&argv).unwrap();
    let got: Vec<&str> = out.split('\0').collect();
    assert_eq!(&got[..tricky.len()], &tricky[..]);

    // A failing command is an error naming host, command and stderr.
    let e = h.check(&["ls", "/no/such/dir"]).unwrap_err().to_string();
    assert!(
        e.contains("127.0.0.1") && e.contains("/no/such/dir") && e.contains("exited with"),
        "{e}"
    );

    // Upload, skipped the second time, atomic, with its mode.
    let remote_dir = s.dir.path().join("remote");
    let local = s.dir.path().join("payload");
    std::fs::write(&local, b"#!/bin/sh\necho payload\n").unwrap();
    let target = remote_dir.join("bin/tool").display().to_string();
    assert!(
        h.upload(&local, &target, 0o755).unwrap(),
        "first upload copies"
    );
    assert!(
        !h.upload(&local, &target, 0o755).unwrap(),
        "unchanged: skipped"
    );
    assert_eq!(h.check(&[target.as_str()]).unwrap(), "payload\n");
    std::fs::write(&local, b"#!/bin/sh\necho changed\n").unwrap();
    assert!(
        h.upload(&local, &target, 0o755).unwrap(),
        "changed: copied again"
    );

    // A detached process with a pid file, signalled by that pid.
    let pid_file = remote_dir.join("sleep.pid").display().to_string();
    let pid = h
        .spawn(
            &["sh", "-c", "echo started $GREETING; exec sleep 30"],
            &[("GREETING".into(), "hello world".into())],
            &remote_dir.display().to_string(),
            &remote_dir.join("out.log").display().to_string(),
            &remote_dir.join("err.log").display().to_string(),
            &pid_file,
        )
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert!(h.alive(pid).unwrap());
    let end = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(remote_dir.join("out.log"))
        .unwrap_or_default()
        .contains("started hello world")
    {
        assert!(Instant::now() < end, "the process did not run with its env");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.signal(pid, "KILL").unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while h.alive(pid).unwrap() {
        assert!(Instant::now() < end, "still alive after SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A whole directory tree comes back.
    h.check(&[
        "mkdir",
        "-p",
        &remote_dir.join("tree/a/b").display().to_string(),
    ])
    .unwrap();
    h.check(&[
        "sh",
        "-c",
        &format!(
            "echo one > {}/tree/x; echo two > {}/tree/a/b/y",
            remote_dir.display(),
            remote_dir.display()
        ),
    ])
    .unwrap();
    let back = s.dir.path().join("back");
    let n = h
        .download_dir(&remote_dir.join("tree").display().to_string(), &back)
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(std::fs::read_to_string(back.join("x")).unwrap(), "one\n");
    assert_eq!(
        std::fs::read_to_string(back.join("a/b/y")).unwrap(),
        "two\n"
    );
}

/// A host that accepts TCP but never speaks SSH, and a closed port: both
/// fail within the timeout, naming the host.
#[test]
fn a_host_that_does_not_answer_fails_fast() {
    if skip() {
        return;
    }
    let s = setup();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut o = opts(&s, true);
    o.timeout = Duration::from_millis(800);
    let t = Instant::now();
    let e = SshHost::connect(spec(port), o.clone())
        .err()
        .expect("fails");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    drop(silent);
    let closed = free_port();
    let e = SshHost::connect(spec(closed), o).err().expect("fails");
    assert!(matches!(e, SshError::Connect { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{e}"
    );
}
