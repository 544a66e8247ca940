//! Time to detect: how long a run had to last before its verdict had its
//! evidence, i.e. the time from the run's start to the first operation the
//! verdict blames. A campaign that catches a bug only after ten minutes is
//! worth less in CI than one that catches it in thirty seconds; the zoo
//! reports this figure per planted bug.
//!
//! The evidence, whichever comes first: the linearizability checker's
//! failing operation (its completion), a list-append anomaly (the moment
//! the last of its transactions completed), the start of the minority
//! phase the minority checker faults, a node's safety alarm (its log
//! line's time, when the node's clock was a real one).

use reports::run_folder::{ResultsFile, TestFile, HISTORY_FILE};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// The first evidence of an invalid verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    /// Milliseconds from the run's start.
    pub at_ms: u64,
    /// What it is, e.g. `read 3 → 1 (n2)`.
    pub what: String,
}

/// The first evidence the verdict of the run in `run` rests on, if it is
/// invalid and the evidence has a time.
pub fn first_evidence(run: &Path, results: &ResultsFile) -> Option<Detection> {
    let mut found: Vec<Detection> = Vec::new();
    if let Some(check) = &results.checker {
        if let Some(e) = &check.explanation {
            let f = &e.failing_op;
            found.push(Detection {
                at_ms: f.complete_time.unwrap_or(f.invoke_time) / 1_000_000,
                what: format!("{} {}", f.process, f.description),
            });
        }
        if let Some(la) = &check.list_append {
            let completions = completion_times(&run.join(HISTORY_FILE));
            for a in &la.anomalies {
                if !la.prohibited_types.is_empty() && !la.prohibited_types.contains(&a.kind) {
                    continue;
                }
                let done = a.txns.iter().map(|t| completions.get(t).copied());
                if let Some(at) = done
                    .collect::<Option<Vec<u64>>>()
                    .and_then(|v| v.into_iter().max())
                {
                    found.push(Detection {
                        at_ms: at / 1_000_000,
                        what: a.kind.clone(),
                    });
                }
            }
        }
    }
    if let Some(m) = &results.minority {
        if m.valid == checker::Validity::Invalid {
            if let (Some(phase), Some(finding)) = (
                m.phases.iter().find(|p| p.name == "minority mode"),
                m.findings
                    .iter()
                    .find(|f| f.valid == checker::Validity::Invalid),
            ) {
                found.push(Detection {
                    at_ms: phase.from_ns / 1_000_000,
                    what: format!("minority-{}: {}", finding.guarantee, finding.message),
                });
            }
        }
    }
    let start = run_start_ms(run);
    for f in results.log_findings.iter().flatten() {
        if f.kind != "safety-alarm" {
            continue;
        }
        let (Some(start), Some(at)) = (start, log_line_time(&f.text)) else {
            continue;
        };
        // A faked clock writes times far from the run's; those say nothing.
        if at >= start && at - start < 24 * 3600 * 1000 {
            found.push(Detection {
                at_ms: at - start,
                what: format!(
                    "{}: {}",
                    f.node,
                    f.text.chars().take(120).collect::<String>()
                ),
            });
        }
    }
    found.into_iter().min_by_key(|d| d.at_ms)
}

/// When each invocation (by history index) completed, in nanoseconds.
fn completion_times(history: &Path) -> HashMap<usize, u64> {
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut done = HashMap::new();
    let Ok(text) = std::fs::read_to_string(history) else {
        return done;
    };
    for line in text.lines() {
        let Ok(op) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let process = op["process"].to_string();
        let index = op["index"].as_u64().unwrap_or(0) as usize;
        match op["type"].as_str() {
            Some("invoke") => {
                pending.insert(process, index);
            }
            Some(_) => {
                if let Some(inv) = pending.remove(&process) {
                    done.insert(inv, op["time"].as_u64().unwrap_or(0));
                }
            }
            None => {}
        }
    }
    done
}

/// Milliseconds since the epoch of a log line's leading
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` time.
fn log_line_time(line: &str) -> Option<u64> {
    let t = line.split_whitespace().next()?;
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    epoch_ms(y, m, day, hh, mm, ss, ms)
}

/// Milliseconds since the epoch of a run folder's `YYYYMMDDTHHMMSS.mmmZ`.
pub fn run_stamp_ms(stamp: &str) -> Option<u64> {
    let s = stamp.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let num = |s: &str| s.parse::<i64>().ok();
    if date.len() != 8 || hms.len() != 6 {
        return None;
    }
    epoch_ms(
        num(&date[..4])?,
        num(&date[4..6])?,
        num(&date[6..])?,
        num(&hms[..2])?,
        num(&hms[2..4])?,
        num(&hms[4..])?,
        num(ms)?,
    )
}

#[allow(clippy::too_many_arguments)]
fn epoch_ms(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64, ms: i64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (proleptic Gregorian calendar).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 24 + hh) * 60 + mm) * 60 + ss;
    u64::try_from(total * 1000 + ms).ok()
}

/// The start of a run as recorded in its `test.json`.
fn run_start_ms(run: &Path) -> Option<u64> {
    let test: TestFile<Value> =
        reports::run_folder::read(&run.join(reports::run_folder::TEST_FILE)).ok()??;
    run_stamp_ms(test.start_time.as_deref()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_log_lines_and_run_stamps_agree() {
        let a = log_line_time("2026-12-02T16:04:25.790123Z ERROR dcf: SAFETY ALARM x").unwrap();
        let b = run_stamp_ms("20261202T160425.790Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(run_stamp_ms("19700101T000001.000Z"), Some(1000));
        assert_eq!(
            log_line_time("1970-01-02T00:00:00.5Z x"),
            Some(86_400_000 + 500)
        );
        assert_eq!(log_line_time("not a time"), None);
        assert_eq!(run_stamp_ms("2026-12-02"), None);
    }

    #[test]
    fn anomalies_are_timed_by_their_last_completion() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"index":0,"time":1000000,"process":1,"type":"invoke","f":"txn","value":[]}"#,
            r#"{"index":1,"time":2000000,"process":2,"type":"invoke","f":"txn","value":[]}"#,
            r#"{"index":2,"time":3000000,"process":1,"type":"ok","f":"txn","value":[]}"#,
            r#"{"index":3,"time":9000000,"process":2,"type":"ok","f":"txn","value":[]}"#,
        ];
        std::fs::write(dir.path().join(HISTORY_FILE), lines.join("\n")).unwrap();
        let done = completion_times(&dir.path().join(HISTORY_FILE));
        assert_eq!(done.get(&0), Some(&3_000_000));
        assert_eq!(done.get(&1), Some(&9_000_000));
        let results: ResultsFile = serde_json::from_value(serde_json::json!({
            "valid": false,
            "checker": {
                "valid": false, "checker": "list-append", "model": "serializable",
                "elapsed_ms": 1.0, "op_count": 2,
                "list_append": {
                    "consistency": "serializable", "anomaly_types": ["G1c"],
                    "prohibited_types": ["G1c"], "not": [], "txns": 2, "edges": 2,
                    "anomalies": [{"kind": "G1c", "txns": [0, 1], "steps": []}]
                }
            }
        }))
        .unwrap();
        let d = first_evidence(dir.path(), &results).unwrap();
        assert_eq!(d.at_ms, 9);
        assert_eq!(d.what, "G1c");
    }
}
