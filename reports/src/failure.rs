//! Failure views: for a non-linearizable key, the checker's concurrent
//! window with the failing operation marked and the longest linearizable
//! prefix in words; for list-append anomalies, each cycle as a small graph
//! with its explanation. Operations link to the timeline.

use std::f64::consts::PI;
use std::fmt::Write as _;

use checker::explain::Explanation;
use checker::list_append::{Anomaly, ListAppendReport};
use checker::{CheckResult, Validity};

use crate::html::{escape, op_link, secs};

/// How many list-append anomalies are drawn (the rest are listed by kind).
const MAX_ANOMALIES: usize = 12;

/// A one-line statement of where the failure is, for the verdict banner.
pub fn headline(check: &CheckResult) -> Option<String> {
    if let Some(e) = &check.explanation {
        let key = e
            .key
            .as_deref()
            .map_or(String::new(), |k| format!("key {k}: "));
        let f = &e.failing_op;
        return Some(format!(
            "{key}process {} `{}` (op #{}, at {}) cannot be linearized",
            f.process,
            f.description,
            f.invoke_index,
            secs(f.invoke_time)
        ));
    }
    if let Some(la) = &check.list_append {
        let breaking = breaking(la).count();
        if breaking > 0 {
            return Some(format!(
                "{} anomal{} ({}) break {}; the history is not {}",
                breaking,
                if breaking == 1 { "y" } else { "ies" },
                la.prohibited_types.join(", "),
                la.consistency,
                la.not.join(", ")
            ));
        }
    }
    None
}

/// The failure section, or `None` when the checker found nothing to show.
pub fn section(check: &CheckResult) -> Option<String> {
    let mut s = String::new();
    if let Some(e) = &check.explanation {
        s.push_str(&linearizability(e, check));
    }
    if let Some(la) = &check.list_append {
        if !la.anomalies.is_empty() {
            s.push_str(&list_append(la));
        }
    }
    if let Some(set) = &check.set {
        if check.valid != Validity::Valid {
            let json = serde_json::to_string_pretty(set).unwrap_or_default();
            let _ = writeln!(
                s,
                "<h3>Set checker findings</h3><pre>{}</pre>",
                escape(&json)
            );
        }
    }
    (!s.is_empty()).then(|| format!("<h2 id=\"failure\">Where it fails</h2>\n{s}"))
}

fn linearizability(e: &Explanation, check: &CheckResult) -> String {
    let mut s = String::from("<div class=\"card explain\">\n");
    let key = e.key.as_deref().map_or("the history".to_string(), |k| {
        format!("key <b>{}</b>", escape(k))
    });
    let f = &e.failing_op;
    let _ = write!(
        s,
        "<h3>Not linearizable: {key}</h3>\n<p>Process <b>{}</b> ran <code>{}</code> ({}, invoked at {}{}). \
         No order of the operations concurrent with it lets it take effect: \
         the longest linearizable prefix has <b>{}</b> operation(s) and leaves the register in state{} <code>{}</code>, \
         from which <code>{}</code> is impossible.</p>\n",
        escape(&f.process),
        escape(&f.description),
        op_link(f.invoke_index, &format!("op #{}", f.invoke_index)),
        secs(f.invoke_time),
        f.complete_time
            .map_or(String::from(", never completed"), |t| format!(", completed {} at {}", escape(&f.outcome), secs(t))),
        e.prefix_len,
        if e.states.len() > 1 { "s" } else { "" },
        escape(&e.states.join(" or ")),
        escape(&f.description),
    );
    let invalid_keys: Vec<&str> = check
        .keys
        .iter()
        .filter(|k| k.valid == Validity::Invalid)
        .filter_map(|k| k.key.as_deref())
        .collect();
    if invalid_keys.len() > 1 {
        let _ = writeln!(
            s,
            "<p>{} keys are not linearizable: {}; the first is explained.</p>",
            invalid_keys.len(),
            escape(&invalid_keys.join(", "))
        );
    }
    s.push_str("<p><b>The concurrent window</b> (one lane per process; the failing operation in red, indeterminate ones dashed):</p>\n");
    let _ = writeln!(s, "<div class=\"scrollx\">{}</div>", e.to_svg());
    if !e.prefix_tail.is_empty() {
        // The last few steps say how the state was reached; the rest is one click away.
        const SHOWN: usize = 6;
        let rows = |steps: &[checker::explain::PrefixStep]| {
            let mut t = String::from("<table><tr><th>op</th><th>process</th><th>operation</th><th>state after</th></tr>\n");
            for step in steps {
                let _ = writeln!(
                    t,
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                    op_link(step.op.invoke_index, &format!("#{}", step.op.invoke_index)),
                    escape(&step.op.process),
                    escape(&step.op.description),
                    escape(&step.state)
                );
            }
            t.push_str("</table>\n");
            t
        };
        let tail = &e.prefix_tail;
        let recent = &tail[tail.len().saturating_sub(SHOWN)..];
        let _ = writeln!(
            s,
            "<p><b>How the prefix ends</b> (last {} of {} steps):</p>{}",
            recent.len(),
            e.prefix_len,
            rows(recent)
        );
        if tail.len() > SHOWN {
            let _ = writeln!(
                s,
                "<details><summary>Last {} steps</summary>{}</details>",
                tail.len(),
                rows(tail)
            );
        }
    }
    // Which node served each operation and what the nemesis was doing to
    // it: open by default, since it usually names the culprit.
    s.push_str("<details open id=\"culprits\"><summary>Operations in the window: who served them, under which fault</summary><table><tr><th>op</th><th>process</th><th>outcome</th><th>operation</th><th>invoked</th><th>completed</th><th>served by</th><th>what the nemesis was doing to that node</th></tr>\n");
    for o in &e.window {
        let mark = if o.invoke_index == f.invoke_index {
            " style=\"background:#fde2e2\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<tr{mark}><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            op_link(o.invoke_index, &format!("#{}", o.invoke_index)),
            escape(&o.process),
            escape(&o.outcome),
            escape(&o.description),
            secs(o.invoke_time),
            o.complete_time.map_or("—".into(), secs),
            escape(o.served_by.as_deref().unwrap_or("—")),
            escape(o.nemesis.as_deref().unwrap_or("—"))
        );
    }
    s.push_str("</table></details>\n");
    let _ = writeln!(
        s,
        "<details><summary>As text</summary><pre>{}</pre></details>\n</div>",
        escape(&e.to_text())
    );
    s
}

/// The dependency kind an explanation step names.
pub fn edge_kind(step: &str) -> &'static str {
    if step.contains(" right after ") {
        "ww"
    } else if step.contains("the next version") {
        "rw"
    } else if step.contains("'s append of") {
        "wr"
    } else if step.contains(" ran ") && step.contains("process") {
        "process"
    } else if step.contains("was invoked") {
        "realtime"
    } else {
        "dep"
    }
}

fn edge_colour(kind: &str) -> &'static str {
    match kind {
        "ww" => "#1f77b4",
        "wr" => "#2ca02c",
        "rw" => "#d62728",
        "process" => "#7f7f7f",
        "realtime" => "#9467bd",
        _ => "#444",
    }
}

/// True when the anomaly is a dependency cycle (its last step says so).
pub fn is_cycle(a: &Anomaly) -> bool {
    a.txns.len() >= 2 && a.steps.last().is_some_and(|s| s.contains("a cycle"))
}

/// A cycle `T[0] → T[1] → … → T[0]` as an SVG: transactions on a circle,
/// arrows labelled with the dependency kind of each step.
pub fn cycle_svg(a: &Anomaly) -> String {
    let n = a.txns.len();
    let (w, h, r, node_r) = (300.0, 230.0, 80.0, 24.0);
    let (cx, cy) = (w / 2.0, h / 2.0 + 4.0);
    let pos: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let ang = -PI / 2.0 + 2.0 * PI * i as f64 / n as f64;
            (cx + r * ang.cos(), cy + r * ang.sin())
        })
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"cycle\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n<defs>"
    );
    for kind in ["ww", "wr", "rw", "process", "realtime", "dep"] {
        let _ = write!(
            s,
            "<marker id=\"arr-{kind}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"{}\"/></marker>",
            edge_colour(kind)
        );
    }
    s.push_str("</defs>\n");
    for i in 0..n {
        let (a0, b0) = (pos[i], pos[(i + 1) % n]);
        let kind = a.steps.get(i).map_or("dep", |st| edge_kind(st));
        let (dx, dy) = (b0.0 - a0.0, b0.1 - a0.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Curve outward a little so the two edges of a 2-cycle do not overlap.
        let (mx, my) = ((a0.0 + b0.0) / 2.0, (a0.1 + b0.1) / 2.0);
        let bend = if n == 2 { 30.0 } else { 14.0 };
        let (qx, qy) = (mx + uy * bend, my - ux * bend);
        let (x0, y0) = (a0.0 + ux * node_r, a0.1 + uy * node_r);
        let (x1, y1) = (b0.0 - ux * node_r, b0.1 - uy * node_r);
        let title = a.steps.get(i).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "<g><title>{}</title><path d=\"M{x0:.1},{y0:.1} Q{qx:.1},{qy:.1} {x1:.1},{y1:.1}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" marker-end=\"url(#arr-{kind})\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\" text-anchor=\"middle\" font-weight=\"bold\">{kind}</text></g>",
            escape(&title),
            qx + uy * 6.0,
            qy - ux * 6.0 + 4.0,
            c = edge_colour(kind)
        );
    }
    for (i, (x, y)) in pos.iter().enumerate() {
        let _ = writeln!(
            s,
            "<a class=\"oplink\" href=\"#timeline\" data-op=\"{t}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{node_r}\" fill=\"#fff\" stroke=\"#333\" stroke-width=\"1.5\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">T{t}</text></a>",
            y + 4.0,
            t = a.txns[i]
        );
    }
    s.push_str("</svg>");
    s
}

/// The anomalies that break the checked model.
fn breaking(la: &ListAppendReport) -> impl Iterator<Item = &Anomaly> {
    la.anomalies
        .iter()
        .filter(|a| la.prohibited_types.contains(&a.kind))
}

fn list_append(la: &ListAppendReport) -> String {
    let mut s = String::new();
    let allowed: Vec<&str> = la
        .anomaly_types
        .iter()
        .filter(|k| !la.prohibited_types.contains(k))
        .map(String::as_str)
        .collect();
    let _ = writeln!(
        s,
        "<p>The list-append checker found <b>{}</b> anomal{} ({}) in {} transactions checked against <b>{}</b>; \
         by Elle's ladder the history is not <b>{}</b>.{} \
         Edges: <span style=\"color:#1f77b4\">ww</span> = appended right after, <span style=\"color:#2ca02c\">wr</span> = read the append of, \
         <span style=\"color:#d62728\">rw</span> = read before the next append, process / realtime = ran before.</p>",
        la.anomalies.len(),
        if la.anomalies.len() == 1 { "y" } else { "ies" },
        escape(&la.anomaly_types.join(", ")),
        la.txns,
        escape(&la.consistency),
        escape(&la.not.join(", ")),
        if allowed.is_empty() {
            String::new()
        } else {
            format!(
                " Also found, and allowed by {}: {}.",
                escape(&la.consistency),
                escape(&allowed.join(", "))
            )
        }
    );
    // Those that break the model first.
    let mut shown: Vec<&Anomaly> = breaking(la).collect();
    shown.extend(
        la.anomalies
            .iter()
            .filter(|a| !la.prohibited_types.contains(&a.kind)),
    );
    for a in shown.into_iter().take(MAX_ANOMALIES) {
        s.push_str("<div class=\"card anomaly\" style=\"display:flex;gap:16px;flex-wrap:wrap\">\n");
        if is_cycle(a) {
            let _ = writeln!(s, "<div>{}</div>", cycle_svg(a));
        }
        let txns: Vec<String> = a
            .txns
            .iter()
            .map(|t| op_link(*t, &format!("T{t}")))
            .collect();
        let _ = write!(
            s,
            "<div style=\"flex:1;min-width:320px\"><h3>{}</h3><p>Transactions: {}</p><ol class=\"steps\">",
            escape(&a.kind),
            txns.join(", ")
        );
        for step in &a.steps {
            let _ = write!(s, "<li>{}</li>", escape(step));
        }
        s.push_str("</ol>");
        if !a.ops.is_empty() {
            s.push_str("<table class=\"culprits\"><tr><th>txn</th><th>served by</th><th>what the nemesis was doing to that node</th></tr>");
            for n in &a.ops {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    op_link(n.invoke_index, &format!("T{}", n.invoke_index)),
                    escape(n.served_by.as_deref().unwrap_or("no node answered")),
                    escape(n.nemesis.as_deref().unwrap_or("—"))
                );
            }
            s.push_str("</table>");
        }
        s.push_str("</div></div>\n");
    }
    if la.anomalies.len() > MAX_ANOMALIES {
        let _ = writeln!(
            s,
            "<p>… {} more anomalies (see results.json).</p>",
            la.anomalies.len() - MAX_ANOMALIES
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g_single() -> Anomaly {
        Anomaly {
            ops: vec![checker::culprit::OpNote {
                invoke_index: 10,
                served_by: Some("n3".into()),
                nemesis: Some("cut off from the leader n1 since 16.2 s".into()),
            }],
            kind: "G-single".into(),
            txns: vec![10, 20],
            steps: vec![
                "T10 < T20 because T10 read key x [1] and T20 appended 2, the next version of x"
                    .into(),
                "T20 < T10 because T10 read T20's append of 3 to key y".into(),
                "so T10 < T20 < T10: a cycle, which no serial order allows".into(),
            ],
        }
    }

    #[test]
    fn cycles_are_drawn_with_kinds_and_links() {
        let a = g_single();
        assert!(is_cycle(&a));
        let svg = cycle_svg(&a);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">rw</text>") && svg.contains(">wr</text>"));
        assert!(svg.contains("data-op=\"10\"") && svg.contains("data-op=\"20\""));
        assert_eq!(edge_kind("T1 < T2 because T2 appended 3 to key k right after T1's append of 2 (the version order of k)"), "ww");
        assert_eq!(
            edge_kind("T1 < T2 because process 3 ran T1 before T2"),
            "process"
        );
        assert_eq!(
            edge_kind("T1 < T2 because T1 completed (index 4) before T2 was invoked (index 9)"),
            "realtime"
        );
    }

    #[test]
    fn list_append_section_explains_in_words() {
        let mut check = CheckResult::new("list-append", "strict-serializable");
        check.valid = Validity::Invalid;
        check.list_append = Some(ListAppendReport {
            consistency: "snapshot-isolation".into(),
            anomaly_types: vec!["G-single".into(), "G2-item".into()],
            prohibited_types: vec!["G-single".into()],
            not: vec![
                "strict-serializable".into(),
                "serializable".into(),
                "snapshot-isolation".into(),
                "repeatable-read".into(),
            ],
            anomalies: vec![g_single()],
            txns: 40,
            edges: 90,
        });
        let html = section(&check).unwrap();
        assert!(
            html.contains("<td>n3</td><td>cut off from the leader n1 since 16.2 s</td>"),
            "{html}"
        );
        assert!(html.contains("<h3>G-single</h3>"));
        assert!(html.contains("the next version of x"));
        assert!(
            html.contains("allowed by snapshot-isolation: G2-item"),
            "{html}"
        );
        let h = headline(&check).unwrap();
        assert!(
            h.contains("1 anomaly (G-single) break snapshot-isolation"),
            "{h}"
        );
        assert!(h.contains("not strict-serializable, serializable"), "{h}");
    }

    #[test]
    fn valid_results_have_no_failure_section() {
        assert!(section(&CheckResult::new("linearizable", "cas-register")).is_none());
    }
}
