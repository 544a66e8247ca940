//! `dcf-harness zoo`: runs every planted bug of `dcf-node` with the run
//! that exposes it (its recipe, declared next to the bug in
//! [`dcf::planted`]) over several seeds, plus the correct node as a
//! control, and says as numbers which bugs the harness catches and how
//! fast: caught k/N and the median time from a run's start to the first
//! operation its verdict blames ([`crate::detect`]).

use crate::child_run::{self, ChildOutcome};
use crate::exit;
use crate::zoo_page;
use checker::Validity;
use clap::Args;
use dcf::planted::PlantedBug;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Options of `dcf-harness zoo`.
#[derive(Debug, Clone, Args)]
pub struct ZooArgs {
    /// Seeds per planted bug (and for the control).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// The first seed; the runs use seeds FIRST..FIRST+SEEDS.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Seconds of workload per run (set-up, checking and teardown come on
    /// top).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub time_limit: u64,
    /// Only these planted bugs (repeatable; default: every one).
    #[arg(long = "bug", value_name = "NAME", value_parser = crate::cli::planted_bug)]
    pub bugs: Vec<PlantedBug>,
    /// Leave out the control runs of the correct node.
    #[arg(long)]
    pub no_control: bool,
    /// Runs at the same time (each is its own cluster; on a 2-core
    /// machine more than 2 slows the nodes enough to change timings).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub jobs: u64,
    /// Where runs and the zoo's summary are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
}

/// What one entry of the zoo runs: a planted bug, or the correct node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZooRun {
    /// The planted bug's name, or `control`.
    pub entry: String,
    pub seed: u64,
    /// The `dcf-harness test` options (recipe, seed, time limit, bug).
    pub args: Vec<String>,
    /// What the run ended with (absent: not run, e.g. interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ChildOutcome>,
}

/// One line of the zoo's table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZooLine {
    /// The planted bug's name, or `control`.
    pub entry: String,
    /// The rule the bug breaks (for the control: what it checks).
    pub rule: String,
    /// Seeds whose run ended as expected (invalid for a bug, valid for
    /// the control).
    pub met: u64,
    /// Seeds run.
    pub runs: u64,
    /// Median seconds from the start to the first blamed operation, over
    /// the catching runs that have one.
    pub median_detect_s: Option<f64>,
    /// The faults and workload used.
    pub recipe: String,
    /// Why the recipe exposes the bug.
    pub why: String,
    /// What today's faults cannot do for this bug, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitation: Option<String>,
}

/// `zoo.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZooSummary {
    pub seeds: u64,
    pub first_seed: u64,
    pub time_limit: u64,
    /// Whether every bug was caught in every seed and every control run
    /// was valid (bugs whose recipe states a limitation excepted).
    pub passed: bool,
    /// Whether Ctrl-C ended the zoo before every run was done.
    pub interrupted: bool,
    pub lines: Vec<ZooLine>,
    pub runs: Vec<ZooRun>,
    /// The machine's core count (timings depend on it).
    pub cores: usize,
}

/// The control's name in the table.
pub const CONTROL: &str = "control";

/// The runs of the zoo, bugs first (in their registry order), then the
/// controls. The control of seed `i` runs the recipe of the `i`-th bug
/// (cycling) without the bug, so the controls cover the recipes' faults.
pub fn plan(args: &ZooArgs) -> Vec<ZooRun> {
    let bugs = chosen_bugs(args);
    let seeds = args.first_seed..args.first_seed + args.seeds;
    let mut runs = Vec::new();
    for bug in &bugs {
        for seed in seeds.clone() {
            let mut a = recipe_args(*bug, seed, args.time_limit);
            a.extend(["--planted-bug".into(), bug.name().into()]);
            // A caught bug ends its run: the zoo costs what detection costs.
            a.push("--stop-on-invalid".into());
            a.extend(["--name".into(), format!("zoo-{}", bug.name())]);
            runs.push(ZooRun {
                entry: bug.name().into(),
                seed,
                args: a,
                outcome: None,
            });
        }
    }
    if !args.no_control && !bugs.is_empty() {
        for (i, seed) in seeds.enumerate() {
            let bug = bugs[i % bugs.len()];
            let mut a = recipe_args(bug, seed, args.time_limit);
            a.extend(["--name".into(), format!("zoo-control-{}", bug.name())]);
            runs.push(ZooRun {
                entry: CONTROL.into(),
                seed,
                args: a,
                outcome: None,
            });
        }
    }
    runs
}

fn chosen_bugs(args: &ZooArgs) -> Vec<PlantedBug> {
    PlantedBug::ALL
        .into_iter()
        .filter(|b| args.bugs.is_empty() || args.bugs.contains(b))
        .collect()
}

fn recipe_args(bug: PlantedBug, seed: u64, time_limit: u64) -> Vec<String> {
    let mut a: Vec<String> = bug
        .zoo_recipe()
        .args
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend([
        "--seed".into(),
        seed.to_string(),
        "--time-limit".into(),
        time_limit.to_string(),
    ]);
    a
}

/// Set by SIGINT/SIGTERM: start no further run, end the running ones.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Runs the zoo and prints its table; the exit status is 0 only when
/// every bug was caught in every seed and every control run was valid
/// (misses of a bug whose recipe states a limitation excepted).
pub fn run(args: &ZooArgs) -> i32 {
    match run_inner(args) {
        Ok(summary) if summary.passed => exit::VALID,
        Ok(_) => exit::INVALID,
        Err(e) => {
            eprintln!("dcf-harness zoo: {e:#}");
            exit::HARNESS_FAILURE
        }
    }
}

fn run_inner(args: &ZooArgs) -> anyhow::Result<ZooSummary> {
    use anyhow::Context;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let dir = args
        .store
        .join(format!("zoo-{}", crate::store::timestamp()));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let runs = plan(args);
    let total = runs.len();
    eprintln!(
        "dcf-harness zoo: {} planted bug(s){} × {} seed(s), {} s each, {} at a time → {}",
        chosen_bugs(args).len(),
        if args.no_control { "" } else { " + control" },
        args.seeds,
        args.time_limit,
        args.jobs,
        dir.display()
    );
    let queue = Arc::new(Mutex::new(runs.into_iter().enumerate().collect::<Vec<_>>()));
    queue.lock().unwrap().reverse();
    let done: Arc<Mutex<Vec<(usize, ZooRun)>>> = Arc::new(Mutex::new(Vec::new()));
    let store = args.store.clone();
    let exe = child_run::harness_exe().context("finding the dcf-harness executable")?;
    let workers: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (queue, done, logs, store, exe) = (
                queue.clone(),
                done.clone(),
                logs.clone(),
                store.clone(),
                exe.clone(),
            );
            std::thread::spawn(move || loop {
                if STOP.load(Ordering::SeqCst) {
                    return;
                }
                let Some((i, mut run)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let log = logs.join(format!("{:03}-{}-{}.log", i, run.entry, run.seed));
                let mut a = run.args.clone();
                a.extend(["--store".into(), store.display().to_string()]);
                let started = Instant::now();
                let outcome = match child_run::spawn(&exe, &a, &log) {
                    Ok(child) => child_run::wait(child, &log, started, &STOP),
                    Err(e) => failed_to_start(&e),
                };
                let mut d = done.lock().unwrap();
                eprintln!(
                    "[{}/{total}] {}",
                    d.len() + 1,
                    progress_line(&run, &outcome)
                );
                run.outcome = Some(outcome);
                d.push((i, run));
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut finished = std::mem::take(&mut *done.lock().unwrap());
    let mut left: Vec<(usize, ZooRun)> = std::mem::take(&mut *queue.lock().unwrap());
    finished.append(&mut left);
    finished.sort_by_key(|(i, _)| *i);
    let runs: Vec<ZooRun> = finished.into_iter().map(|(_, r)| r).collect();
    let summary = summarize(args, runs, STOP.load(Ordering::SeqCst));
    print_table(&summary);
    reports::run_folder::write(&dir.join("zoo.json"), &summary)?;
    let page = dir.join("zoo.html");
    std::fs::write(&page, zoo_page::render(&summary, &dir))
        .with_context(|| format!("writing {}", page.display()))?;
    let latest = args.store.join("zoo-latest");
    let _ = std::fs::remove_file(&latest);
    if let Some(name) = dir.file_name() {
        let _ = std::os::unix::fs::symlink(name, &latest);
    }
    println!("zoo: {}", page.display());
    Ok(summary)
}

fn failed_to_start(e: &std::io::Error) -> ChildOutcome {
    ChildOutcome {
        verdict: "harness-failure".into(),
        run_dir: None,
        seconds: 0.0,
        ops: 0,
        detection: None,
        reason: Some(format!("could not start dcf-harness test: {e}")),
    }
}

fn progress_line(run: &ZooRun, o: &ChildOutcome) -> String {
    let detected = o.detection.as_ref().map_or(String::new(), |d| {
        format!(
            ", detected at {:.1} s ({})",
            d.at_ms as f64 / 1000.0,
            d.what
        )
    });
    format!(
        "{} seed {}: {} after {:.0} s, {} ops{detected}",
        run.entry, run.seed, o.verdict, o.seconds, o.ops
    )
}

/// Whether a run ended as its entry expects.
fn met(run: &ZooRun) -> bool {
    let expected = if run.entry == CONTROL {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    run.outcome.as_ref().and_then(ChildOutcome::validity) == Some(expected)
}

/// The table from the runs.
pub fn summarize(args: &ZooArgs, runs: Vec<ZooRun>, interrupted: bool) -> ZooSummary {
    let mut lines = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    for r in &runs {
        if !entries.contains(&r.entry) {
            entries.push(r.entry.clone());
        }
    }
    for entry in entries {
        let mine: Vec<&ZooRun> = runs.iter().filter(|r| r.entry == entry).collect();
        let bug: Option<PlantedBug> = entry.parse().ok();
        let mut detect: Vec<f64> = mine
            .iter()
            .filter(|r| met(r))
            .filter_map(|r| r.outcome.as_ref()?.detection.as_ref())
            .map(|d| d.at_ms as f64 / 1000.0)
            .collect();
        detect.sort_by(f64::total_cmp);
        let recipe = match bug {
            Some(b) => b.zoo_recipe().args.join(" "),
            None => "each bug's recipe in turn, on the correct node".into(),
        };
        lines.push(ZooLine {
            rule: bug.map_or("the correct node stays valid".into(), |b| b.rule().into()),
            met: mine.iter().filter(|r| met(r)).count() as u64,
            runs: mine.len() as u64,
            median_detect_s: median(&detect),
            recipe,
            why: bug.map_or(String::new(), |b| b.zoo_recipe().why.into()),
            limitation: bug.and_then(|b| b.zoo_recipe().limitation.map(str::to_string)),
            entry,
        });
    }
    // A bug whose recipe states a limitation is run and reported, but its
    // misses are known and do not fail the zoo; a catch still counts.
    let required = |r: &&ZooRun| {
        r.entry
            .parse::<PlantedBug>()
            .map_or(true, |b| b.zoo_recipe().limitation.is_none())
    };
    let passed = !interrupted && !runs.is_empty() && runs.iter().filter(required).all(met);
    ZooSummary {
        seeds: args.seeds,
        first_seed: args.first_seed,
        time_limit: args.time_limit,
        passed,
        interrupted,
        lines,
        runs,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn print_table(s: &ZooSummary) {
    println!(
        "{:<28} {:>8} {:>14}  faults",
        "planted bug", "caught", "median detect"
    );
    for l in &s.lines {
        let what = if l.entry == CONTROL {
            "valid"
        } else {
            "caught"
        };
        let detect = l
            .median_detect_s
            .map_or("-".to_string(), |d| format!("{d:.1} s"));
        println!(
            "{:<28} {:>8} {:>14}  {}",
            l.entry,
            format!("{}/{}", l.met, l.runs),
            detect,
            l.recipe
        );
        if l.met < l.runs {
            println!("{:<28} {what} in only {} of {} seeds", "", l.met, l.runs);
        }
        if let Some(lim) = &l.limitation {
            println!("{:<28} limitation (misses do not fail the zoo): {lim}", "");
        }
    }
    println!(
        "zoo {} ({} core(s), {} s per run{})",
        if s.passed { "passed" } else { "FAILED" },
        s.cores,
        s.time_limit,
        if s.interrupted { ", interrupted" } else { "" }
    );
}

/// A run folder's report, relative to `from` when it can be.
pub fn report_link(run_dir: &Path, from: &Path) -> String {
    let report = run_dir.join("report.html");
    let (Ok(abs_run), Ok(abs_from)) = (report.canonicalize(), from.canonicalize()) else {
        return report.display().to_string();
    };
    let (mut a, mut b) = (
        abs_run.components().peekable(),
        abs_from.components().peekable(),
    );
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        if x != y {
            break;
        }
        a.next();
        b.next();
    }
    let ups = b.count();
    let rest: PathBuf = a.collect();
    let mut rel = PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    rel.push(rest);
    rel.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        zoo: ZooArgs,
    }

    fn args(line: &str) -> ZooArgs {
        Cli::try_parse_from(std::iter::once("zoo").chain(line.split_whitespace()))
            .unwrap()
            .zoo
    }

    #[test]
    fn plans_every_bug_per_seed_and_controls_cycling_through_recipes() {
        let a = args("--seeds 2 --time-limit 30");
        let runs = plan(&a);
        let bugs = PlantedBug::ALL.len();
        assert_eq!(runs.len(), bugs * 2 + 2);
        let first = &runs[0];
        assert_eq!(first.entry, PlantedBug::ALL[0].name());
        assert!(first
            .args
            .windows(2)
            .any(|w| w == ["--planted-bug", first.entry.as_str()]));
        assert!(first.args.windows(2).any(|w| w == ["--time-limit", "30"]));
        assert!(first.args.contains(&"--stop-on-invalid".to_string()));
        let controls: Vec<&ZooRun> = runs.iter().filter(|r| r.entry == CONTROL).collect();
        assert_eq!(controls.len(), 2);
        assert!(controls
            .iter()
            .all(|r| !r.args.contains(&"--planted-bug".to_string())));
        assert_ne!(
            controls[0].args, controls[1].args,
            "controls use different recipes"
        );
        let one = plan(&args(
            "--bug read-lease --seeds 3 --no-control --first-seed 7",
        ));
        assert_eq!(one.iter().map(|r| r.seed).collect::<Vec<_>>(), [7, 8, 9]);
        assert!(one.iter().all(|r| r.entry == "read-lease"));
    }

    fn done(entry: &str, seed: u64, verdict: &str, at_ms: Option<u64>) -> ZooRun {
        ZooRun {
            entry: entry.into(),
            seed,
            args: vec![],
            outcome: Some(ChildOutcome {
                verdict: verdict.into(),
                run_dir: None,
                seconds: 40.0,
                ops: 1000,
                detection: at_ms.map(|at_ms| crate::detect::Detection {
                    at_ms,
                    what: "read".into(),
                }),
                reason: None,
            }),
        }
    }

    #[test]
    fn the_zoo_passes_only_when_every_bug_is_caught_and_controls_stay_valid() {
        let a = args("--seeds 2");
        let runs = vec![
            done("read-lease", 1, "invalid", Some(10_000)),
            done("read-lease", 2, "invalid", Some(30_000)),
            done(CONTROL, 1, "valid", None),
            done(CONTROL, 2, "valid", None),
        ];
        let s = summarize(&a, runs.clone(), false);
        assert!(s.passed);
        assert_eq!(s.lines[0].met, 2);
        assert_eq!(s.lines[0].median_detect_s, Some(20.0));
        assert_eq!(s.lines[1].entry, CONTROL);
        assert!(!summarize(&a, runs.clone(), true).passed, "interrupted");
        let mut missed = runs.clone();
        missed[1] = done("read-lease", 2, "valid", None);
        let s = summarize(&a, missed, false);
        assert!(!s.passed);
        assert_eq!(
            (s.lines[0].met, s.lines[0].median_detect_s),
            (1, Some(10.0))
        );
        let mut bad_control = runs;
        bad_control[3] = done(CONTROL, 2, "unknown", None);
        assert!(!summarize(&a, bad_control, false).passed);
    }

    #[test]
    fn report_links_are_relative_to_the_page() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("zoo-x/20260101T000000.000Z");
        let page = d.path().join("zoo-20260101");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&page).unwrap();
        std::fs::write(run.join("report.html"), "x").unwrap();
        assert_eq!(
            report_link(&run, &page),
            "../zoo-x/20260101T000000.000Z/report.html"
        );
    }
}
