//! The host load that PASSIVE flow control reacts to, sampled from
//! `/proc` once a second.

use crate::core::LoadSample;
use std::time::{Duration, Instant};

/// How often the host load is measured for PASSIVE flow control.
const LOAD_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Linux USER_HZ: the unit of the CPU times in `/proc/<pid>/stat`. It is
/// 100 on every architecture Linux exposes to user space, so it is not
/// worth a `sysconf` dependency.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Measures this process's CPU usage and the read wait of the disk holding
/// the data directory from `/proc` (Linux). What cannot be read (another
/// OS, a data directory on tmpfs/overlay with no entry in
/// `/proc/diskstats`) reads as 0, which never triggers throttling.
pub(super) struct LoadSampler {
    at: Instant,
    cpu_ticks: Option<u64>,
    /// `major:minor` of the data directory's device, if it is a block device.
    device: Option<(u64, u64)>,
    /// Reads completed and milliseconds spent reading, at the last sample.
    disk: Option<(u64, u64)>,
}

impl LoadSampler {
    pub(super) fn new(data_dir: &std::path::Path) -> LoadSampler {
        let device = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(data_dir).ok().map(|m| {
                let dev = m.dev();
                let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
                let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
                (major, minor)
            })
        }
        .filter(|(major, _)| *major != 0);
        let mut s = LoadSampler {
            at: Instant::now(),
            cpu_ticks: None,
            device,
            disk: None,
        };
        s.cpu_ticks = process_cpu_ticks();
        s.disk = s.disk_counters();
        s
    }

    pub(super) fn due(&self) -> bool {
        self.at.elapsed() >= LOAD_SAMPLE_PERIOD
    }

    /// One sample covering the time since the previous one.
    pub(super) fn sample(&mut self, net_queue: usize) -> LoadSample {
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        let cpu = process_cpu_ticks();
        let cpu_percent = match (self.cpu_ticks, cpu) {
            (Some(a), Some(b)) => {
                (b.saturating_sub(a) as f64 / CLOCK_TICKS_PER_SEC / wall * 100.0) as u64
            }
            _ => 0,
        };
        self.cpu_ticks = cpu;
        let disk = self.disk_counters();
        let disk_rawait_us = match (self.disk, disk) {
            (Some((r0, ms0)), Some((r1, ms1))) if r1 > r0 => {
                ms1.saturating_sub(ms0) * 1000 / (r1 - r0)
            }
            _ => 0,
        };
        self.disk = disk;
        LoadSample {
            cpu_percent,
            disk_rawait_us,
            net_queue: net_queue as u64,
        }
    }

    fn disk_counters(&self) -> Option<(u64, u64)> {
        let (major, minor) = self.device?;
        let text = std::fs::read_to_string("/proc/diskstats").ok()?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 7 || f[0].parse() != Ok(major) || f[1].parse() != Ok(minor) {
                return None;
            }
            // reads completed (4th field), time spent reading in ms (7th).
            Some((f[3].parse().ok()?, f[6].parse().ok()?))
        })
    }
}

/// utime + stime of this process, in clock ticks.
fn process_cpu_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: skip past the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; field 3 (state) is f[0].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}
