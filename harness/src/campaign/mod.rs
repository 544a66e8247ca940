//! `dcf-harness campaign FILE`: runs the campaigns of a TOML file (see
//! [`plan`]) one run at a time within an optional budget, and writes
//! `STORE/campaign-<timestamp>/` with `summary.json`, `summary.html` and
//! `junit.xml` (see [`summary`]).
//!
//! Each run is `dcf-harness test` in a child process (this executable), so
//! a run goes through exactly the code path of a single test, a crash of
//! one run cannot take the campaign down, and every run cleans up after
//! itself as a test does. The verdict is read back from the run folder's
//! `results.json`. Repetitions are interleaved (every campaign's first
//! run, then every second run, ...) so that a budget cuts repetitions
//! rather than whole campaigns.

pub mod plan;
pub mod summary;

use crate::exit;
use checker::Validity;
use plan::{Campaign, Plan};
use reports::run_folder::{self, ResultsFile};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use summary::{RunRecord, Summary};

/// Seconds a run takes beyond its time limit (deploy, heal, final reads,
/// check, report) until a run of the campaign has shown more.
pub const DEFAULT_MARGIN_S: u64 = 30;

/// Options of `dcf-harness campaign`.
#[derive(clap::Args, Debug, Clone)]
pub struct CampaignArgs {
    /// The campaign file (TOML: [[campaign]] tables and an optional [zoo]).
    pub file: PathBuf,
    /// Minutes the whole campaign may take: a run that cannot finish within
    /// them (its time limit plus the margin) is skipped and reported.
    #[arg(long, value_name = "MINUTES", value_parser = positive_minutes)]
    pub budget: Option<f64>,
    /// Where runs and the campaign folder are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Print the runs and their command lines without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a run is assumed to take beyond its time limit, for the
    /// budget: the least; runs that took longer raise it (see `Margins`).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MARGIN_S)]
    pub margin: u64,
}

/// `--budget`: a positive number of minutes.
fn positive_minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m.is_finite() && m > 0.0 => Ok(m),
        _ => Err("expected a positive number of minutes".into()),
    }
}

/// The exit status of a finished campaign (see [`crate::exit`]).
pub fn exit_status(s: &Summary) -> i32 {
    if s.interrupted {
        exit::INTERRUPTED
    } else if s.unmet() > 0 {
        exit::CAMPAIGN_UNMET
    } else {
        exit::VALID
    }
}

/// One run to do: a campaign and a repetition.
struct Planned<'a> {
    campaign: &'a Campaign,
    repetition: u32,
    seed: u64,
}

/// The runs in order: repetition 1 of every campaign, then repetition 2, ...
fn order(plan: &Plan) -> Vec<Planned<'_>> {
    let most = plan
        .campaigns
        .iter()
        .map(|c| c.repetitions)
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for rep in 1..=most {
        for c in plan.campaigns.iter().filter(|c| rep <= c.repetitions) {
            out.push(Planned {
                campaign: c,
                repetition: rep,
                seed: c.seed_of(rep).unwrap_or_else(rand::random),
            });
        }
    }
    out
}

fn command_line(store: &Path, p: &Planned<'_>) -> Vec<String> {
    let mut v = vec![
        "test".to_string(),
        "--store".into(),
        store.display().to_string(),
        "--name".into(),
        p.campaign.name.clone(),
        "--seed".into(),
        p.seed.to_string(),
    ];
    v.extend(p.campaign.args.iter().cloned());
    v
}

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM only set [`INTERRUPTED`]: the campaign stops its
/// current run through the run's own interrupt handling and still writes
/// its summary.
fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// How long a run takes beyond its time limit, for the budget: the
/// largest overhead a run of the same campaign showed, else the median
/// overhead of the runs so far (one slow teardown does not starve every
/// later run), never less than the `--margin` option.
struct Margins {
    floor: Duration,
    by_campaign: std::collections::HashMap<String, Duration>,
    all: Vec<Duration>,
}

impl Margins {
    fn new(floor: Duration) -> Margins {
        Margins {
            floor,
            by_campaign: Default::default(),
            all: Vec::new(),
        }
    }

    fn of(&self, campaign: &str) -> Duration {
        if let Some(d) = self.by_campaign.get(campaign) {
            return (*d + *d / 10).max(self.floor);
        }
        let mut all = self.all.clone();
        all.sort();
        all.get(all.len() / 2)
            .map_or(self.floor, |m| (*m).max(self.floor))
    }

    fn saw(&mut self, campaign: &str, overhead: Duration) {
        let e = self.by_campaign.entry(campaign.to_string()).or_default();
        *e = (*e).max(overhead);
        self.all.push(overhead);
    }
}

/// Runs `dcf-harness campaign`; returns the exit status.
pub fn run(args: &CampaignArgs) -> i32 {
    let plan = match plan::load(&args.file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let runs = order(&plan);
    let budget = args.budget.map(|m| Duration::from_secs_f64(m * 60.0));
    if args.dry_run {
        return dry_run(args, &runs, budget);
    }
    let exe = match crate::child_run::harness_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dcf-harness campaign: cannot find this executable: {e}");
            return exit::HARNESS_FAILURE;
        }
    };
    let started = crate::store::timestamp();
    let dir = args.store.join(format!("campaign-{started}"));
    if let Err(e) = std::fs::create_dir_all(dir.join("logs")) {
        eprintln!("dcf-harness campaign: cannot create {}: {e}", dir.display());
        return exit::HARNESS_FAILURE;
    }
    catch_signals();
    eprintln!(
        "campaign {}: {} runs{}; writing {}",
        plan.name,
        runs.len(),
        budget.map_or(String::new(), |b| format!(
            " within {:.0} min",
            b.as_secs_f64() / 60.0
        )),
        dir.display()
    );
    let t0 = Instant::now();
    let mut margins = Margins::new(Duration::from_secs(args.margin));
    let mut summary = Summary {
        name: plan.name.clone(),
        file: args.file.clone(),
        started,
        budget_min: args.budget,
        duration_s: 0.0,
        interrupted: false,
        runs: Vec::new(),
    };
    let total = runs.len();
    for (i, p) in runs.iter().enumerate() {
        let cmd = command_line(&args.store, p);
        let mut record = RunRecord {
            campaign: p.campaign.name.clone(),
            repetition: p.repetition,
            seed: p.seed,
            verdict: "skipped".into(),
            expected: p.campaign.expected.as_str().into(),
            met: None,
            duration_s: 0.0,
            time_limit_s: p.campaign.time_limit,
            ops: 0,
            faults: p.campaign.faults.clone(),
            fault_events: 0,
            planted_bug: p.campaign.planted_bug.map(|b| b.name().to_string()),
            first_anomaly: None,
            run_dir: None,
            note: None,
            command: std::iter::once("dcf-harness".to_string())
                .chain(cmd.iter().cloned())
                .collect(),
        };
        let prefix = format!("[{}/{total}] {}#{}", i + 1, p.campaign.name, p.repetition);
        let margin = margins.of(&p.campaign.name);
        let need = Duration::from_secs(p.campaign.time_limit) + margin;
        let skip = if INTERRUPTED.load(Ordering::SeqCst) {
            Some("the campaign was interrupted before this run".to_string())
        } else {
            budget.and_then(|b| {
                let left = b.saturating_sub(t0.elapsed());
                (need > left).then(|| {
                    format!(
                        "budget: needs about {} s ({} s time limit + {} s margin), {} s left",
                        need.as_secs(),
                        p.campaign.time_limit,
                        margin.as_secs(),
                        left.as_secs()
                    )
                })
            })
        };
        if let Some(why) = skip {
            println!("{prefix} skipped: {why}");
            record.note = Some(why);
            summary.runs.push(record);
            continue;
        }
        print!("{prefix} … ");
        let _ = std::io::stdout().flush();
        let logs = dir
            .join("logs")
            .join(format!("{}#{}", p.campaign.name, p.repetition));
        let started_run = Instant::now();
        let outcome = run_child(&exe, &cmd, &logs);
        let took = started_run.elapsed();
        record.duration_s = took.as_secs_f64();
        fill(&mut record, outcome, &logs, p.campaign);
        println!(
            "{} (expected {}) {:.0} s{}",
            record.verdict,
            record.expected,
            record.duration_s,
            match (&record.met, &record.run_dir) {
                (Some(false), Some(d)) => format!("  NOT MET: {}", d.join("report.html").display()),
                (Some(false), None) => "  NOT MET".into(),
                _ => String::new(),
            }
        );
        margins.saw(
            &p.campaign.name,
            took.saturating_sub(Duration::from_secs(p.campaign.time_limit)),
        );
        summary.runs.push(record);
        summary.duration_s = t0.elapsed().as_secs_f64();
        // Written after every run, so a killed campaign leaves what ran.
        let _ = summary.write(&dir);
    }
    summary.interrupted = INTERRUPTED.load(Ordering::SeqCst);
    summary.duration_s = t0.elapsed().as_secs_f64();
    if let Err(e) = summary.write(&dir) {
        eprintln!(
            "dcf-harness campaign: cannot write the summary in {}: {e}",
            dir.display()
        );
        return exit::HARNESS_FAILURE;
    }
    let ran = summary.ran().count();
    println!(
        "campaign {}: {ran} ran, {} did not meet the expected verdict, {} skipped{}",
        plan.name,
        summary.unmet(),
        summary.skipped(),
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if ran == 0 {
        eprintln!("dcf-harness campaign: warning: no run fitted in the budget");
    }
    println!("{}", dir.join(summary::SUMMARY_HTML).display());
    println!("{}", dir.join(summary::JUNIT_XML).display());
    exit_status(&summary)
}

fn dry_run(args: &CampaignArgs, runs: &[Planned<'_>], budget: Option<Duration>) -> i32 {
    let mut at = Duration::ZERO;
    let margin = Duration::from_secs(args.margin);
    for (i, p) in runs.iter().enumerate() {
        let need = Duration::from_secs(p.campaign.time_limit) + margin;
        let fits = budget.is_none_or(|b| at + need <= b);
        if fits {
            at += need;
        }
        println!(
            "[{}/{}] {}#{} expected {}{}: dcf-harness {}",
            i + 1,
            runs.len(),
            p.campaign.name,
            p.repetition,
            p.campaign.expected,
            if fits { "" } else { " (would be skipped)" },
            command_line(&args.store, p).join(" ")
        );
    }
    println!("about {} min", at.as_secs().div_ceil(60));
    exit::VALID
}

/// How a child run ended.
struct ChildOutcome {
    code: Option<i32>,
    /// What the child printed on stdout (`VERDICT PATH/results.json` or
    /// `harness-failure PATH`).
    stdout: String,
}

/// Runs `dcf-harness test` as a child, its output in `logs.out` and
/// `logs.log`; forwards an interrupt to it once and waits for it to clean
/// up.
fn run_child(exe: &Path, cmd: &[String], logs: &Path) -> Result<ChildOutcome, String> {
    let out_path = logs.with_extension("out");
    let err_path = logs.with_extension("log");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child: Child = Command::new(exe)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let mut forwarded = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the run: {e}")),
        }
        if !forwarded && INTERRUPTED.load(Ordering::SeqCst) {
            forwarded = true;
            // The run heals, tears down and writes its results on SIGINT.
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(ChildOutcome {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
    })
}

/// The run folder a `dcf-harness test` printed.
fn run_dir_of(stdout: &str) -> Option<PathBuf> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty())?;
    let (word, path) = line.split_once(' ')?;
    let path = PathBuf::from(path.trim());
    match word {
        "valid" | "invalid" | "unknown" => path.parent().map(Path::to_path_buf),
        "harness-failure" => Some(path),
        _ => None,
    }
}

/// Fills a record from the run's `results.json`.
fn fill(
    record: &mut RunRecord,
    outcome: Result<ChildOutcome, String>,
    logs: &Path,
    campaign: &Campaign,
) {
    let logs_note = format!("output in {}", logs.with_extension("log").display());
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            record.verdict = "harness-failure".into();
            record.met = Some(false);
            record.note = Some(e);
            return;
        }
    };
    record.run_dir = run_dir_of(&outcome.stdout);
    let results: Option<ResultsFile> = record.run_dir.as_ref().and_then(|d| {
        run_folder::read(&d.join(run_folder::RESULTS_FILE))
            .ok()
            .flatten()
    });
    let Some(results) = results else {
        record.verdict = "harness-failure".into();
        record.met = Some(false);
        record.note = Some(format!(
            "no results.json (exit status {}); {logs_note}",
            outcome.code.map_or("none".into(), |c| c.to_string())
        ));
        return;
    };
    match (results.valid, &results.harness_failure) {
        (Some(v), None) => {
            record.verdict = v.as_str().into();
            record.met = Some(campaign.expected.met_by(v));
        }
        (_, failure) => {
            record.verdict = "harness-failure".into();
            record.met = Some(false);
            record.note = Some(format!(
                "{}; {logs_note}",
                failure.as_deref().unwrap_or("no verdict")
            ));
        }
    }
    record.first_anomaly = first_anomaly(&results);
    record.ops = results.run.client_ops.map_or_else(
        || {
            results
                .op_counts
                .values()
                .map(|c| c.ok + c.fail + c.info)
                .sum()
        },
        |c| c.ok + c.fail + c.info,
    );
    record.fault_events = results.nemesis_ops.unwrap_or(0);
    if results.run.interrupted == Some(true) {
        let note = "interrupted: the run ended early".to_string();
        record.note = Some(match record.note.take() {
            Some(n) => format!("{note}; {n}"),
            None => note,
        });
    }
}

/// What a non-valid run's checker or deciding rule blamed first.
pub fn first_anomaly(r: &ResultsFile) -> Option<String> {
    if r.valid? == Validity::Valid {
        return None;
    }
    if let Some(d) = &r.decided_by {
        if d.rule != "checker" {
            return Some(match &d.reason {
                Some(why) => format!("{}: {why}", d.rule),
                None => d.rule.clone(),
            });
        }
    }
    if let Some(c) = &r.checker {
        if let Some(h) = reports::failure::headline(c) {
            return Some(h);
        }
        if let Some(u) = &c.unknown_reason {
            return Some(u.clone());
        }
    }
    r.decided_by
        .as_ref()
        .and_then(|d| d.reason.clone())
        .or_else(|| {
            r.health
                .iter()
                .find(|f| f.valid != Validity::Valid)
                .map(|f| format!("{}: {}", f.rule, f.reason))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_interleave_and_fixed_seeds_follow() {
        let plan = plan::parse(
            Path::new("t.toml"),
            "t",
            "[[campaign]]\nname = \"a\"\nrepetitions = 2\nseed = 5\n\
             [[campaign]]\nname = \"b\"\n",
        )
        .unwrap();
        let runs = order(&plan);
        let got: Vec<(String, u32)> = runs
            .iter()
            .map(|p| (p.campaign.name.clone(), p.repetition))
            .collect();
        assert_eq!(got, [("a".into(), 1), ("b".into(), 1), ("a".into(), 2)]);
        assert_eq!((runs[0].seed, runs[2].seed), (5, 6));
        let cmd = command_line(Path::new("st"), &runs[2]);
        assert_eq!(
            cmd[..7],
            ["test", "--store", "st", "--name", "a", "--seed", "6"]
        );
    }

    #[test]
    fn exit_status_is_zero_only_when_every_run_that_ran_met_its_expectation() {
        let mut s = Summary {
            name: "t".into(),
            file: "t.toml".into(),
            started: String::new(),
            budget_min: None,
            duration_s: 0.0,
            interrupted: false,
            runs: Vec::new(),
        };
        assert_eq!(exit_status(&s), 0);
        let mut run = summary::tests::record("a", 1, "valid", "valid");
        s.runs.push(run.clone());
        s.runs
            .push(summary::tests::record("a", 2, "skipped", "valid"));
        assert_eq!(exit_status(&s), 0, "skipped runs do not fail the campaign");
        run.met = Some(false);
        s.runs.push(run);
        assert_eq!(exit_status(&s), exit::CAMPAIGN_UNMET);
        s.interrupted = true;
        assert_eq!(exit_status(&s), exit::INTERRUPTED);
    }

    #[test]
    fn margins_follow_the_campaign_else_the_median() {
        let s = Duration::from_secs;
        let mut m = Margins::new(s(30));
        assert_eq!(m.of("a"), s(30));
        m.saw("a", s(5));
        m.saw("b", s(200));
        m.saw("c", s(40));
        assert_eq!(m.of("a"), s(30), "never below the floor");
        assert_eq!(m.of("b"), s(220), "a campaign's own overhead, plus 10 %");
        assert_eq!(m.of("new"), s(40), "the median of all, not the outlier");
    }

    #[test]
    fn the_run_folder_is_read_from_what_test_printed() {
        assert_eq!(
            run_dir_of("invalid store/a/20260101T000000.000Z/results.json\n"),
            Some(PathBuf::from("store/a/20260101T000000.000Z"))
        );
        assert_eq!(
            run_dir_of("harness-failure store/a/x\n"),
            Some(PathBuf::from("store/a/x"))
        );
        assert_eq!(run_dir_of(""), None);
    }

    #[test]
    fn first_anomaly_prefers_the_deciding_rule_then_the_checker() {
        let r: ResultsFile = serde_json::from_value(serde_json::json!({
            "valid": "unknown",
            "decided_by": {"rule": "no-recovery", "valid": "unknown", "reason": "no leader"},
        }))
        .unwrap();
        assert_eq!(first_anomaly(&r).as_deref(), Some("no-recovery: no leader"));
        let ok: ResultsFile = serde_json::from_value(serde_json::json!({"valid": true})).unwrap();
        assert_eq!(first_anomaly(&ok), None);
    }
}
