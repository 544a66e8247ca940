//! The node-logs section: links to every collected log of every node, and
//! the lines that match panics or errors with their node and line number.

use std::path::{Path, PathBuf};

use crate::html::escape;
use crate::model::{LogFinding, RunData};

/// How many findings the page lists (the rest are counted).
const MAX_SHOWN: usize = 200;

/// The kind of a node's own safety alarm: it saw committed data change
/// (a committed-entry conflict, a checksum failure on stored log data).
pub const SAFETY_ALARM: &str = "safety-alarm";

/// Whether a log line is a node's safety alarm. Matched by the names the
/// node uses, not the level it logs them at.
fn is_safety_alarm(line: &str) -> bool {
    line.contains("COMMITTED_ENTRY_CONFLICT")
        // A committed command the state machine cannot decode is not what
        // was proposed (the node encodes every command it proposes): data
        // changed on its way through the log, and the node's state now
        // differs from the others'.
        || line.contains("undecodable entry")
        || (line.contains("corrupt data in")
            && line.contains("CRC32C mismatch")
            // A torn tail cut off at start-up was never acknowledged.
            && !line.contains("torn or corrupt log tail"))
}

/// Same rule as the harness's scanner, for runs whose `results.json` has
/// no findings: a safety alarm, a panic message, or a line logged at ERROR
/// level.
pub fn classify(line: &str) -> Option<&'static str> {
    if is_safety_alarm(line) {
        Some(SAFETY_ALARM)
    } else if line.contains("panicked at") || line.contains("RUST_BACKTRACE") {
        Some("panic")
    } else if line.contains(" ERROR ")
        || line.starts_with("ERROR")
        || line.contains("\u{1b}[31mERROR")
    {
        Some("error")
    } else {
        None
    }
}

/// Log files (`*.log`, `*.stderr`) of one node folder, its `data/` included.
fn log_files(node_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [node_dir.to_path_buf(), node_dir.join("data")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e == "log" || e == "stderr")
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Node folders (`nodes/n1`, ...), sorted by node number.
pub fn node_dirs(nodes: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(nodes) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            name.trim_start_matches('n')
                .parse::<u64>()
                .unwrap_or(u64::MAX),
            name,
        )
    });
    dirs
}

/// Scans every node's logs (at most 50 findings per file).
pub fn scan(nodes: &Path) -> Vec<LogFinding> {
    let mut out = Vec::new();
    for node_dir in node_dirs(nodes) {
        let node = node_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in log_files(&node_dir) {
            let Ok(text) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut per_kind: std::collections::HashMap<&str, usize> = Default::default();
            for (i, line) in text.lines().enumerate() {
                let Some(kind) = classify(line) else { continue };
                // Per kind, so a flood of errors cannot hide an alarm.
                let n = per_kind.entry(kind).or_default();
                if *n >= 50 {
                    continue;
                }
                *n += 1;
                out.push(LogFinding {
                    node: node.clone(),
                    file: name.clone(),
                    line: i + 1,
                    kind: kind.into(),
                    text: line.chars().take(500).collect(),
                });
            }
        }
    }
    out
}

fn rel(run_dir: &Path, p: &Path) -> String {
    p.strip_prefix(run_dir)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Where a finding's file is, relative to the run folder (the scanner
/// records only the file name).
fn finding_href(run: &RunData, f: &LogFinding) -> String {
    let node = run.dir.join("nodes").join(&f.node);
    for candidate in [node.join(&f.file), node.join("data").join(&f.file)] {
        if candidate.is_file() {
            return rel(&run.dir, &candidate);
        }
    }
    format!("nodes/{}/{}", f.node, f.file)
}

/// The node-logs section.
pub fn section(run: &RunData) -> String {
    let mut s = String::from("<h2 id=\"logs\">Node logs</h2>\n");
    let nodes = node_dirs(&run.dir.join("nodes"));
    if nodes.is_empty() {
        s.push_str("<p>No node logs were collected.</p>\n");
    } else {
        s.push_str("<table><tr><th>node</th><th>logs</th></tr>\n");
        for n in &nodes {
            let name = n
                .file_name()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default();
            let links: Vec<String> = log_files(n)
                .iter()
                .map(|f| {
                    let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                    let r = rel(&run.dir, f);
                    format!(
                        "<a href=\"{}\">{}</a> <small>({})</small>",
                        escape(&r),
                        escape(r.trim_start_matches(&format!("nodes/{name}/"))),
                        human_size(size)
                    )
                })
                .collect();
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(&name),
                if links.is_empty() {
                    "none".into()
                } else {
                    links.join(" · ")
                }
            ));
        }
        s.push_str("</table>\n");
    }
    let panics = run.findings.iter().filter(|f| f.kind == "panic").count();
    let alarms = run
        .findings
        .iter()
        .filter(|f| f.kind == SAFETY_ALARM)
        .count();
    let errors = run.findings.len() - panics - alarms;
    if run.findings.is_empty() {
        s.push_str("<p>No safety alarms, panics or errors in the node logs.</p>\n");
        return s;
    }
    if alarms > 0 {
        s.push_str(&format!(
            "<p><b>{alarms}</b> safety alarm line(s): a node saw committed data change, which makes the run invalid.</p>\n"
        ));
    }
    s.push_str(&format!(
        "<p><b>{panics}</b> panic line(s) and <b>{errors}</b> error line(s) in the node logs{}.</p>\n",
        if panics > 0 { " — a panic makes the run at least unknown" } else { "" }
    ));
    s.push_str("<div class=\"scrollx\"><table class=\"finding\"><tr><th>node</th><th>file:line</th><th>kind</th><th>text</th></tr>\n");
    // Alarms and panics first: they decide the verdict.
    let mut shown: Vec<&LogFinding> = run.findings.iter().collect();
    shown.sort_by_key(|f| match f.kind.as_str() {
        SAFETY_ALARM => 0,
        "panic" => 1,
        _ => 2,
    });
    for f in shown.iter().take(MAX_SHOWN) {
        s.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"{}\">{}:{}</a></td><td class=\"kind-{}\">{}</td><td class=\"text\">{}</td></tr>\n",
            escape(&f.node),
            escape(&finding_href(run, f)),
            escape(&f.file),
            f.line,
            escape(&f.kind),
            escape(&f.kind),
            escape(&f.text)
        ));
    }
    s.push_str("</table></div>\n");
    if run.findings.len() > MAX_SHOWN {
        s.push_str(&format!(
            "<p>… and {} more.</p>\n",
            run.findings.len() - MAX_SHOWN
        ));
    }
    s
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_logs_and_findings_with_node_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = dir.path().join("nodes/n1");
        std::fs::create_dir_all(n1.join("data")).unwrap();
        std::fs::write(n1.join("stdout.log"), "hello\n").unwrap();
        std::fs::write(
            n1.join("data/dcf-node.log"),
            "a\nb\nthread 'x' panicked at src/a.rs:1:1\n2026 ERROR disk\n",
        )
        .unwrap();
        let findings = scan(&dir.path().join("nodes"));
        assert_eq!(findings.len(), 2);
        assert_eq!(
            (
                findings[0].node.as_str(),
                findings[0].line,
                findings[0].kind.as_str()
            ),
            ("n1", 3, "panic")
        );
        let mut run = RunData::from_parts(
            dir.path(),
            crate::TestFile::default(),
            Some(crate::ResultsFile {
                valid: Some(checker::Validity::Valid),
                ..crate::ResultsFile::default()
            }),
            &checker::History::default(),
        );
        run.findings = findings;
        let html = section(&run);
        assert!(html.contains("href=\"nodes/n1/data/dcf-node.log\""));
        assert!(html.contains("href=\"nodes/n1/stdout.log\""));
        assert!(html.contains("dcf-node.log:3"));
        assert!(html.contains("at least unknown"));
    }

    #[test]
    fn safety_alarms_are_found_by_name_at_any_level() {
        for line in [
            "2026 WARN dcf::engine: DCF exception stream=1 exception=COMMITTED_ENTRY_CONFLICT detail=..",
            "2026 ERROR dcf::engine: DCF exception stream=1 exception=COMMITTED_ENTRY_CONFLICT",
            "2026 ERROR storage failed; stopping the DCF engine error=corrupt data in /d/log/seg at offset 40: data CRC32C mismatch for index 7",
            "2026 WARN dcf::kv::server: undecodable entry; skipped index=415 err=unknown variant `wRite`",
        ] {
            assert_eq!(classify(line), Some(SAFETY_ALARM), "{line}");
        }
        // A torn tail truncated at start-up is recovery, not an alarm.
        let torn = "2026 WARN truncated a torn or corrupt log tail at start-up reason=Some(\"corrupt data in x: data CRC32C mismatch\")";
        assert_eq!(classify(torn), None);
        assert_eq!(classify("2026 ERROR disk full"), Some("error"));
        // Many errors before it do not hide an alarm.
        let dir = tempfile::tempdir().unwrap();
        let n1 = dir.path().join("n1");
        std::fs::create_dir_all(&n1).unwrap();
        let mut text = "2026 ERROR transport down\n".repeat(80);
        text.push_str("x exception=COMMITTED_ENTRY_CONFLICT\n");
        std::fs::write(n1.join("stderr.log"), text).unwrap();
        let f = scan(dir.path());
        assert_eq!(f.iter().filter(|f| f.kind == "error").count(), 50);
        assert_eq!(f.iter().filter(|f| f.kind == SAFETY_ALARM).count(), 1);
    }
}
