//! The one-line progress display of a run: elapsed time, operations
//! ok / fail / info, and the current fault. On a terminal the line is
//! redrawn in place; otherwise (CI logs) a line is printed every 10 s.

use crate::interpreter::Counters;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the nemesis is doing now, shown on the progress line.
#[derive(Default)]
pub struct CurrentFault(Mutex<String>);

impl CurrentFault {
    pub fn set(&self, s: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = s.into();
    }
    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Formats the progress line.
pub fn line(elapsed: Duration, limit: Duration, counts: (u64, u64, u64), fault: &str) -> String {
    let fault = if fault.is_empty() { "none" } else { fault };
    format!(
        "[{:>4}s/{}s] ok {} fail {} info {} | fault: {}",
        elapsed.as_secs(),
        limit.as_secs(),
        counts.0,
        counts.1,
        counts.2,
        fault
    )
}

/// Prints progress until `done` is set.
pub async fn show(
    counters: Arc<Counters>,
    fault: Arc<CurrentFault>,
    limit: Duration,
    done: Arc<AtomicBool>,
) {
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    };
    let mut last_print = Instant::now();
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if last_print.elapsed() < every {
            continue;
        }
        last_print = Instant::now();
        let l = line(start.elapsed(), limit, counters.snapshot(), &fault.get());
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{l}");
        } else {
            let _ = writeln!(err, "{l}");
        }
        let _ = err.flush();
    }
    if tty {
        let _ = writeln!(std::io::stderr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shape() {
        let l = line(
            Duration::from_secs(12),
            Duration::from_secs(60),
            (100, 2, 1),
            "partition halves",
        );
        assert_eq!(
            l,
            "[  12s/60s] ok 100 fail 2 info 1 | fault: partition halves"
        );
        assert!(
            line(Duration::ZERO, Duration::from_secs(1), (0, 0, 0), "").ends_with("fault: none")
        );
    }
}
