//! The store's `index.html`: every run, newest first, with its verdict
//! colour-coded and a link to its report.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use checker::Validity;

use crate::error::{write_atomic, ReportError};
use crate::html::escape;
use crate::run_folder::{self, ResultsFile, TestFile};
use crate::style::CSS;

/// What the index shows of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run folder relative to the store, `/`-separated.
    pub rel: String,
    /// The test's name.
    pub name: String,
    /// The run's timestamp (its folder name, `YYYYMMDDTHHMMSS.mmmZ`).
    pub time: String,
    /// Node count, if recorded.
    pub nodes: Option<u64>,
    /// Workload name.
    pub workload: String,
    /// Nemeses (and the explicit schedule, if any).
    pub nemesis: String,
    /// `valid`, `invalid`, `unknown`, `failure` or `unchecked`.
    pub verdict: &'static str,
    /// Time of the history's last event, ns.
    pub duration: Option<u64>,
    /// Whether `report.html` exists.
    pub has_report: bool,
}

/// A run file, or `None` when it is missing or unreadable: the index
/// lists every run, whatever state its files are in.
fn read_file<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    run_folder::read(p).ok().flatten()
}

/// The verdict class of a `results.json`, as the report decides it.
fn verdict_class(results: Option<&ResultsFile>) -> &'static str {
    let Some(results) = results else {
        return "unchecked";
    };
    if results.harness_failure.is_some() {
        return "failure";
    }
    match results.valid {
        Some(Validity::Valid) if results.has_panics() => "unknown",
        Some(Validity::Valid) => "valid",
        Some(Validity::Invalid) => "invalid",
        Some(Validity::Unknown) => "unknown",
        None => "failure",
    }
}

/// The time of the last line of `history.jsonl`, read from its tail so
/// indexing many large runs stays cheap.
fn last_time(history: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(history).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = String::new();
    f.read_to_string(&mut buf).ok()?;
    buf.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("time").and_then(Value::as_u64))
}

/// A run folder's summary.
pub fn summarize(store: &Path, dir: &Path) -> RunSummary {
    let test: TestFile = read_file(&dir.join(run_folder::TEST_FILE)).unwrap_or_default();
    let results: Option<ResultsFile> = read_file(&dir.join(run_folder::RESULTS_FILE));
    let mut nemesis = test.options.nemesis.clone().unwrap_or_default();
    if let Some(s) = &test.options.schedule {
        nemesis = format!("{nemesis} [{s}]");
    }
    let rel: Vec<String> = dir
        .strip_prefix(store)
        .unwrap_or(dir)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    RunSummary {
        rel: rel.join("/"),
        name: test
            .name
            .clone()
            .unwrap_or_else(|| rel.first().cloned().unwrap_or_default()),
        time: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        nodes: test.options.nodes,
        workload: test.workload.clone().unwrap_or_default(),
        nemesis,
        verdict: verdict_class(results.as_ref()),
        duration: last_time(&dir.join(run_folder::HISTORY_FILE)),
        has_report: dir.join("report.html").is_file(),
    }
}

/// Every run folder in a store: `store/<test>/<timestamp>/` holding a
/// `test.json` or `history.jsonl`. Symlinks (`store/latest`) are skipped
/// so no run is listed twice and nothing outside the store is read.
pub fn scan(store: &Path) -> Vec<RunSummary> {
    let mut runs = Vec::new();
    let Ok(tests) = std::fs::read_dir(store) else {
        return runs;
    };
    for t in tests.flatten() {
        if !t.file_type().is_ok_and(|ft| ft.is_dir()) {
            continue;
        }
        let Ok(stamps) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for r in stamps.flatten() {
            let p: PathBuf = r.path();
            if r.file_type().is_ok_and(|ft| ft.is_dir())
                && (p.join("test.json").is_file() || p.join("history.jsonl").is_file())
            {
                runs.push(summarize(store, &p));
            }
        }
    }
    runs.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.name.cmp(&b.name)));
    runs
}

/// `20261122T043314.572Z` as `2026-11-22 04:33:14 UTC`.
fn pretty_time(stamp: &str) -> String {
    let b = stamp.as_bytes();
    if b.len() >= 15 && b[8] == b'T' && stamp.is_ascii() {
        format!(
            "{}-{}-{} {}:{}:{} UTC",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15]
        )
    } else {
        stamp.to_string()
    }
}

/// The index page.
pub fn render(runs: &[RunSummary]) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dcf-harness runs</title><style>{CSS}</style></head><body><main>\n\
         <h1>dcf-harness runs</h1><p>{} run(s), newest first. \
         <input class=\"filter\" id=\"filter\" placeholder=\"filter: name, workload, verdict…\"></p>\n\
         <table id=\"runs\"><tr><th>verdict</th><th>test</th><th>time</th><th>nodes</th><th>workload</th><th>nemeses</th><th>duration</th><th>files</th></tr>\n",
        runs.len()
    );
    for r in runs {
        let link = if r.has_report {
            format!("{}/report.html", r.rel)
        } else {
            format!("{}/", r.rel)
        };
        s.push_str(&format!(
            "<tr><td><span class=\"pill {v}\">{v}</span></td><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td><a href=\"{rel}/results.json\">results</a> · <a href=\"{rel}/history.jsonl\">history</a></td></tr>\n",
            escape(&link),
            escape(&r.name),
            escape(&pretty_time(&r.time)),
            r.nodes.map_or(String::new(), |n| n.to_string()),
            escape(&r.workload),
            escape(&r.nemesis),
            r.duration.map_or(String::new(), |d| format!("{:.1} s", d as f64 / 1e9)),
            v = r.verdict,
            rel = escape(&r.rel),
        ));
    }
    s.push_str(
        "</table>\n<script>document.getElementById('filter').addEventListener('input',function(e){\
         const q=e.target.value.toLowerCase();for(const tr of document.querySelectorAll('#runs tr')){\
         if(tr.querySelector('th'))continue;tr.style.display=tr.textContent.toLowerCase().includes(q)?'':'none';}});</script>\n\
         </main></body></html>\n",
    );
    s
}

/// Regenerates `store/index.html`; returns its path.
pub fn write(store: &Path) -> Result<PathBuf, ReportError> {
    let path = store.join("index.html");
    write_atomic(&path, render(&scan(store)).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(store: &Path, name: &str, stamp: &str, results: Option<Value>) -> PathBuf {
        let d = store.join(name).join(stamp);
        std::fs::create_dir_all(&d).unwrap();
        let test = json!({"name": name, "workload": "register",
            "options": {"nodes": 3, "nemesis": "partition,kill", "schedule": null}});
        std::fs::write(d.join("test.json"), test.to_string()).unwrap();
        std::fs::write(
            d.join("history.jsonl"),
            "{\"index\":0,\"time\":5,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"time\":20000000000,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n",
        )
        .unwrap();
        if let Some(r) = results {
            std::fs::write(d.join("results.json"), r.to_string()).unwrap();
        }
        d
    }

    #[test]
    fn lists_runs_newest_first_with_verdicts() {
        let store = tempfile::tempdir().unwrap();
        run(
            store.path(),
            "a",
            "20260101T000000.000Z",
            Some(json!({"valid": true})),
        );
        run(
            store.path(),
            "b",
            "20260301T000000.000Z",
            Some(json!({"valid": false})),
        );
        run(
            store.path(),
            "a",
            "20260201T000000.000Z",
            Some(json!({"valid": null, "harness_failure": "x"})),
        );
        run(
            store.path(),
            "c",
            "20260401T000000.000Z",
            Some(json!({"valid": true, "node_panics": 1})),
        );
        #[cfg(unix)]
        std::os::unix::fs::symlink("b/20260301T000000.000Z", store.path().join("latest")).unwrap();
        let runs = scan(store.path());
        let got: Vec<(&str, &str)> = runs.iter().map(|r| (r.name.as_str(), r.verdict)).collect();
        assert_eq!(
            got,
            vec![
                ("c", "unknown"),
                ("b", "invalid"),
                ("a", "failure"),
                ("a", "valid")
            ]
        );
        assert_eq!(runs[0].duration, Some(20_000_000_000));
        assert_eq!(runs[0].nodes, Some(3));
        let path = write(store.path()).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("href=\"b/20260301T000000.000Z/\""));
        assert!(html.contains("2026-03-01 00:00:00 UTC"));
        assert!(html.contains("<span class=\"pill invalid\">invalid</span>"));
        assert!(html.contains("20.0 s"));
    }
}
