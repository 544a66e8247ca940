//! The timeline: every operation as a bar on its process's lane along a
//! time axis, coloured by outcome, with fault periods shaded and hover
//! details. The operations are embedded as compact columns and drawn on a
//! canvas; only the visible lanes and time range are drawn on each scroll,
//! so 100,000 operations stay responsive. Links with `data-op` jump to an
//! operation (see [`crate::html::op_link`]).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::html::script_json;
use crate::model::RunData;
use crate::style::{fault_colour, hex, outcome_colour};

/// The data the script draws: parallel arrays (times in µs), which are a
/// fraction of the size of one object per operation.
pub fn data(run: &RunData) -> Value {
    let mut order: Vec<usize> = (0..run.operations.len()).collect();
    order.sort_by_key(|&i| (run.operations[i].start, run.operations[i].index));
    let (lane_of, lanes) = pack_lanes(run);
    let mut fns: Vec<&str> = run.operations.iter().map(|o| o.f.as_str()).collect();
    fns.sort_unstable();
    fns.dedup();
    let n = order.len();
    let (mut s, mut e, mut l, mut p, mut k, mut f, mut i, mut d) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for &j in &order {
        let o = &run.operations[j];
        s.push(o.start / 1000);
        e.push(o.end.map_or(-1, |t| (t / 1000) as i64));
        l.push(lane_of.get(&o.process).copied().unwrap_or(0));
        p.push(o.process);
        k.push(o.outcome.slot());
        f.push(fns.binary_search(&o.f.as_str()).unwrap_or(0));
        i.push(o.index);
        d.push(o.detail.chars().take(160).collect::<String>());
    }
    let faults: Vec<Value> = run
        .faults
        .iter()
        .map(|b| {
            json!([
                b.start / 1000,
                b.end / 1000,
                b.label,
                hex(fault_colour(&b.kind))
            ])
        })
        .collect();
    json!({
        "dur": run.duration / 1000,
        "lanes": lanes,
        "fns": fns,
        "colours": crate::model::Outcome::ALL.iter().map(|o| hex(outcome_colour(*o))).collect::<Vec<_>>(),
        "s": s, "e": e, "l": l, "p": p, "k": k, "f": f, "i": i, "d": d,
        "faults": faults,
    })
}

/// Packs processes into lanes. A process retired after an indeterminate
/// operation never runs again and its successor takes a new id, so one
/// lane per id would leave most lanes empty most of the time; instead a
/// process reuses the first lane whose previous process had finished.
/// Returns each process's lane and, per lane, `[start µs, process]` of its
/// processes in time order (for the lane labels).
pub fn pack_lanes(run: &RunData) -> (HashMap<u64, usize>, Vec<Vec<[u64; 2]>>) {
    let mut span: HashMap<u64, (u64, u64)> = HashMap::new();
    for o in &run.operations {
        let end = o.end.unwrap_or(run.duration).max(o.start);
        let e = span.entry(o.process).or_insert((o.start, end));
        e.0 = e.0.min(o.start);
        e.1 = e.1.max(end);
    }
    let mut procs: Vec<(u64, u64, u64)> = span.into_iter().map(|(p, (a, b))| (a, b, p)).collect();
    procs.sort_unstable();
    let mut lane_end: Vec<u64> = Vec::new();
    let mut lanes: Vec<Vec<[u64; 2]>> = Vec::new();
    let mut lane_of = HashMap::new();
    for (start, end, p) in procs {
        let lane = match lane_end.iter().position(|e| *e < start) {
            Some(l) => l,
            None => {
                lane_end.push(0);
                lanes.push(Vec::new());
                lane_end.len() - 1
            }
        };
        lane_end[lane] = end;
        lanes[lane].push([start / 1000, p]);
        lane_of.insert(p, lane);
    }
    (lane_of, lanes)
}

/// The timeline section: controls, the scrolling canvas and its data.
pub fn section(run: &RunData) -> String {
    let processes = {
        let mut p: Vec<u64> = run.operations.iter().map(|o| o.process).collect();
        p.sort_unstable();
        p.dedup();
        p.len()
    };
    let lanes = pack_lanes(run).1.len();
    let mut s = String::from("<h2 id=\"timeline\">Timeline</h2>\n");
    s.push_str(&format!(
        "<div class=\"tl-tools\"><button type=\"button\" id=\"tl-in\" title=\"zoom in (ctrl+wheel)\">+</button>\
         <button type=\"button\" id=\"tl-out\" title=\"zoom out\">−</button>\
         <button type=\"button\" id=\"tl-fit\">fit</button>\
         <span>{} operations by {} processes on {} lanes (a retired process's lane is reused by a later one); hover a bar for details, ctrl+wheel zooms, scroll pans.</span>\
         <span id=\"tl-status\" class=\"mono\"></span></div>\n",
        run.operations.len(),
        processes,
        lanes
    ));
    s.push_str(&format!(
        "<div class=\"tl-scroll\" id=\"tl-scroll\" style=\"height:{}px\"><canvas id=\"tl-canvas\"></canvas><div id=\"tl-sizer\"></div></div>\n\
         <div class=\"tl-tip\" id=\"tl-tip\"></div>\n",
        // Tall enough for every lane up to a screenful, plus axis and scrollbar.
        (lanes * 14 + 48).clamp(140, 520)
    ));
    s.push_str(&format!(
        "<script type=\"application/json\" id=\"tl-data\">{}</script>\n<script>{}</script>\n",
        script_json(&data(run)),
        SCRIPT
    ));
    s
}

/// Draws the visible part of the timeline; see the module docs.
const SCRIPT: &str = r#"
(function(){
  const D = JSON.parse(document.getElementById('tl-data').textContent);
  const N = D.s.length, LANE_H = 14, TOP = 24, LEFT = 58;
  const scroll = document.getElementById('tl-scroll'), cv = document.getElementById('tl-canvas');
  const sizer = document.getElementById('tl-sizer'), tip = document.getElementById('tl-tip');
  const status = document.getElementById('tl-status');
  const laneOps = D.lanes.map(function(){ return []; });
  const byIndex = new Map();
  for (let j = 0; j < N; j++) { laneOps[D.l[j]].push(j); byIndex.set(D.i[j], j); }
  const dur = Math.max(D.dur, 1);
  let scale = 1, fitScale = 1, highlight = -1, drawn = 0, pending = false;
  function laneProcess(l, t) {
    const ps = D.lanes[l]; let lo = 0, hi = ps.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (ps[m][0] <= t) lo = m + 1; else hi = m; }
    return ps[Math.max(0, lo - 1)][1];
  }
  function endOf(j) { return D.e[j] < 0 ? dur : D.e[j]; }
  function lowerBound(a, x) { let lo = 0, hi = a.length; while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; } return lo; }
  function layout() {
    const w = scroll.clientWidth, h = scroll.clientHeight, dpr = window.devicePixelRatio || 1;
    cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
    cv.style.width = w + 'px'; cv.style.height = h + 'px';
    sizer.style.width = Math.ceil(LEFT + dur * scale + 20) + 'px';
    sizer.style.height = Math.max(0, TOP + D.lanes.length * LANE_H + 8 - h) + 'px';
    draw();
  }
  function fit() { fitScale = Math.max(1e-9, (scroll.clientWidth - LEFT - 20) / dur); scale = fitScale; layout(); scroll.scrollLeft = 0; }
  function niceStep(us) { const p = Math.pow(10, Math.floor(Math.log10(us))); for (const m of [1, 2, 5, 10]) if (m * p >= us) return m * p; return 10 * p; }
  function draw() {
    pending = false;
    const ctx = cv.getContext('2d'), dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const w = cv.clientWidth, h = cv.clientHeight, sx = scroll.scrollLeft, sy = scroll.scrollTop;
    const t0 = sx / scale, t1 = (sx + w - LEFT) / scale;
    const X = function(t) { return LEFT + t * scale - sx; };
    const Y = function(l) { return TOP + l * LANE_H - sy; };
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, h);
    const lane0 = Math.max(0, Math.floor(sy / LANE_H)), lane1 = Math.min(D.lanes.length, Math.ceil((sy + h - TOP) / LANE_H) + 1);
    for (let l = lane0; l < lane1; l++) if (l % 2) { ctx.fillStyle = '#f6f7f9'; ctx.fillRect(LEFT, Y(l), w, LANE_H); }
    for (const f of D.faults) {
      if (f[1] < t0 || f[0] > t1) continue;
      ctx.fillStyle = f[3] + '30'; ctx.fillRect(X(f[0]), TOP, Math.max(1, (f[1] - f[0]) * scale), h - TOP);
      ctx.fillStyle = f[3]; ctx.fillRect(X(f[0]), TOP, 1, h - TOP);
    }
    drawn = 0;
    const to = lowerBound(D.s, t1 + 1);
    // Zoomed out, many bars share a pixel: a bar ending within a pixel of
    // the last one drawn in its lane and colour adds nothing and is skipped.
    const last = new Float64Array(D.lanes.length * 3).fill(-1e9);
    for (let k = 0; k < 3; k++) {
      ctx.fillStyle = D.colours[k];
      for (let j = 0; j < to; j++) {
        if (D.k[j] !== k) continue;
        const l = D.l[j]; if (l < lane0 || l >= lane1) continue;
        const e = endOf(j); if (e < t0) continue;
        const xa = X(D.s[j]), xb = Math.max(X(e), xa + 1), slot = l * 3 + k;
        if (xb < last[slot] + 1) continue;
        ctx.fillRect(xa, Y(l) + 2, xb - xa, LANE_H - 4);
        last[slot] = xb;
        drawn++;
      }
    }
    if (highlight >= 0) {
      const xa = X(D.s[highlight]), xb = X(endOf(highlight)), y = Y(D.l[highlight]);
      ctx.strokeStyle = '#000'; ctx.lineWidth = 2; ctx.strokeRect(xa - 3, y, Math.max(1, xb - xa) + 6, LANE_H);
    }
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, LEFT, h); ctx.fillRect(0, 0, w, TOP);
    ctx.font = '11px sans-serif'; ctx.textBaseline = 'middle'; ctx.fillStyle = '#333';
    for (let l = lane0; l < lane1; l++) { const y = Y(l) + LANE_H / 2; if (y > TOP) ctx.fillText('p' + laneProcess(l, t0), 4, y); }
    const step = niceStep(90 / scale);
    ctx.strokeStyle = '#bbb'; ctx.lineWidth = 1;
    for (let t = Math.floor(t0 / step) * step; t <= t1; t += step) {
      const x = X(t); if (x < LEFT) continue;
      ctx.beginPath(); ctx.moveTo(x + 0.5, TOP - 6); ctx.lineTo(x + 0.5, TOP); ctx.stroke();
      ctx.fillText((t / 1e6).toFixed(step >= 1e6 ? 0 : step >= 1e5 ? 1 : step >= 1e4 ? 2 : 3) + ' s', x + 2, 9);
    }
    let labelEnd = -1e9;
    for (const f of D.faults) {
      if (f[1] < t0 || f[0] > t1) continue;
      const x = Math.max(LEFT, X(f[0])) + 3, wl = ctx.measureText(f[2]).width;
      if (x < labelEnd) continue; // keep labels from overlapping when zoomed out
      ctx.fillStyle = f[3]; ctx.fillText(f[2], x, TOP - 7); labelEnd = x + wl + 6;
    }
  }
  function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
  function zoomAt(factor, cx) {
    const t = (cx - LEFT + scroll.scrollLeft) / scale;
    scale = Math.min(Math.max(scale * factor, fitScale), 5);
    layout(); scroll.scrollLeft = t * scale - (cx - LEFT); draw();
  }
  function hit(ev) {
    const r = cv.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    if (mx < LEFT || my < TOP) return -1;
    const lane = Math.floor((my - TOP + scroll.scrollTop) / LANE_H);
    if (lane < 0 || lane >= D.lanes.length) return -1;
    const t = (mx - LEFT + scroll.scrollLeft) / scale, slack = 3 / scale, ops = laneOps[lane];
    let lo = 0, hi = ops.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (D.s[ops[m]] <= t + slack) lo = m + 1; else hi = m; }
    for (let q = lo - 1; q >= 0 && q >= lo - 3; q--) { const j = ops[q]; if (endOf(j) + slack >= t) return j; }
    return -1;
  }
  function describe(j) {
    const out = ['ok', 'fail', 'info'][D.k[j]], s = D.s[j] / 1e6;
    const end = D.e[j] < 0 ? 'never completed' : (D.e[j] / 1e6).toFixed(3) + ' s (' + ((D.e[j] - D.s[j]) / 1000).toFixed(1) + ' ms)';
    return 'p' + D.p[j] + ' ' + D.fns[D.f[j]] + ' → ' + out + '   op #' + D.i[j] + '\n' + s.toFixed(3) + ' s – ' + end + '\n' + D.d[j];
  }
  cv.addEventListener('mousemove', function(ev) {
    const j = hit(ev);
    if (j < 0) { tip.style.display = 'none'; return; }
    tip.textContent = describe(j); tip.style.display = 'block';
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 420) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
  });
  cv.addEventListener('mouseleave', function() { tip.style.display = 'none'; });
  scroll.addEventListener('scroll', redraw, { passive: true });
  scroll.addEventListener('wheel', function(ev) {
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    zoomAt(ev.deltaY < 0 ? 1.25 : 0.8, ev.clientX - cv.getBoundingClientRect().left);
  }, { passive: false });
  document.getElementById('tl-in').addEventListener('click', function() { zoomAt(2, LEFT + (scroll.clientWidth - LEFT) / 2); });
  document.getElementById('tl-out').addEventListener('click', function() { zoomAt(0.5, LEFT + (scroll.clientWidth - LEFT) / 2); });
  document.getElementById('tl-fit').addEventListener('click', fit);
  window.addEventListener('resize', function() { const keep = scale === fitScale; if (keep) fit(); else layout(); });
  function focus(index) {
    const j = byIndex.get(index);
    if (j === undefined) { status.textContent = 'operation #' + index + ' is not a client operation'; return false; }
    highlight = j;
    const span = Math.max(4 * (endOf(j) - D.s[j]), 2e6);
    scale = Math.min(Math.max((scroll.clientWidth - LEFT - 20) / span, fitScale), 5);
    layout();
    scroll.scrollLeft = Math.max(0, (D.s[j] + (endOf(j) - D.s[j]) / 2) * scale - (scroll.clientWidth - LEFT) / 2);
    scroll.scrollTop = Math.max(0, D.l[j] * LANE_H - scroll.clientHeight / 2);
    draw();
    status.textContent = describe(j).split('\n')[0];
    document.getElementById('timeline').scrollIntoView();
    return true;
  }
  document.addEventListener('click', function(ev) {
    const a = ev.target.closest && ev.target.closest('a.oplink');
    if (!a) return;
    ev.preventDefault(); focus(Number(a.dataset.op));
  });
  window.reportTimeline = { draw: draw, focus: focus, drawn: function() { return drawn; }, scroll: scroll, ops: N };
  fit();
  const m = /^#op-(\d+)$/.exec(location.hash); if (m) focus(Number(m[1]));
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FaultBand, Operation, Outcome};
    use std::path::Path;

    #[test]
    fn data_is_columnar_sorted_and_safe_to_embed() {
        let mut run = RunData::from_parts(
            Path::new("/x"),
            crate::TestFile::default(),
            None,
            &checker::History::default(),
        );
        let op = |index, process, start, end, outcome, detail: &str| Operation {
            index,
            complete_index: None,
            process,
            f: "read".into(),
            start,
            end,
            outcome,
            detail: detail.into(),
        };
        run.operations = vec![
            op(4, 7, 5_000, Some(9_000), Outcome::Ok, "</script>"),
            op(1, 2, 1_000, None, Outcome::Info, ""),
        ];
        run.faults = vec![FaultBand {
            kind: "kill".into(),
            label: "kill n1".into(),
            start: 0,
            end: 2_000,
            failed: false,
            note: String::new(),
        }];
        run.duration = 10_000;
        let d = data(&run);
        assert_eq!(d["s"], json!([1, 5]));
        assert_eq!(d["e"], json!([-1, 9]));
        assert_eq!(d["lanes"], json!([[[1, 2]], [[5, 7]]]));
        assert_eq!(d["p"], json!([2, 7]));
        assert_eq!(d["l"], json!([0, 1]));
        assert_eq!(d["i"], json!([1, 4]));
        assert_eq!(d["faults"][0][2], "kill n1");
        // A process that starts after another ended reuses its lane.
        run.operations
            .push(op(9, 12, 11_000, Some(12_000), Outcome::Ok, ""));
        run.duration = 20_000;
        run.operations[1].end = Some(3_000);
        let (lane_of, lanes) = pack_lanes(&run);
        assert_eq!(lanes.len(), 1, "sequential processes share one lane");
        assert_eq!(lane_of[&12], lane_of[&2]);
        let html = section(&run);
        assert!(
            !html.contains("</script><"),
            "detail text must not close the data element"
        );
        assert!(html.contains("id=\"tl-canvas\""));
    }
}
