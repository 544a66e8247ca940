//! The page layout of `report.html`: the verdict first, then where it
//! fails (if it does), the test's options and how to reproduce it, the
//! checkers' results, operation counts, the plots, the timeline and the
//! node logs. Everything is inline, so the file opens from disk with no
//! network.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::error::ReportError;
use crate::html::{escape, secs};
use crate::model::{Outcome, RunData, Verdict};
use crate::style::{fault_colour, fault_label, hex, outcome_colour, CSS};
use crate::{failure, logs, plots, timeline};

/// Collects script errors, failed resources and `console.error` calls
/// before anything else runs, so the self-check can report them.
const ERROR_CAPTURE: &str = r#"window.__reportErrors=[];
window.addEventListener('error',function(e){window.__reportErrors.push(e.message?(e.message+' @'+(e.filename||'')+':'+(e.lineno||'')):('resource failed: '+((e.target&&(e.target.src||e.target.href))||'?')));},true);
window.addEventListener('unhandledrejection',function(e){window.__reportErrors.push('unhandled rejection: '+e.reason);});
(function(){var ce=console.error;console.error=function(){window.__reportErrors.push(Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};})();"#;

/// Writes what the page contains into `#selfcheck` (JSON), for tests and
/// for anyone wondering whether the page is complete. With `#bench` in the
/// URL it also times timeline redraws and page scrolling; with `#check` it
/// follows the first operation link of the failure view.
const SELF_CHECK: &str = r#"(function(){
  function median(a){a=a.slice().sort(function(x,y){return x-y;});return a.length?a[a.length>>1]:0;}
  var r={errors:window.__reportErrors.slice()};
  var w=document.querySelector('#verdict .word');r.verdict=w?w.textContent:null;
  r.plots=['plot-latency','plot-quantiles','plot-throughput'].filter(function(id){var e=document.getElementById(id);return e&&e.querySelector('svg')&&e.getBoundingClientRect().height>100;});
  var tl=window.reportTimeline;r.timeline=tl?{ops:tl.ops,drawn:tl.drawn(),height:tl.scroll.getBoundingClientRect().height}:null;
  var f=document.getElementById('failure');r.failure=f?{top:Math.round(f.getBoundingClientRect().top+window.scrollY)}:null;
  r.external=Array.prototype.map.call(document.querySelectorAll('[src],[href]'),function(e){return e.getAttribute('src')||e.getAttribute('href');}).filter(function(u){return /^(https?:)?\/\//.test(u);});
  if(location.hash==='#check'&&tl){
    var link=document.querySelector('a.oplink');
    if(link){link.click();var st=document.getElementById('tl-status').textContent;r.oplink={op:Number(link.dataset.op),status:st,ok:st.indexOf('op #'+link.dataset.op)>=0};window.scrollTo(0,0);}
  }
  if(location.hash==='#bench'&&tl){
    var a=performance.now();tl.draw();r.fit_draw_ms=performance.now()-a;r.fit_drawn=tl.drawn();
    for(var z=0;z<4;z++)document.getElementById('tl-in').click();
    var sc=tl.scroll,maxX=sc.scrollWidth-sc.clientWidth,maxY=sc.scrollHeight-sc.clientHeight,t=[];
    for(var i=0;i<60;i++){sc.scrollLeft=maxX*i/59;sc.scrollTop=maxY*((i*7)%60)/59;a=performance.now();tl.draw();t.push(performance.now()-a);}
    r.zoomed_draw_ms={median:median(t),max:Math.max.apply(null,t),n:t.length};
    var p=[],H=document.documentElement.scrollHeight;
    for(var k=0;k<30;k++){window.scrollTo(0,H*k/29);a=performance.now();void document.body.getBoundingClientRect();void document.documentElement.offsetHeight;p.push(performance.now()-a);}
    window.scrollTo(0,0);
    r.page_scroll_ms={median:median(p),max:Math.max.apply(null,p),n:p.length};
    r.load_ms=performance.now();
  }
  document.getElementById('selfcheck').textContent=JSON.stringify(r);
})();"#;

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn verdict_banner(run: &RunData) -> String {
    let why = match &run.verdict {
        Verdict::Valid => "The checkers found the history correct.".to_string(),
        Verdict::Invalid if run.decided_by_rule().is_some() => {
            let (rule, reason) = run.decided_by_rule().unwrap_or_default();
            format!("Decided by {}: {}", escape(&rule), escape(&reason))
        }
        Verdict::Unknown(r) if run.decided_by_rule().is_some() => {
            let (rule, _) = run.decided_by_rule().unwrap_or_default();
            format!("Undecided ({}): {}", escape(&rule), escape(r))
        }
        Verdict::Invalid => run
            .check
            .as_ref()
            .and_then(failure::headline)
            .map(|h| format!("{}. Details below.", escape(&h)))
            .unwrap_or_else(|| "A checker found a violation.".into()),
        Verdict::Unknown(r) => format!("Undecided: {}", escape(r)),
        Verdict::HarnessFailure(c) => format!(
            "The harness failed, so this is no verdict on the system. Cause: {}",
            escape(c)
        ),
        Verdict::NotChecked => {
            "No results.json: the run did not finish or was not checked yet.".into()
        }
    };
    format!(
        "<div class=\"verdict {}\" id=\"verdict\"><div class=\"word\">{}</div><div class=\"why\">{}</div></div>\n",
        run.verdict.class(),
        run.verdict.headline(),
        why
    )
}

fn meta_line(run: &RunData) -> String {
    let mut items = Vec::new();
    let mut add = |k: &str, v: String| {
        if !v.is_empty() && v != "—" {
            items.push(format!("<span><b>{k}</b> {}</span>", escape(&v)));
        }
    };
    let opts = &run.test.options;
    add("workload", run.test.workload.clone().unwrap_or_default());
    add(
        "nodes",
        opts.nodes.map(|n| n.to_string()).unwrap_or_default(),
    );
    add("nemesis", opts.nemesis.clone().unwrap_or_default());
    if let Some(s) = &opts.schedule {
        add("schedule", s.clone());
    }
    add(
        "seed",
        run.seed().map(|s| s.to_string()).unwrap_or_default(),
    );
    add("duration", secs(run.duration));
    add("operations", run.operations.len().to_string());
    add("faults", run.faults.len().to_string());
    format!("<div class=\"meta\">{}</div>\n", items.join(""))
}

fn test_section(run: &RunData) -> String {
    let mut s = String::from("<h2 id=\"test\">Test</h2>\n");
    if let Some(cmd) = run.reproduce_command() {
        let _ = writeln!(
            s,
            "<p>Reproduce (same options and seed):</p><pre id=\"reproduce\">{}</pre>",
            escape(&cmd)
        );
    }
    let opts = run.test.options.all();
    if !opts.is_empty() {
        s.push_str("<div class=\"card meta mono\">");
        for (k, v) in &opts {
            let _ = write!(s, "<span>{}={}</span>", escape(k), escape(&value_text(v)));
        }
        s.push_str("</div>\n");
    }
    s.push_str("<table>");
    let seed = run.seed().map(|s| s.to_string());
    let deployment = run
        .observed()
        .and_then(|o| o.deployment.as_ref())
        .map(|d| d.description.clone());
    for (label, v) in [
        ("seed", seed.as_ref()),
        ("git revision", run.test.git_revision.as_ref()),
        ("start time", run.test.start_time.as_ref()),
        ("deployment", deployment.as_ref()),
    ] {
        if let Some(v) = v {
            let _ = write!(
                s,
                "<tr><th>{label}</th><td class=\"mono\">{}</td></tr>",
                escape(v)
            );
        }
    }
    s.push_str("</table>\n");
    s
}

fn checkers_section(run: &RunData) -> String {
    let mut s = String::from("<h2 id=\"checkers\">Checkers</h2>\n");
    match &run.check {
        None => s.push_str("<p>No checker result.</p>\n"),
        Some(c) => {
            let keys = |v: checker::Validity| c.keys.iter().filter(|k| k.valid == v).count();
            let pill = c.valid.as_str();
            let _ = writeln!(
                s,
                "<table><tr><th>checker</th><th>model</th><th>verdict</th><th>operations</th><th>keys valid / invalid / unknown</th><th>time</th><th>note</th></tr>\
                 <tr><td>{}</td><td>{}</td><td><span class=\"pill {pill}\">{pill}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1} ms</td><td>{}</td></tr></table>",
                escape(&c.checker),
                escape(&c.model),
                c.op_count,
                if c.keys.is_empty() {
                    "—".to_string()
                } else {
                    format!(
                        "{} / {} / {}",
                        keys(checker::Validity::Valid),
                        keys(checker::Validity::Invalid),
                        keys(checker::Validity::Unknown)
                    )
                },
                c.elapsed_ms,
                escape(c.unknown_reason.as_deref().unwrap_or(""))
            );
        }
    }
    let rules = run.rule_findings();
    if !rules.is_empty() {
        s.push_str("<h3 id=\"rules\">Verdict rules</h3>\n<p>Besides the checker, a run is unknown when no operation, or no operation of some kind, succeeded, the cluster did not recover, final reads failed, a fault could not be injected or a node exited or panicked; it is invalid when a node raised a safety alarm.</p>\n<table><tr><th>rule</th><th>asks for</th><th>why</th></tr>\n");
        for f in &rules {
            let v = f.valid.as_str();
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td><span class=\"pill {v}\">{v}</span></td><td>{}</td></tr>",
                escape(&f.rule),
                escape(&f.reason)
            );
        }
        s.push_str("</table>\n");
    }
    let mut harness = Vec::new();
    if let Some(p) = run.results.as_ref().and_then(|r| r.node_panics) {
        harness.push(format!("node panics: <b>{p}</b>"));
    }
    if let Some(observed) = run.observed() {
        if let Some(r) = observed.recovered {
            harness.push(format!("recovered after heal: <b>{r}</b>"));
        }
        if let Some(f) = observed.final_reads {
            harness.push(format!("final reads: <b>{}/{}</b>", f.ok, f.total));
        }
        if observed.interrupted.is_some() {
            harness.push("<b>interrupted</b> (Ctrl-C)".into());
        }
    }
    if !harness.is_empty() {
        let _ = writeln!(s, "<p>Harness: {}</p>", harness.join(" · "));
    }
    if let Some(e) = &run.history_error {
        let _ = writeln!(s, "<p><b>History:</b> {}</p>", escape(e));
    }
    s
}

fn quantile_ms(sorted: &[u64], q: f64) -> String {
    if sorted.is_empty() {
        return "—".into();
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    format!("{:.1}", sorted[i.min(sorted.len() - 1)] as f64 / 1e6)
}

fn counts_section(run: &RunData) -> String {
    let mut by_f: BTreeMap<&str, ([usize; 3], Vec<u64>)> = BTreeMap::new();
    for o in &run.operations {
        let e = by_f.entry(o.f.as_str()).or_default();
        e.0[o.outcome.slot()] += 1;
        if o.outcome != Outcome::Info {
            if let Some(l) = o.latency() {
                e.1.push(l);
            }
        }
    }
    let mut s = String::from(
        "<h2 id=\"counts\">Operations</h2>\n<table><tr><th>function</th><th>ok</th><th>fail</th><th>info</th><th>total</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>\n",
    );
    let mut total = [0usize; 3];
    for (f, (c, lat)) in &mut by_f {
        lat.sort_unstable();
        for i in 0..3 {
            total[i] += c[i];
        }
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(f),
            c[0],
            c[1],
            c[2],
            c.iter().sum::<usize>(),
            quantile_ms(lat, 0.5),
            quantile_ms(lat, 0.99),
            quantile_ms(lat, 1.0)
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>all</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th colspan=\"3\">latency of ok and fail</th></tr></table>",
        total[0],
        total[1],
        total[2],
        total.iter().sum::<usize>()
    );
    s
}

fn legend(run: &RunData) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for o in Outcome::ALL {
        let _ = write!(
            s,
            "<span><span class=\"sw\" style=\"background:{}\"></span>{}</span>",
            hex(outcome_colour(o)),
            o.as_str()
        );
    }
    let mut kinds: Vec<&str> = run.faults.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in kinds {
        let _ = write!(
            s,
            "<span><span class=\"sw\" style=\"background:{}55;border:1px solid {0}\"></span>{} (fault period)</span>",
            hex(fault_colour(k)),
            escape(fault_label(k))
        );
    }
    s.push_str("</div>\n");
    s
}

fn faults_table(run: &RunData) -> String {
    if run.faults.is_empty() {
        return "<p>No faults were injected.</p>\n".into();
    }
    let mut s = String::from("<details><summary>Fault periods</summary><table><tr><th>fault</th><th>from</th><th>to</th><th>length</th><th>note</th></tr>\n");
    for f in &run.faults {
        let _ = writeln!(
            s,
            "<tr><td><span class=\"sw\" style=\"background:{}\"></span>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            hex(fault_colour(&f.kind)),
            escape(&f.label),
            secs(f.start),
            secs(f.end),
            secs(f.end - f.start),
            match (f.failed, f.note.as_str()) {
                (true, "") => "the nemesis reported an error".to_string(),
                (true, note) => format!("the nemesis reported an error; {}", escape(note)),
                (false, note) => escape(note),
            }
        );
    }
    s.push_str("</table></details>\n");
    s
}

fn plots_section(run: &RunData) -> Result<String, ReportError> {
    let mut s = String::from("<h2 id=\"plots\">Latency and throughput</h2>\n");
    s.push_str(&legend(run));
    for (id, svg) in [
        ("plot-latency", plots::latency_plot(run)?),
        ("plot-quantiles", plots::quantile_plot(run)?),
        ("plot-throughput", plots::throughput_plot(run)?),
    ] {
        let _ = writeln!(s, "<div class=\"card plot\" id=\"{id}\">{svg}</div>");
    }
    s.push_str(&faults_table(run));
    s.push_str(&crate::minority::section(run.results.as_ref()));
    Ok(s)
}

/// The whole `report.html`.
pub fn render(run: &RunData) -> Result<String, ReportError> {
    let name = run.name();
    let stamp = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let failure = run.check.as_ref().and_then(failure::section);
    let mut s = String::with_capacity(64 * 1024 + run.operations.len() * 80);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} — {}</title><script>{ERROR_CAPTURE}</script><style>{CSS}</style></head><body><main>\n",
        run.verdict.headline(),
        escape(&name)
    );
    let _ = writeln!(
        s,
        "<h1>{} <small style=\"font-weight:normal;color:#666\">{}</small></h1>",
        escape(&name),
        escape(&stamp)
    );
    let mut toc = vec![];
    if failure.is_some() {
        toc.push("<a href=\"#failure\">where it fails</a>");
    }
    toc.extend([
        "<a href=\"#test\">test</a>",
        "<a href=\"#checkers\">checkers</a>",
        "<a href=\"#counts\">operations</a>",
        "<a href=\"#plots\">plots</a>",
        "<a href=\"#timeline\">timeline</a>",
        "<a href=\"#logs\">node logs</a>",
        "<a href=\"../../index.html\">all runs</a>",
    ]);
    let _ = writeln!(s, "<nav class=\"toc\">{}</nav>", toc.join(""));
    s.push_str(&verdict_banner(run));
    s.push_str(&meta_line(run));
    if let Some(f) = &failure {
        s.push_str(f);
    }
    s.push_str(&test_section(run));
    s.push_str(&checkers_section(run));
    s.push_str(&counts_section(run));
    s.push_str(&plots_section(run)?);
    s.push_str(&timeline::section(run));
    s.push_str(&logs::section(run));
    let _ = write!(
        s,
        "<h2>Files</h2><p><a href=\"test.json\">test.json</a> · <a href=\"history.jsonl\">history.jsonl</a> · \
         <a href=\"results.json\">results.json</a> · <a href=\"nodes/\">nodes/</a></p>\n\
         <pre id=\"selfcheck\" hidden></pre>\n<script>{SELF_CHECK}</script>\n</main></body></html>\n"
    );
    Ok(s)
}
