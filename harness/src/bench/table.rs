//! The bench's results: one row per system and client count, the ratio of
//! our node to each other system per client count, and the machine they
//! were measured on; printed as a table and written as `bench.json`.

use super::load::LoadResult;
use serde::Serialize;
use std::fmt::Write;

/// One measured row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub system: String,
    #[serde(flatten)]
    pub result: LoadResult,
}

/// Throughput of `a` over `b` at one client count.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratio {
    pub clients: u32,
    pub a: String,
    pub b: String,
    /// ops/s of `a` divided by ops/s of `b`.
    pub throughput: f64,
    /// p99 of `a` divided by p99 of `b` (below 1: `a` is faster).
    pub p99: f64,
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    /// The command line.
    pub command: Vec<String>,
    /// What was measured, in words.
    pub setup: String,
    pub cores: usize,
    pub op: String,
    pub value_size: usize,
    pub warmup_secs: u64,
    pub measure_secs: u64,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
}

/// The ratio of the first system to each other one, per client count both
/// measured.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let Some(first) = rows.first().map(|r| r.system.clone()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for b in rows.iter().filter(|r| r.system != first) {
        let a = rows
            .iter()
            .find(|r| r.system == first && r.result.clients == b.result.clients);
        if let Some(a) = a {
            out.push(Ratio {
                clients: b.result.clients,
                a: first.clone(),
                b: b.system.clone(),
                throughput: quotient(a.result.ops_per_sec, b.result.ops_per_sec),
                p99: quotient(a.result.p99_ms, b.result.p99_ms),
            });
        }
    }
    out
}

fn quotient(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The table: a header, one row per system and client count, then the
/// ratios and the core count.
pub fn render(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:>7} {:>10} {:>8} {:>8} {:>9} {:>7}",
        "system", "clients", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for r in &report.rows {
        let x = &r.result;
        let _ = writeln!(
            s,
            "{:<8} {:>7} {:>10.0} {:>8.3} {:>8.3} {:>9.3} {:>7}",
            r.system, x.clients, x.ops_per_sec, x.p50_ms, x.p99_ms, x.p999_ms, x.errors
        );
    }
    for q in &report.ratios {
        let _ = writeln!(
            s,
            "ratio {}/{} at {:>3} clients: throughput {:.2}x, p99 {:.2}x",
            q.a, q.b, q.clients, q.throughput, q.p99
        );
    }
    let _ = writeln!(s, "cores: {}", report.cores);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, clients: u32, ops: f64, p99: f64) -> Row {
        Row {
            system: system.into(),
            result: LoadResult {
                clients,
                ops: ops as u64,
                errors: 0,
                first_error: None,
                seconds: 1.0,
                ops_per_sec: ops,
                p50_ms: 0.4,
                p99_ms: p99,
                p999_ms: p99 * 2.0,
                max_ms: p99 * 3.0,
            },
        }
    }

    #[test]
    fn ratios_pair_rows_of_the_same_client_count() {
        let rows = vec![
            row("dcf", 1, 2000.0, 1.0),
            row("dcf", 64, 30000.0, 4.0),
            row("etcd", 1, 1000.0, 2.0),
            row("etcd", 64, 10000.0, 8.0),
        ];
        let q = ratios(&rows);
        assert_eq!(q.len(), 2);
        assert_eq!((q[0].clients, q[0].throughput, q[0].p99), (1, 2.0, 0.5));
        assert_eq!((q[1].clients, q[1].throughput, q[1].p99), (64, 3.0, 0.5));
        assert!(ratios(&rows[..2]).is_empty(), "one system: no ratio");
    }

    #[test]
    fn every_row_starts_with_system_and_clients() {
        let rows = vec![row("dcf", 1, 2000.0, 1.0), row("etcd", 1, 1000.0, 2.0)];
        let report = BenchReport {
            command: vec![],
            setup: String::new(),
            cores: 2,
            op: "put".into(),
            value_size: 256,
            warmup_secs: 1,
            measure_secs: 1,
            ratios: ratios(&rows),
            rows,
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(&cells[..3], &["dcf", "1", "2000"]);
        assert!(lines[2].starts_with("etcd"));
        assert!(text.contains("ratio dcf/etcd at   1 clients: throughput 2.00x, p99 0.50x"));
        assert!(text.ends_with("cores: 2\n"));
    }
}
