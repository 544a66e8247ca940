//! One host over SSH: a verified, authenticated session reused for every
//! call and re-established once when it breaks.

use crate::quote::{command_line, quote};
use crate::spec::HostSpec;
use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, HashType, KnownHostFileKind, Session};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Why something failed on a host; every variant names the host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: cannot connect: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host}: unknown host key {fingerprint} (not in {known_hosts}); verify it and add it, or pass --accept-new-host-keys to trust it on first use")]
    UnknownHostKey {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error("{host}: HOST KEY CHANGED: the host now presents {fingerprint}, which does not match {known_hosts}; refusing to connect (someone may be intercepting the connection, or the host was reinstalled)")]
    ChangedHostKey {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error("{host}: authentication failed as {user}: {reason}")]
    Auth {
        host: String,
        user: String,
        reason: String,
    },
    #[error("{host}: `{command}` exited with {status}: {stderr}")]
    Command {
        host: String,
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: {what}: {reason}")]
    Io {
        host: String,
        what: String,
        reason: String,
    },
}

/// How the host's key is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// The OpenSSH known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// Trust a host seen for the first time and write its key to the file.
    pub accept_new: bool,
}

impl Default for HostKeyPolicy {
    fn default() -> Self {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        HostKeyPolicy {
            known_hosts: Path::new(&home).join(".ssh").join("known_hosts"),
            accept_new: false,
        }
    }
}

/// How to connect and authenticate.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// A private key file; without one (and without one in the host's
    /// spec) the ssh-agent is used.
    pub key: Option<PathBuf>,
    pub host_keys: HostKeyPolicy,
    /// For connecting and for every blocking call on the session.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            key: None,
            host_keys: HostKeyPolicy::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a remote command printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What went wrong inside one use of the session.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Ssh(#[from] ssh2::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A host reached over SSH.
pub struct SshHost {
    spec: HostSpec,
    opts: ConnectOptions,
    session: Mutex<Option<Session>>,
}

/// OpenSSH's fingerprint notation, `SHA256:<base64 without padding>`.
fn fingerprint(session: &Session) -> String {
    match session.host_key_hash(HashType::Sha256) {
        Some(h) => format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)
        ),
        None => "(no host key)".into(),
    }
}

impl SshHost {
    /// Connects, verifies the host key and authenticates (a failure here
    /// comes within `opts.timeout` and names the host).
    pub fn connect(spec: HostSpec, opts: ConnectOptions) -> Result<SshHost, SshError> {
        let h = SshHost {
            spec,
            opts,
            session: Mutex::new(None),
        };
        drop(h.session()?);
        Ok(h)
    }

    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    fn name(&self) -> String {
        self.spec.address()
    }

    fn io(&self, what: impl Into<String>, e: impl std::fmt::Display) -> SshError {
        SshError::Io {
            host: self.name(),
            what: what.into(),
            reason: e.to_string(),
        }
    }

    fn open(&self) -> Result<Session, SshError> {
        let host = self.name();
        let connect_err = |reason: String| SshError::Connect {
            host: host.clone(),
            reason,
        };
        let addr = self
            .spec
            .address()
            .to_socket_addrs()
            .map_err(|e| connect_err(format!("cannot resolve: {e}")))?
            .next()
            .ok_or_else(|| connect_err("no address".into()))?;
        let tcp = TcpStream::connect_timeout(&addr, self.opts.timeout).map_err(|e| {
            connect_err(format!(
                "{e} (no answer within {:?} or refused)",
                self.opts.timeout
            ))
        })?;
        let _ = tcp.set_read_timeout(Some(self.opts.timeout));
        let mut session = Session::new().map_err(|e| connect_err(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(self.opts.timeout.as_millis().min(u32::MAX as u128) as u32);
        session
            .handshake()
            .map_err(|e| connect_err(format!("SSH handshake: {e}")))?;
        self.verify_host_key(&session)?;
        let key = self.spec.key.as_ref().or(self.opts.key.as_ref());
        let auth = match key {
            Some(k) => session.userauth_pubkey_file(&self.spec.user, None, k, None),
            None => session.userauth_agent(&self.spec.user),
        };
        if let Err(e) = auth {
            return Err(SshError::Auth {
                host: host.clone(),
                user: self.spec.user.clone(),
                reason: match key {
                    Some(k) => format!("key {}: {e}", k.display()),
                    None => format!(
                        "ssh-agent: {e} (pass --ssh-key PATH, or load a key into the agent)"
                    ),
                },
            });
        }
        if !session.authenticated() {
            return Err(SshError::Auth {
                host,
                user: self.spec.user.clone(),
                reason: "the server did not accept the key".into(),
            });
        }
        Ok(session)
    }

    fn verify_host_key(&self, session: &Session) -> Result<(), SshError> {
        let policy = &self.opts.host_keys;
        let fp = fingerprint(session);
        let (key, kind) = session
            .host_key()
            .ok_or_else(|| self.io("host key", "the server sent none"))?;
        let mut kh = session
            .known_hosts()
            .map_err(|e| self.io("known_hosts", e))?;
        if policy.known_hosts.exists() {
            kh.read_file(&policy.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| self.io(format!("reading {}", policy.known_hosts.display()), e))?;
        }
        match kh.check_port(&self.spec.host, self.spec.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(SshError::ChangedHostKey {
                host: self.name(),
                fingerprint: fp,
                known_hosts: policy.known_hosts.clone(),
            }),
            CheckResult::NotFound | CheckResult::Failure if policy.accept_new => {
                let entry = if self.spec.port == 22 {
                    self.spec.host.clone()
                } else {
                    format!("[{}]:{}", self.spec.host, self.spec.port)
                };
                kh.add(&entry, key, "added by dcf-harness", kind.into())
                    .map_err(|e| self.io("adding the host key", e))?;
                if let Some(dir) = policy.known_hosts.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| self.io(format!("creating {}", dir.display()), e))?;
                }
                kh.write_file(&policy.known_hosts, KnownHostFileKind::OpenSSH)
                    .map_err(|e| self.io(format!("writing {}", policy.known_hosts.display()), e))?;
                tracing::warn!(host = %self.name(), fingerprint = %fp, file = %policy.known_hosts.display(), "trusted a new host key on first use");
                Ok(())
            }
            CheckResult::NotFound | CheckResult::Failure => Err(SshError::UnknownHostKey {
                host: self.name(),
                fingerprint: fp,
                known_hosts: policy.known_hosts.clone(),
            }),
        }
    }

    /// The session, (re)connecting if there is none.
    fn session(&self) -> Result<MutexGuard<'_, Option<Session>>, SshError> {
        let mut g = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(self.open()?);
        }
        Ok(g)
    }

    /// Runs `f` on the session; if it fails on a broken connection, runs
    /// it once more on a new one.
    fn with_session<T>(
        &self,
        what: &str,
        f: impl Fn(&Session) -> Result<T, Failure>,
    ) -> Result<T, SshError> {
        for attempt in 0..2 {
            let mut g = self.session()?;
            let s = g.as_ref().expect("connected");
            match f(s) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 => {
                    tracing::debug!(host = %self.name(), error = %e, "{what} failed; reconnecting once");
                    *g = None;
                }
                Err(e) => return Err(self.io(what, e)),
            }
        }
        unreachable!("two attempts")
    }

    /// Runs a command line that is already quoted.
    fn exec(&self, line: &str) -> Result<Output, SshError> {
        self.with_session(line, |s| {
            let mut ch = s.channel_session()?;
            ch.exec(line)?;
            let mut stdout = String::new();
            ch.read_to_string(&mut stdout)?;
            let mut stderr = String::new();
            ch.stderr().read_to_string(&mut stderr)?;
            ch.wait_close()?;
            Ok(Output {
                status: ch.exit_status()?,
                stdout,
                stderr,
            })
        })
    }

    /// Runs `argv` (each argument quoted) and returns how it ended.
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> Result<Output, SshError> {
        self.exec(&command_line(argv))
    }

    /// Runs `argv`; a non-zero exit is an error with its stderr.
    pub fn check<S: AsRef<str>>(&self, argv: &[S]) -> Result<String, SshError> {
        let line = command_line(argv);
        let out = self.exec(&line)?;
        if out.status != 0 {
            return Err(SshError::Command {
                host: self.name(),
                command: line,
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// Copies `local` to `remote` with `mode`, unless the remote file
    /// already has the same SHA-256 (then returns false). The file is
    /// written beside its place and renamed into it, so a half-copied
    /// binary is never run.
    pub fn upload(&self, local: &Path, remote: &str, mode: i32) -> Result<bool, SshError> {
        let bytes =
            std::fs::read(local).map_err(|e| self.io(format!("reading {}", local.display()), e))?;
        let digest = format!("{:x}", Sha256::digest(&bytes));
        let have = self.run(&["sha256sum", "--", remote])?;
        if have.status == 0 && have.stdout.split_whitespace().next() == Some(digest.as_str()) {
            return Ok(false);
        }
        if let Some(dir) = Path::new(remote).parent().and_then(|d| d.to_str()) {
            if !dir.is_empty() {
                self.check(&["mkdir", "-p", "--", dir])?;
            }
        }
        let tmp = format!("{remote}.upload-{}", std::process::id());
        self.with_session(&format!("uploading {}", local.display()), |s| {
            let sftp = s.sftp()?;
            let mut f = sftp.create(Path::new(&tmp))?;
            f.write_all(&bytes)?;
            Ok(())
        })?;
        self.check(&["chmod", &format!("{mode:o}"), "--", &tmp])?;
        self.check(&["mv", "-f", "--", &tmp, remote])?;
        Ok(true)
    }

    /// Copies the remote directory tree `remote` into `local` (created);
    /// returns the number of files copied. Symbolic links are skipped.
    pub fn download_dir(&self, remote: &str, local: &Path) -> Result<u64, SshError> {
        std::fs::create_dir_all(local)
            .map_err(|e| self.io(format!("creating {}", local.display()), e))?;
        let entries = self.with_session(&format!("listing {remote}"), |s| {
            Ok(s.sftp()?.readdir(Path::new(remote))?)
        })?;
        let mut n = 0;
        for (path, stat) in entries {
            let Some(name) = path.file_name() else {
                continue;
            };
            let target = local.join(name);
            let rpath = path.to_string_lossy().to_string();
            if stat.is_dir() {
                n += self.download_dir(&rpath, &target)?;
            } else if stat.is_file() {
                let data = self.with_session(&format!("reading {rpath}"), |s| {
                    let mut f = s.sftp()?.open(&path)?;
                    let mut buf = Vec::new();
                    f.read_to_end(&mut buf)?;
                    Ok(buf)
                })?;
                std::fs::write(&target, data)
                    .map_err(|e| self.io(format!("writing {}", target.display()), e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Starts `argv` detached from the session (it survives a dropped
    /// connection), in `cwd`, with `env` set, stdout and stderr appended to
    /// the given files, its pid written to `pid_file`; returns the pid.
    pub fn spawn<S: AsRef<str>>(
        &self,
        argv: &[S],
        env: &[(String, String)],
        cwd: &str,
        stdout: &str,
        stderr: &str,
        pid_file: &str,
    ) -> Result<u32, SshError> {
        let mut cmd: Vec<String> = vec!["env".into()];
        cmd.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.extend(argv.iter().map(|a| a.as_ref().to_string()));
        // `cd` on its own: `cd D && cmd &` would background a subshell
        // that keeps the session's output open until the process ends.
        let line = format!(
            "cd {} || exit 1; setsid {} >>{} 2>>{} </dev/null & echo $! >{}; echo $!",
            quote(cwd),
            command_line(&cmd),
            quote(stdout),
            quote(stderr),
            quote(pid_file)
        );
        let out = self.exec(&line)?;
        out.stdout.trim().parse().map_err(|_| SshError::Command {
            host: self.name(),
            command: line,
            status: out.status,
            stderr: format!("no pid printed; {}", out.stderr.trim()),
        })
    }

    /// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`, `TERM`) to `pid`.
    pub fn signal(&self, pid: u32, signal: &str) -> Result<(), SshError> {
        self.check(&["kill", &format!("-{signal}"), "--", &pid.to_string()])
            .map(|_| ())
    }

    /// True if a process with `pid` exists.
    pub fn alive(&self, pid: u32) -> Result<bool, SshError> {
        Ok(self.run(&["kill", "-0", "--", &pid.to_string()])?.status == 0)
    }
}
