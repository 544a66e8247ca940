//! Clock skew for local nodes through libfaketime: each node is started
//! with `LD_PRELOAD` of libfaketime and its own timestamp file, which
//! libfaketime re-reads on every clock call (`FAKETIME_NO_CACHE=1`), so a
//! node's clock changes at run time without a restart.
//!
//! What this machine's libfaketime (0.9.10) does, and how we use it:
//!
//! - It computes every faked clock as `base + rate * (now - start)`, with
//!   `base` = the wall-clock time at the process's start plus the file's
//!   offset, for `CLOCK_MONOTONIC` too. With `+0` a process's monotonic
//!   clock therefore reads the wall clock (about 1.8e9 s instead of the
//!   seconds since boot), and every timed wait of Rust's std (futexes with
//!   an absolute `CLOCK_MONOTONIC` deadline the kernel compares with the
//!   real monotonic clock) sleeps for decades. So the file's offset always
//!   includes `-(wall clock - monotonic clock)`: the node's monotonic clock
//!   (`Instant`, which DCF's timers run on) then tracks the real one plus
//!   the skew. The price: the node's wall clock reads seconds since boot
//!   (1970), which only shows in its log timestamps.
//! - A rate applies to the time elapsed since the process started, so a
//!   new rate alone would jump the clock by `(old - new) * age`; the
//!   offset written with it compensates, so the clock stays continuous
//!   (a restarted node gets the file rewritten for its new start).
//! - A rate line stays in force until a line names another (`x1`), so
//!   every line names its rate.
//! - When a node's monotonic clock is ahead of the real one, the kernel
//!   ends its timed waits late by that much: the engine then ticks when a
//!   message arrives rather than every 10 ms (a node with late timers,
//!   like a loaded one). When it is behind (a backward jump, a slow
//!   rate), std re-waits until the faked deadline, so timers are late in
//!   real time exactly as the skew says; `Instant` never panics, and the
//!   core keeps the highest time it saw, so its timers stall until the
//!   clock catches up. Neither crashes a correct node: they are the
//!   faults a consensus must survive (late timers, stalled clocks).

use nemesis::{ClockSkew, NodeId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The multi-threaded libfaketime (dcf-node runs many threads).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The library, or why clock faults are unsupported and how to fix it.
pub fn libfaketime() -> Result<PathBuf, String> {
    let p = Path::new(LIBFAKETIME);
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        Err(format!(
            "clock faults need libfaketime ({LIBFAKETIME} is missing): `apt-get install faketime`"
        ))
    }
}

fn clock_secs(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The real monotonic clock, in seconds (the harness runs without
/// libfaketime).
fn mono() -> f64 {
    clock_secs(libc::CLOCK_MONOTONIC)
}

/// One node's clock as the harness keeps it.
#[derive(Debug, Clone, Copy)]
struct NodeClock {
    /// When its process started (real monotonic seconds): libfaketime's
    /// rates count from there.
    started: f64,
    skew: ClockSkew,
    /// When `skew` was set (real monotonic seconds).
    since: f64,
    /// For a strobing clock: whether the offset is in force now.
    strobe_on: bool,
}

impl NodeClock {
    /// The file's line: the node's monotonic clock reads
    /// `now + offset + (rate - 1) * (now - since)`.
    /// `epoch` is the node's host's wall clock minus its monotonic clock.
    fn line(&self, epoch: f64) -> String {
        let (offset_ms, rate) = if self.skew.strobe_ms > 0 {
            (
                if self.strobe_on {
                    self.skew.offset_ms
                } else {
                    0
                },
                1.0,
            )
        } else {
            (self.skew.offset_ms, self.skew.rate_milli as f64 / 1000.0)
        };
        let offset = offset_ms as f64 / 1000.0 - (rate - 1.0) * (self.since - self.started);
        format!("{:+.6} x{rate:.6}\n", offset - epoch)
    }

    /// The skew in force now, as an offset from now on.
    fn carried(&self, now: f64) -> ClockSkew {
        if self.skew.strobe_ms > 0 {
            return self.skew;
        }
        let drift = (self.skew.rate_milli as f64 / 1000.0 - 1.0) * (now - self.since);
        ClockSkew {
            offset_ms: self.skew.offset_ms + (drift * 1000.0).round() as i64,
            ..self.skew
        }
    }
}

struct Strobe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Where a run's timestamp files live and how they are written: on this
/// machine for local nodes, on their hosts for remote ones.
pub trait ClockFiles: Send + Sync {
    /// The node's file, as the node's process names it.
    fn path_of(&self, node: NodeId) -> String;
    /// Replaces the file's content at once (never half-written: the node
    /// re-reads it on every clock call).
    fn write(&self, node: NodeId, text: &str) -> std::io::Result<()>;
    /// The node's host's wall clock minus its monotonic clock, in seconds.
    fn epoch(&self, node: NodeId) -> f64;
}

/// Timestamp files in a folder of this machine.
struct LocalFiles {
    dir: PathBuf,
}

impl ClockFiles for LocalFiles {
    fn path_of(&self, node: NodeId) -> String {
        self.dir
            .join(format!("faketime-n{node}"))
            .display()
            .to_string()
    }
    fn write(&self, node: NodeId, text: &str) -> std::io::Result<()> {
        write_atomically(Path::new(&self.path_of(node)), text)
    }
    fn epoch(&self, _: NodeId) -> f64 {
        clock_secs(libc::CLOCK_REALTIME) - mono()
    }
}

/// The timestamp files of a run's nodes and the threads that strobe them.
pub struct NodeClocks {
    lib: String,
    files: Arc<dyn ClockFiles>,
    clocks: Arc<Mutex<BTreeMap<NodeId, NodeClock>>>,
    strobes: Mutex<BTreeMap<NodeId, Strobe>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl NodeClocks {
    /// Clocks whose files live in `dir`; fails (with the fix) without
    /// libfaketime.
    pub fn new(dir: &Path) -> Result<NodeClocks, String> {
        let files = Arc::new(LocalFiles {
            dir: dir.to_path_buf(),
        });
        Ok(NodeClocks::with_files(
            libfaketime()?.display().to_string(),
            files,
        ))
    }

    /// Clocks whose files `files` keeps, for nodes that load libfaketime
    /// from `lib` (a path on their host).
    pub fn with_files(lib: String, files: Arc<dyn ClockFiles>) -> NodeClocks {
        NodeClocks {
            lib,
            files,
            clocks: Arc::default(),
            strobes: Mutex::default(),
        }
    }

    /// The node's timestamp file.
    pub fn path_of(&self, node: NodeId) -> PathBuf {
        PathBuf::from(self.files.path_of(node))
    }

    /// The environment that puts the node's process under its clock.
    pub fn env(&self, node: NodeId) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.lib.clone()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                self.path_of(node).display().to_string(),
            ),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
        ]
    }

    fn write(&self, node: NodeId, clock: &NodeClock) -> std::io::Result<()> {
        self.files.write(node, &clock.line(self.files.epoch(node)))
    }

    /// Writes the file for a process about to start: the skew in force
    /// carries over (continuously) to the new process.
    pub fn before_spawn(&self, node: NodeId) -> std::io::Result<()> {
        let now = mono();
        let mut clocks = lock(&self.clocks);
        let clock = clocks.entry(node).or_insert(NodeClock {
            started: now,
            skew: ClockSkew::NONE,
            since: now,
            strobe_on: false,
        });
        clock.skew = clock.carried(now);
        clock.since = now;
        clock.started = now;
        let c = *clock;
        self.write(node, &c)
    }

    /// Sets the node's clock from now on; a strobe gets its own thread.
    pub fn set(&self, node: NodeId, skew: ClockSkew) -> std::io::Result<()> {
        if let Some(s) = lock(&self.strobes).remove(&node) {
            s.stop.store(true, Ordering::SeqCst);
            let _ = s.thread.join();
        }
        let now = mono();
        let clock = {
            let mut clocks = lock(&self.clocks);
            let clock = clocks.entry(node).or_insert(NodeClock {
                started: now,
                skew: ClockSkew::NONE,
                since: now,
                strobe_on: false,
            });
            clock.skew = skew;
            clock.since = now;
            clock.strobe_on = true;
            *clock
        };
        self.write(node, &clock)?;
        if skew.strobe_ms > 0 {
            let stop = Arc::new(AtomicBool::new(false));
            let (flag, clocks, files) = (stop.clone(), self.clocks.clone(), self.files.clone());
            let period = Duration::from_millis(skew.strobe_ms);
            let thread = std::thread::Builder::new()
                .name(format!("strobe-n{node}"))
                .spawn(move || {
                    while !flag.load(Ordering::SeqCst) {
                        std::thread::sleep(period);
                        if flag.load(Ordering::SeqCst) {
                            break;
                        }
                        let c = {
                            let mut clocks = lock(&clocks);
                            let Some(c) = clocks.get_mut(&node) else {
                                break;
                            };
                            c.strobe_on = !c.strobe_on;
                            *c
                        };
                        if let Err(e) = files.write(node, &c.line(files.epoch(node))) {
                            tracing::warn!(node, error = %e, "cannot strobe the clock");
                        }
                    }
                })?;
            lock(&self.strobes).insert(node, Strobe { stop, thread });
        }
        tracing::info!(node, ?skew, "clock set");
        Ok(())
    }

    /// Stops every strobe thread (teardown).
    pub fn stop_strobes(&self) {
        let strobes = std::mem::take(&mut *lock(&self.strobes));
        for s in strobes.values() {
            s.stop.store(true, Ordering::SeqCst);
        }
        for (_, s) in strobes {
            let _ = s.thread.join();
        }
    }
}

impl Drop for NodeClocks {
    fn drop(&mut self) {
        self.stop_strobes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> (f64, f64) {
        let (off, rate) = line.trim().split_once(" x").unwrap();
        (off.parse().unwrap(), rate.parse().unwrap())
    }

    /// The line makes libfaketime's `start_wall + offset + rate * (t -
    /// start)` equal `t + skew` on the monotonic clock, continuous at the
    /// moment it is set.
    #[test]
    fn lines_track_the_monotonic_clock_and_keep_rates_continuous() {
        let epoch = clock_secs(libc::CLOCK_REALTIME) - mono();
        let started = 100.0;
        let c = NodeClock {
            started,
            skew: ClockSkew {
                offset_ms: 1500,
                rate_milli: 500,
                strobe_ms: 0,
            },
            since: 160.0,
            strobe_on: false,
        };
        let (off, rate) = parse(&c.line(epoch));
        assert_eq!(rate, 0.5);
        // libfaketime: faked_mono(t) = start_wall + off + rate * (t - started).
        let faked = |t: f64| (started + epoch) + off + rate * (t - started);
        assert!((faked(160.0) - 161.5).abs() < 1e-3, "{}", faked(160.0));
        assert!((faked(170.0) - 166.5).abs() < 1e-3, "half speed after");
        let carried = c.carried(170.0);
        assert_eq!(carried.offset_ms, 1500 - 5000);
        let none = NodeClock {
            skew: ClockSkew::NONE,
            ..c
        };
        let (off, rate) = parse(&none.line(epoch));
        assert_eq!(rate, 1.0);
        assert!((started + epoch + off + (200.0 - started) - 200.0).abs() < 1e-3);
    }
}
