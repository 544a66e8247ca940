//! Replication flow control: how a leader slows its sends when commits
//! get slow or its host is overloaded.
//!
//! Two independent mechanisms, both pure and driven by the caller's clock:
//!
//! - [`PacingController`] (MEC_BATCH_SIZE = 0): a leader whose commits get
//!   slow is usually overrunning its followers (network or disk), so it
//!   spaces out its append messages. Every second the average commit
//!   latency (proposal to commit) becomes a sample; every
//!   [`SAMPLES_PER_ROUND`] samples their trimmed mean drives the control
//!   value: below [`FAST_COMMIT_US`] the value is halved (nothing to fix),
//!   otherwise it hill-climbs by `max(value / 10, 1)` and turns round when
//!   the latency got worse than in the previous round. The value (0..=100)
//!   is a minimum gap of `value × 100 µs` between two appends to one peer.
//! - [`PassiveThrottle`]: PASSIVE nodes do not count toward commits, so when
//!   the leader's host is overloaded (CPU, disk read wait, transport send
//!   queue over their FLOW_CONTROL_* thresholds) they are the ones to be
//!   slowed down: entries per message to them shrink by 0.8 for every
//!   consecutive overloaded sample and grow back once the load drops.

/// Samples averaged into one pacing decision.
pub const SAMPLES_PER_ROUND: usize = 5;
/// Milliseconds between two commit-latency samples.
pub const SAMPLE_PERIOD_MS: u64 = 1000;
/// A trimmed mean under this (µs) halves the pacing value.
pub const FAST_COMMIT_US: u64 = 4000;
/// Highest pacing value (a 10 ms gap).
pub const MAX_PACING: u32 = 100;
/// Microseconds of gap per unit of pacing value.
pub const PACING_UNIT_US: u64 = 100;
/// Batch shrink factor per overloaded sample for PASSIVE peers.
pub const PASSIVE_SHRINK: f64 = 0.8;
/// Cap on the throttle level: 0.8^40 is far below one entry of any batch
/// size allowed by MEC_BATCH_SIZE, so more levels would only slow recovery.
pub const MAX_THROTTLE_LEVEL: u32 = 40;

/// Commit-latency-driven send pacing (hill climbing on the gap between
/// appends to one peer).
#[derive(Clone, Debug)]
pub struct PacingController {
    value: u32,
    /// +1 or -1: where the next hill-climbing step goes.
    up: bool,
    /// Trimmed mean of the previous round, to see if the last step hurt.
    last_mean_us: Option<u64>,
    samples: Vec<u64>,
    window_start_ms: Option<u64>,
    window_sum_us: u64,
    window_count: u64,
}

impl Default for PacingController {
    fn default() -> Self {
        PacingController::new()
    }
}

impl PacingController {
    pub fn new() -> PacingController {
        PacingController {
            value: 0,
            up: true,
            last_mean_us: None,
            samples: Vec::with_capacity(SAMPLES_PER_ROUND),
            window_start_ms: None,
            window_sum_us: 0,
            window_count: 0,
        }
    }

    /// The control value, 0..=100.
    pub fn value(&self) -> u32 {
        self.value
    }

    /// Minimum gap (µs) between two appends to one peer.
    pub fn gap_us(&self) -> u64 {
        self.value as u64 * PACING_UNIT_US
    }

    /// Forgets everything (pacing turned off, or leadership changed).
    pub fn reset(&mut self) {
        *self = PacingController::new();
    }

    /// One entry committed `latency_us` after it was proposed.
    pub fn record_commit(&mut self, latency_us: u64) {
        self.window_sum_us = self.window_sum_us.saturating_add(latency_us);
        self.window_count += 1;
    }

    /// Advances the clock: closes the one-second window when it is over and
    /// turns it into a sample. A window without commits gives no sample (it
    /// says nothing about latency).
    pub fn on_time(&mut self, now_ms: u64) {
        let start = *self.window_start_ms.get_or_insert(now_ms);
        if now_ms < start + SAMPLE_PERIOD_MS {
            return;
        }
        self.window_start_ms = Some(now_ms);
        if let Some(avg) = self.window_sum_us.checked_div(self.window_count) {
            self.window_sum_us = 0;
            self.window_count = 0;
            self.push_sample(avg);
        }
    }

    /// Adds one average-latency sample (µs); every [`SAMPLES_PER_ROUND`]
    /// samples the value is adjusted. Returns the trimmed mean when it was.
    pub fn push_sample(&mut self, avg_latency_us: u64) -> Option<u64> {
        self.samples.push(avg_latency_us);
        if self.samples.len() < SAMPLES_PER_ROUND {
            return None;
        }
        let mean = trimmed_mean(&self.samples);
        self.samples.clear();
        if mean < FAST_COMMIT_US {
            self.value /= 2;
            // Only a hill-climbing step can be judged by what followed it:
            // latency rising after a fast round is load, not our doing.
            self.last_mean_us = None;
            return Some(mean);
        } else {
            if self.last_mean_us.is_some_and(|prev| mean > prev) {
                self.up = !self.up;
            }
            let step = (self.value / 10).max(1);
            self.value = if self.up {
                (self.value + step).min(MAX_PACING)
            } else {
                self.value.saturating_sub(step)
            };
            // At a bound the only way to explore is back inwards.
            if self.value == 0 {
                self.up = true;
            } else if self.value == MAX_PACING {
                self.up = false;
            }
        }
        self.last_mean_us = Some(mean);
        Some(mean)
    }
}

/// Mean of the samples without their smallest and largest (a single slow
/// or fast second does not steer the controller).
pub fn trimmed_mean(samples: &[u64]) -> u64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let inner: &[u64] = if s.len() > 2 { &s[1..s.len() - 1] } else { &s };
    if inner.is_empty() {
        return 0;
    }
    inner.iter().sum::<u64>() / inner.len() as u64
}

/// One load measurement of the leader's host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSample {
    /// Process CPU usage in percent (may exceed 100 with several threads).
    pub cpu_percent: u64,
    /// Average read wait of the data disk, µs (0 if unknown).
    pub disk_rawait_us: u64,
    /// Messages queued in the transport, not yet written to sockets.
    pub net_queue: u64,
}

/// FLOW_CONTROL_CPU_THRESHOLD, FLOW_CONTROL_DISK_RAWAIT_THRESHOLD and
/// FLOW_CONTROL_NET_QUEUE_MESSAGE_NUM_THRESHOLD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadThresholds {
    pub cpu_percent: u64,
    pub disk_rawait_us: u64,
    pub net_queue: u64,
}

impl Default for LoadThresholds {
    /// DCF's defaults.
    fn default() -> Self {
        LoadThresholds {
            cpu_percent: 100,
            disk_rawait_us: 100_000,
            net_queue: 1024,
        }
    }
}

impl LoadThresholds {
    /// True when any measurement passes its threshold.
    pub fn exceeded_by(&self, s: &LoadSample) -> bool {
        s.cpu_percent > self.cpu_percent
            || s.disk_rawait_us > self.disk_rawait_us
            || s.net_queue > self.net_queue
    }
}

/// Batch shrinking for PASSIVE peers under load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassiveThrottle {
    level: u32,
}

impl PassiveThrottle {
    /// Feeds one load sample: an overloaded sample shrinks batches one more
    /// step, a normal one relaxes one step.
    pub fn report(&mut self, sample: &LoadSample, thresholds: &LoadThresholds) {
        if thresholds.exceeded_by(sample) {
            self.level = (self.level + 1).min(MAX_THROTTLE_LEVEL);
        } else {
            self.level = self.level.saturating_sub(1);
        }
    }

    /// k in 0.8^k.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The current multiplier of entries per message (1.0 = unthrottled).
    pub fn factor(&self) -> f64 {
        PASSIVE_SHRINK.powi(self.level as i32)
    }

    /// Entries per message to a PASSIVE peer given the normal batch size;
    /// never below one, so a PASSIVE node always makes progress.
    pub fn batch(&self, max_batch: usize) -> usize {
        ((max_batch as f64 * self.factor()).floor() as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(c: &mut PacingController, latency_us: u64) -> u32 {
        for i in 0..SAMPLES_PER_ROUND {
            let r = c.push_sample(latency_us);
            assert_eq!(r.is_some(), i == SAMPLES_PER_ROUND - 1);
        }
        c.value()
    }

    #[test]
    fn trimmed_mean_drops_extremes() {
        assert_eq!(trimmed_mean(&[1, 100, 5, 6, 7]), 6);
        assert_eq!(trimmed_mean(&[10_000, 0, 0, 0, 0]), 0);
        assert_eq!(trimmed_mean(&[3]), 3);
    }

    #[test]
    fn slow_commits_raise_the_value_step_by_step() {
        let mut c = PacingController::new();
        // Same latency every round: never "worse", so keep climbing.
        let mut seen = vec![];
        for _ in 0..12 {
            seen.push(round(&mut c, 8000));
        }
        // Steps of 1 until 10, then value/10.
        assert_eq!(seen[..10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(seen[10], 11);
        assert_eq!(seen[11], 12);
        assert_eq!(c.gap_us(), 1200);
    }

    #[test]
    fn worse_latency_reverses_direction() {
        let mut c = PacingController::new();
        for _ in 0..25 {
            round(&mut c, 8000);
        }
        let v = c.value();
        assert_eq!(v, 30);
        // Latency got worse: go the other way.
        let after = round(&mut c, 9000);
        assert_eq!(after, v - (v / 10).max(1));
        // Equal latency: keep going down.
        let after2 = round(&mut c, 9000);
        assert!(after2 < after);
        // Worse again: turn back up.
        let after3 = round(&mut c, 9500);
        assert!(after3 > after2);
    }

    #[test]
    fn fast_commits_halve_the_value() {
        let mut c = PacingController::new();
        for _ in 0..30 {
            round(&mut c, 8000);
        }
        let v = c.value();
        assert_eq!(round(&mut c, 1000), v / 2);
        assert_eq!(round(&mut c, 3999), v / 4);
        for _ in 0..10 {
            round(&mut c, 500);
        }
        assert_eq!(c.value(), 0);
        assert_eq!(c.gap_us(), 0);
    }

    #[test]
    fn value_stays_in_range() {
        let mut c = PacingController::new();
        let mut lat: u64 = 5000;
        for i in 0..2000u64 {
            // Alternating better/worse rounds with a rising trend.
            lat = if i % 3 == 0 {
                lat + 700
            } else {
                lat.saturating_sub(200)
            };
            round(&mut c, lat.max(4000));
            assert!(c.value() <= MAX_PACING);
        }
        // Monotonically worse latency: it climbs and bounces at the top.
        let mut c = PacingController::new();
        for i in 0..500 {
            round(&mut c, 4000 + (i % 2));
            assert!(c.value() <= MAX_PACING);
        }
    }

    #[test]
    fn one_outlier_second_does_not_steer() {
        let mut c = PacingController::new();
        // Four fast seconds and one very slow one: trimmed mean is fast.
        for l in [1000, 1000, 60_000, 1000, 1000] {
            c.push_sample(l);
        }
        assert_eq!(c.value(), 0);
        // Four slow seconds and one very fast: slow.
        for l in [9000, 9000, 0, 9000, 9000] {
            c.push_sample(l);
        }
        assert_eq!(c.value(), 1);
    }

    #[test]
    fn windows_average_commits_per_second() {
        let mut c = PacingController::new();
        let mut now = 0;
        c.on_time(now);
        for _ in 0..5 {
            // Two commits per second: 6 ms and 10 ms -> 8 ms average.
            c.record_commit(6000);
            c.record_commit(10_000);
            now += 1000;
            c.on_time(now);
        }
        assert_eq!(c.value(), 1);
        // Idle seconds give no samples.
        for _ in 0..20 {
            now += 1000;
            c.on_time(now);
        }
        assert_eq!(c.value(), 1);
        // Not yet a second: no sample.
        c.record_commit(100);
        c.on_time(now + 999);
        assert_eq!(c.value(), 1);
    }

    #[test]
    fn passive_throttle_shrinks_and_recovers() {
        let th = LoadThresholds {
            cpu_percent: 80,
            disk_rawait_us: 50_000,
            net_queue: 100,
        };
        let calm = LoadSample {
            cpu_percent: 80,
            disk_rawait_us: 50_000,
            net_queue: 100,
        };
        let mut t = PassiveThrottle::default();
        t.report(&calm, &th);
        assert_eq!(t.level(), 0);
        assert_eq!(t.batch(256), 256);
        for over in [
            LoadSample {
                cpu_percent: 81,
                ..calm
            },
            LoadSample {
                disk_rawait_us: 50_001,
                ..calm
            },
            LoadSample {
                net_queue: 101,
                ..calm
            },
        ] {
            t.report(&over, &th);
        }
        assert_eq!(t.level(), 3);
        // 256 × 0.512 = 131.07
        assert_eq!(t.batch(256), 131);
        assert!((t.factor() - 0.512).abs() < 1e-9);
        for _ in 0..100 {
            t.report(
                &LoadSample {
                    net_queue: 1000,
                    ..calm
                },
                &th,
            );
        }
        assert_eq!(t.level(), MAX_THROTTLE_LEVEL);
        assert_eq!(t.batch(1024), 1, "never below one entry");
        assert_eq!(t.batch(1), 1);
        for _ in 0..MAX_THROTTLE_LEVEL - 1 {
            t.report(&calm, &th);
        }
        assert_eq!(t.level(), 1);
        assert_eq!(t.batch(100), 80);
        t.report(&calm, &th);
        t.report(&calm, &th);
        assert_eq!(t.level(), 0);
    }
}
