//! `dcf-harness campaign` end to end: real `dcf-harness test` runs of a
//! tiny campaign file, the exit statuses, the summary files (the JUnit
//! file parsed back, the page opened in headless Chromium), the budget,
//! a bad file, and Ctrl-C in the middle of a run.
//!
//! Each run is a few seconds of a 3-node cluster; the whole file takes
//! about 30 s on a loaded 2-core machine.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn campaign(file: &Path, store: &Path, extra: &[&str]) -> Output {
    common::node_binary();
    Command::new(common::HARNESS)
        .arg("campaign")
        .arg(file)
        .arg("--store")
        .arg(store)
        .args(extra)
        .output()
        .expect("run dcf-harness campaign")
}

/// The one `campaign-*` folder in the store.
fn campaign_dir(store: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("campaign-")
        })
        .collect();
    assert_eq!(dirs.len(), 1, "one campaign folder: {dirs:?}");
    dirs[0].clone()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// Two tiny runs of the correct node: one expected valid, one expected
/// invalid (it cannot meet that), so the campaign exits 3 and the JUnit
/// file holds one failure naming the verdict, the expectation and the report.
#[test]
fn a_run_that_misses_its_expected_verdict_fails_the_campaign_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny.toml");
    std::fs::write(
        &file,
        r#"
[[campaign]]
name = "tiny-valid"
nemesis = "none"
nodes = 3
time_limit = 8
options = ["--rate", "50"]

[[campaign]]
name = "tiny-expects-invalid"
nemesis = "none"
nodes = 3
time_limit = 8
options = ["--rate", "50"]
expected = "invalid"
"#,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let out = campaign(&file, &store, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(3), "unmet expectation exits 3");
    assert!(
        stdout.contains("[1/2] tiny-valid#1 … valid (expected valid)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[2/2] tiny-expects-invalid#1 … valid (expected invalid)"),
        "{stdout}"
    );

    let dir = campaign_dir(&store);
    let s = summary(&dir);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["verdict"].as_str(), runs[0]["met"].as_bool()),
        (Some("valid"), Some(true))
    );
    assert_eq!(
        (runs[1]["verdict"].as_str(), runs[1]["met"].as_bool()),
        (Some("valid"), Some(false))
    );
    for r in runs {
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        let run_dir = PathBuf::from(r["run_dir"].as_str().unwrap());
        let results: Value =
            serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(
            results["valid"], true,
            "the verdict comes from results.json"
        );
        assert!(run_dir.join("report.html").is_file());
        let test: Value =
            serde_json::from_slice(&std::fs::read(run_dir.join("test.json")).unwrap()).unwrap();
        assert_eq!(test["seed"], r["seed"], "the recorded seed is the run's");
    }

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml parses");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 2, "one testcase per run");
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].parent().unwrap().attribute("name"),
        Some("tiny-expects-invalid#1")
    );
    let text = failures[0].text().unwrap();
    let report = PathBuf::from(runs[1]["run_dir"].as_str().unwrap()).join("report.html");
    for want in [
        "verdict: valid".to_string(),
        "expected: invalid".to_string(),
        "first anomaly: none".to_string(),
        format!("report: {}", report.display()),
    ] {
        assert!(text.contains(&want), "failure text lacks {want:?}: {text}");
    }

    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    let first_row = html.lines().find(|l| l.starts_with("<tr class=")).unwrap();
    assert!(
        first_row.contains("tiny-expects-invalid#1"),
        "failures first: {first_row}"
    );
    open_in_chromium(&dir.join("summary.html"), 2);
}

/// A budget too small for any run skips them all (exit 0, every testcase
/// skipped); a bad file is a usage error that creates nothing.
#[test]
fn budget_skips_and_bad_files_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        "[[campaign]]\nname = \"long\"\ntime_limit = 600\nrepetitions = 2\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    let out = campaign(&file, &store, &["--budget", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[1/2] long#1 skipped: budget"), "{stdout}");
    let dir = campaign_dir(&store);
    let s = summary(&dir);
    assert!(s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["verdict"] == "skipped" && r["note"].as_str().unwrap().contains("budget")));
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("skipped"))
            .count(),
        2
    );

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[campaign]]\nname = \"x\"\nnemesis = \"fire\"\n").unwrap();
    let store2 = tmp.path().join("store2");
    let out = campaign(&bad, &store2, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("campaign \"x\"") && stderr.contains("key \"nemesis\""),
        "{stderr}"
    );
    assert!(!store2.exists(), "a bad file creates nothing");
}

/// Ctrl-C in the middle of a run stops it (its nodes are gone), and the
/// summary still lists what ran; the campaign exits 130.
#[test]
fn interrupt_stops_the_run_cleanly_and_writes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        "[[campaign]]\nname = \"interrupted\"\nnemesis = \"none\"\nnodes = 3\ntime_limit = 120\n\
         options = [\"--rate\", \"50\"]\n\
         [[campaign]]\nname = \"never\"\nnemesis = \"none\"\nnodes = 3\ntime_limit = 8\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    common::node_binary();
    let child = Command::new(common::HARNESS)
        .arg("campaign")
        .arg(&file)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run's workload is going (its history has operations).
    let t0 = Instant::now();
    let history = loop {
        let found = std::fs::read_dir(store.join("interrupted"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("history.jsonl"))
            .filter(|h| std::fs::metadata(h).is_ok_and(|m| m.len() > 0));
        if let Some(h) = found {
            break h;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        t0.elapsed() < Duration::from_secs(110),
        "the 120 s run was not cut short"
    );
    let run_dir = history.parent().unwrap();
    let results: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["interrupted"], true);
    let s = summary(&campaign_dir(&store));
    assert_eq!(s["interrupted"], true);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0]["note"].as_str().unwrap().contains("interrupted"));
    assert_eq!(runs[1]["verdict"], "skipped");
    assert!(runs[1]["note"].as_str().unwrap().contains("interrupted"));
    // The run's nodes are gone.
    let tag = results["deployment"]["tag"].as_str().unwrap_or("");
    let ps = Command::new("pgrep")
        .args(["-af", "dcf-node"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !left.contains(&run_dir.display().to_string()) && (tag.is_empty() || !left.contains(tag)),
        "nodes left running: {left}"
    );
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    None
}

/// Loads the page in headless Chromium: no console error, and the table
/// has `rows` rows in the rendered DOM.
fn open_in_chromium(page: &Path, rows: usize) {
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI is set (.ci/install installs it)");
        }
        eprintln!("SKIPPED the summary page in Chromium: chromium is not installed");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(dom.contains("id=\"runs\""), "no table in the DOM: {dom}");
    assert_eq!(
        dom.matches("<tr class=").count(),
        rows,
        "rows in the DOM: {dom}"
    );
}
