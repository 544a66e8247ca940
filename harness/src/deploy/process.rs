//! One node's OS process: spawn (optionally through `ip netns exec`, which
//! execs the node so the pid we hold is the node's), signal, and reap.

use super::DeployError;
use nemesis::NodeId;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to launch a node.
#[derive(Debug, Clone)]
pub struct Launch {
    pub node: NodeId,
    /// Network namespace to run in, if any.
    pub netns: Option<String>,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment variables set for the process (on top of ours).
    pub env: Vec<(String, String)>,
    /// Folder for `stdout.log` and `stderr.log` (appended across restarts).
    pub log_dir: PathBuf,
}

/// A node process we started; `None` while it is not running.
#[derive(Debug, Default)]
pub struct NodeProcess {
    child: Option<Child>,
    paused: bool,
}

fn signal(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall on a child we spawned and have not reaped.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The process state letter from `/proc/<pid>/stat` (`T` when stopped).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// Signals are delivered asynchronously; wait (bounded) until the process
/// is (or is no longer) stopped, so a pause is in effect when we return.
fn wait_stopped(pid: i32, stopped: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match proc_state(pid) {
            None => return Err(format!("process {pid} vanished")),
            Some(c) if (c == 'T' || c == 't') == stopped => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(format!(
                    "process {pid} did not {} within 2 s",
                    if stopped { "stop" } else { "continue" }
                ))
            }
            Some(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, DeployError> {
    let path = dir.join(name);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| DeployError::io(format!("cannot open {}", path.display()), e))
}

impl NodeProcess {
    /// The pid if the process is running (reaps it if it has exited).
    pub fn pid(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id() as i32),
            _ => {
                self.child = None;
                self.paused = false;
                None
            }
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process unless it runs; returns its pid.
    pub fn spawn(&mut self, l: &Launch) -> Result<i32, DeployError> {
        if let Some(pid) = self.pid() {
            return Ok(pid);
        }
        std::fs::create_dir_all(&l.log_dir)
            .map_err(|e| DeployError::io(format!("cannot create {}", l.log_dir.display()), e))?;
        let mut c = match &l.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&l.program);
                c
            }
            None => Command::new(&l.program),
        };
        c.args(&l.args)
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file(&l.log_dir, "stdout.log")?)
            .stderr(log_file(&l.log_dir, "stderr.log")?);
        let child = c.spawn().map_err(|e| DeployError::Node {
            node: l.node,
            reason: format!("cannot start {}: {e}", l.program.display()),
        })?;
        let pid = child.id() as i32;
        tracing::info!(node = l.node, pid, netns = ?l.netns, "node started");
        self.child = Some(child);
        self.paused = false;
        Ok(pid)
    }

    /// SIGKILLs and reaps the process; returns the pid it had, if running.
    pub fn kill(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id() as i32;
        // SIGKILL also ends a stopped process; no SIGCONT needed.
        let _ = signal(pid, libc::SIGKILL);
        let _ = child.wait();
        self.paused = false;
        tracing::info!(pid, "node killed");
        Some(pid)
    }

    /// Sends SIGKILL without waiting for the process to die (see
    /// [`NodeProcess::kill`], which also reaps it).
    pub fn send_kill(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = signal(pid, libc::SIGKILL);
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; reaps it.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        let pid = self.pid()?;
        if self.paused {
            let _ = signal(pid, libc::SIGCONT);
        }
        let _ = signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.pid().is_none() {
                return Some(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> Result<(), String> {
        let pid = self.pid().ok_or("not running")?;
        signal(pid, libc::SIGSTOP).map_err(|e| format!("SIGSTOP {pid}: {e}"))?;
        self.paused = true;
        wait_stopped(pid, true)
    }

    /// SIGCONT (a no-op when not running).
    pub fn resume(&mut self) -> Result<(), String> {
        let Some(pid) = self.pid() else { return Ok(()) };
        signal(pid, libc::SIGCONT).map_err(|e| format!("SIGCONT {pid}: {e}"))?;
        self.paused = false;
        wait_stopped(pid, false)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
