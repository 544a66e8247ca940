//! One `dcf-harness test` run as a child process, for commands that run
//! many (the zoo): each run is isolated (its own process, its own signal
//! handling and teardown), and a crash of one does not end the others.

use crate::detect::{first_evidence, Detection};
use checker::Validity;
use reports::run_folder::{ResultsFile, RESULTS_FILE};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a child run ended with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChildOutcome {
    /// `valid`, `invalid`, `unknown`, or `harness-failure`.
    pub verdict: String,
    /// The run folder, if the run got that far.
    pub run_dir: Option<PathBuf>,
    /// Wall-clock seconds, set-up and teardown included.
    pub seconds: f64,
    /// Completed client operations (ok + fail + info).
    pub ops: u64,
    /// The first evidence of an invalid verdict, if it has a time.
    pub detection: Option<Detection>,
    /// The rule that decided the verdict, or the harness failure.
    pub reason: Option<String>,
}

impl ChildOutcome {
    pub fn validity(&self) -> Option<Validity> {
        match self.verdict.as_str() {
            "valid" => Some(Validity::Valid),
            "invalid" => Some(Validity::Invalid),
            "unknown" => Some(Validity::Unknown),
            _ => None,
        }
    }
}

/// This executable's path, to run children with. Linux names a running
/// executable that was replaced on disk (a rebuild during a long zoo)
/// `PATH (deleted)`; the path itself then holds the new build.
pub fn harness_exe() -> std::io::Result<PathBuf> {
    std::env::current_exe().map(without_deleted_mark)
}

fn without_deleted_mark(exe: PathBuf) -> PathBuf {
    match exe.to_string_lossy().strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    }
}

/// `EXE test ARGS` (`EXE` from [`harness_exe`]); its stdout and stderr go
/// to `log`.
pub fn spawn(exe: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    Command::new(exe)
        .arg("test")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
}

/// Waits for `child`; on `stop`, asks it to end (SIGTERM: it heals and
/// tears down as on Ctrl-C) and keeps waiting. Reads the verdict from the
/// line `dcf-harness test` prints last and the run's `results.json`.
pub fn wait(mut child: Child, log: &Path, started: Instant, stop: &AtomicBool) -> ChildOutcome {
    let mut signalled = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => {}
        }
        if stop.load(Ordering::SeqCst) && !signalled {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    outcome(&text, seconds)
}

/// The outcome from the child's output: `VERDICT RUN/results.json` or
/// `harness-failure RUN`.
fn outcome(output: &str, seconds: f64) -> ChildOutcome {
    let last = output.lines().rev().find_map(|l| {
        let (word, path) = l.split_once(' ')?;
        matches!(word, "valid" | "invalid" | "unknown" | "harness-failure")
            .then(|| (word.to_string(), PathBuf::from(path.trim())))
    });
    let Some((verdict, path)) = last else {
        let tail: Vec<&str> = output.lines().rev().take(3).collect();
        return ChildOutcome {
            verdict: "harness-failure".into(),
            run_dir: None,
            seconds,
            ops: 0,
            detection: None,
            reason: Some(format!(
                "no verdict printed; last output: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )),
        };
    };
    let run_dir = if path.ends_with(RESULTS_FILE) {
        path.parent().map(Path::to_path_buf)
    } else {
        Some(path)
    };
    let results: Option<ResultsFile> = run_dir.as_ref().and_then(|d| {
        reports::run_folder::read(&d.join(RESULTS_FILE))
            .ok()
            .flatten()
    });
    let ops = results
        .as_ref()
        .and_then(|r| r.run.client_ops)
        .map_or(0, |c| c.ok + c.fail + c.info);
    let detection = match (&run_dir, &results) {
        (Some(d), Some(r)) if verdict == "invalid" => first_evidence(d, r),
        _ => None,
    };
    let reason = results.as_ref().and_then(|r| {
        r.harness_failure.clone().or_else(|| {
            r.decided_by.as_ref().map(|d| match &d.reason {
                Some(why) => format!("{}: {why}", d.rule),
                None => d.rule.clone(),
            })
        })
    });
    ChildOutcome {
        verdict,
        run_dir,
        seconds,
        ops,
        detection,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zoo whose binary was rebuilt under it went on starting runs with
    /// the `(deleted)` path, which does not exist.
    #[test]
    fn a_replaced_executable_is_run_from_its_path() {
        assert_eq!(
            without_deleted_mark(PathBuf::from("/t/release/dcf-harness (deleted)")),
            PathBuf::from("/t/release/dcf-harness")
        );
        assert_eq!(
            without_deleted_mark(PathBuf::from("/t/dcf-harness")),
            PathBuf::from("/t/dcf-harness")
        );
    }

    #[test]
    fn reads_the_verdict_line_and_survives_its_absence() {
        let o = outcome("report: x\ninvalid /nowhere/run/results.json\n", 3.0);
        assert_eq!(o.verdict, "invalid");
        assert_eq!(o.run_dir, Some(PathBuf::from("/nowhere/run")));
        assert_eq!(o.validity(), Some(Validity::Invalid));
        let o = outcome("harness-failure /nowhere/run2\n", 1.0);
        assert_eq!(o.validity(), None);
        assert_eq!(o.run_dir, Some(PathBuf::from("/nowhere/run2")));
        let o = outcome("thread 'main' panicked\n", 1.0);
        assert_eq!(o.verdict, "harness-failure");
        assert!(o.reason.unwrap().contains("panicked"));
    }
}
