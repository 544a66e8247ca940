//! Explanations of a non-linearizable part: which operation could not be
//! linearized, the longest linearizable prefix and the states it reaches,
//! and the operations concurrent with the failure — as JSON, as text, and
//! as a self-contained HTML page with an SVG timeline.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::history::{History, OpType};
use crate::linear::{Failure, Part};
use crate::models::{Model, Values};

/// One operation as shown in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// The process that ran it.
    pub process: String,
    /// What it did and observed, e.g. `cas 1 → 2`.
    pub description: String,
    /// `ok`, `fail` or `info`.
    pub outcome: String,
    /// Index of the invocation in the history.
    pub invoke_index: usize,
    /// Index of the completion (absent if indeterminate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_index: Option<usize>,
    /// Time of the invocation.
    pub invoke_time: u64,
    /// Time of the completion (absent if indeterminate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<u64>,
    /// The node that served it, e.g. `n3` (see [`crate::culprit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// What the nemesis was doing to that node at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<String>,
}

impl OpSummary {
    /// `[served by n3: cut off from the leader n1 since 16.2 s]`, or
    /// nothing when the history does not say.
    pub fn culprit_note(&self) -> String {
        let note = crate::culprit::OpNote {
            invoke_index: self.invoke_index,
            served_by: self.served_by.clone(),
            nemesis: self.nemesis.clone(),
        };
        if self.served_by.is_none() && self.nemesis.is_none() {
            String::new()
        } else {
            format!("  [{}]", note.describe())
        }
    }
}

/// One step of the longest linearizable prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixStep {
    /// The operation linearized.
    pub op: OpSummary,
    /// The model state after it.
    pub state: String,
}

/// Why a part is not linearizable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The key of the part (absent for an unkeyed history).
    pub key: Option<String>,
    /// The first operation that cannot be linearized: its completion was
    /// reached and no remaining operation order lets it take effect.
    pub failing_op: OpSummary,
    /// How many operations the longest linearizable prefix has.
    pub prefix_len: usize,
    /// The last steps of that prefix (at most [`Explanation::TAIL`]).
    pub prefix_tail: Vec<PrefixStep>,
    /// Distinct states reached by linearizable prefixes of that length.
    pub states: Vec<String>,
    /// Operations concurrent with the failing one (and it), by invocation.
    pub window: Vec<OpSummary>,
}

impl Explanation {
    /// How many prefix steps are kept.
    pub const TAIL: usize = 20;
    /// How many window operations are kept.
    pub const WINDOW: usize = 60;

    /// A readable account for terminals and logs.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let key = self
            .key
            .as_deref()
            .map_or(String::new(), |k| format!(" on key {k}"));
        let f = &self.failing_op;
        let _ = writeln!(
            s,
            "Not linearizable{key}: process {} `{}` (history index {}) cannot be linearized.",
            f.process, f.description, f.invoke_index
        );
        let _ = writeln!(
            s,
            "The longest linearizable prefix has {} operations; it ends in state{} {}.",
            self.prefix_len,
            if self.states.len() > 1 { "s" } else { "" },
            self.states.join(" or ")
        );
        if !self.prefix_tail.is_empty() {
            let _ = writeln!(s, "Last steps of that prefix:");
            for step in &self.prefix_tail {
                let _ = writeln!(
                    s,
                    "  [{}] p{} {} → state {}",
                    step.op.invoke_index, step.op.process, step.op.description, step.state
                );
            }
        }
        let _ = writeln!(s, "Concurrent operations around it:");
        for op in &self.window {
            let mark = if op.invoke_index == f.invoke_index {
                "  <-- cannot be linearized"
            } else {
                ""
            };
            let end = op.complete_index.map_or("…".to_string(), |c| c.to_string());
            let _ = writeln!(
                s,
                "  p{:<4} [{}..{}] {} {}{}{}",
                op.process,
                op.invoke_index,
                end,
                op.outcome,
                op.description,
                mark,
                op.culprit_note()
            );
        }
        s
    }

    /// A self-contained HTML page: the text plus an SVG of the window, one
    /// lane per process, the failing operation in red.
    pub fn to_html(&self) -> String {
        let mut html = String::from(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Linearizability failure</title>\
             <style>body{font-family:sans-serif}pre{background:#f6f6f6;padding:8px}</style></head><body>\n",
        );
        html.push_str("<h2>Linearizability failure</h2>\n");
        html.push_str(&self.to_svg());
        let _ = write!(
            html,
            "\n<pre>{}</pre>\n</body></html>\n",
            escape(&self.to_text())
        );
        html
    }

    /// The SVG picture of the window alone.
    pub fn to_svg(&self) -> String {
        let mut procs: Vec<&str> = self.window.iter().map(|o| o.process.as_str()).collect();
        procs.sort_by_key(|p| (p.parse::<u64>().unwrap_or(u64::MAX), p.to_string()));
        procs.dedup();
        let t0 = self.window.iter().map(|o| o.invoke_time).min().unwrap_or(0);
        let t1 = self
            .window
            .iter()
            .map(|o| o.complete_time.unwrap_or(o.invoke_time))
            .max()
            .unwrap_or(t0)
            .max(t0 + 1);
        let (left, width, lane) = (70.0, 900.0, 34.0);
        let span = (t1 - t0) as f64 * 1.1;
        let x = |t: u64| left + (t - t0) as f64 / span * width;
        let height = lane * procs.len() as f64 + 40.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
            left + width + 20.0
        );
        for (row, p) in procs.iter().enumerate() {
            let y = 20.0 + row as f64 * lane;
            let _ = writeln!(
                svg,
                "<text x=\"4\" y=\"{}\">p{}</text>",
                y + 16.0,
                escape(p)
            );
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>",
                y + lane - 4.0,
                left + width,
                y + lane - 4.0
            );
        }
        for op in &self.window {
            let row = procs.iter().position(|p| *p == op.process).unwrap_or(0);
            let y = 20.0 + row as f64 * lane;
            let x0 = x(op.invoke_time);
            let x1 = op.complete_time.map_or(left + width, x).max(x0 + 3.0);
            let failing = op.invoke_index == self.failing_op.invoke_index;
            let (fill, stroke) = match (failing, op.outcome.as_str()) {
                (true, _) => ("#f4a6a6", "#c00"),
                (_, "info") => ("#fff3c4", "#b8860b"),
                (_, "fail") => ("#e8e8e8", "#888"),
                _ => ("#cfe3ff", "#3366aa"),
            };
            let dash = if op.complete_time.is_none() {
                " stroke-dasharray=\"4 2\""
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                "<g><title>{}</title><rect x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{fill}\" stroke=\"{stroke}\"{dash}/>\
                 <text x=\"{:.1}\" y=\"{}\">{}</text></g>",
                escape(&format!("[{}] {} {}", op.invoke_index, op.outcome, op.description)),
                x1 - x0,
                lane - 10.0,
                x0 + 3.0,
                y + 16.0,
                escape(&op.description)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn summary<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    i: usize,
    values: &Values,
) -> OpSummary {
    let o = &part.ops[i];
    let inv = &history.ops[o.invoke];
    let outcome = match o.complete {
        Some(c) => history.ops[c].kind,
        None => OpType::Info,
    };
    OpSummary {
        process: inv.process.to_string(),
        description: model.describe_op(&o.op, values),
        outcome: outcome.as_str().into(),
        invoke_index: o.invoke,
        complete_index: o.complete,
        invoke_time: inv.time,
        complete_time: o.complete.map(|c| history.ops[c].time),
        served_by: None,
        nemesis: None,
    }
}

/// Build the explanation of a failure found by the search.
pub fn explain<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    failure: &Failure<M::State>,
    values: &Values,
) -> Explanation {
    let failing = &part.ops[failure.failing];
    let (call, ret) = (failing.invoke, failing.complete.unwrap_or(usize::MAX));
    let mut window: Vec<usize> = (0..part.ops.len())
        .filter(|&k| {
            let o = &part.ops[k];
            o.invoke < ret && !matches!(o.complete, Some(c) if c <= call)
        })
        .collect();
    // Keep the ops nearest the failing one if the window is large.
    if window.len() > Explanation::WINDOW {
        let pos = window
            .iter()
            .position(|&k| k == failure.failing)
            .unwrap_or(0);
        let start = pos
            .saturating_sub(Explanation::WINDOW / 2)
            .min(window.len() - Explanation::WINDOW);
        window = window[start..start + Explanation::WINDOW].to_vec();
    }
    let tail_start = failure.prefix.len().saturating_sub(Explanation::TAIL);
    Explanation {
        key: part.key.clone(),
        failing_op: summary(model, history, part, failure.failing, values),
        prefix_len: failure.prefix.len(),
        prefix_tail: failure.prefix[tail_start..]
            .iter()
            .map(|(k, s)| PrefixStep {
                op: summary(model, history, part, *k, values),
                state: model.describe_state(s, values),
            })
            .collect(),
        states: failure
            .states
            .iter()
            .map(|s| model.describe_state(s, values))
            .collect(),
        window: window
            .into_iter()
            .map(|k| summary(model, history, part, k, values))
            .collect(),
    }
}
