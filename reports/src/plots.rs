//! The three plots, drawn with plotters as inline SVG: latency of every
//! operation, latency quantiles and throughput over time. Each shades the
//! fault periods so a latency spike lines up with the fault that caused it.
//!
//! Plotters' SVG backend writes `<text>` elements and lets the browser pick
//! the font, so no system font is needed to draw labels.

use std::collections::HashSet;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;
use crate::model::{FaultBand, Outcome, RunData};
use crate::style::{fault_colour, outcome_colour};

/// Size of every plot, in SVG pixels.
pub const SIZE: (u32, u32) = (1180, 300);

/// Seconds per bucket for quantiles and throughput: a round number giving
/// at most about 100 buckets, so lines stay readable for long runs.
pub fn bucket_width(duration_ns: u64) -> f64 {
    let target = duration_ns as f64 / 1e9 / 100.0;
    [
        0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|w| *w >= target)
    .unwrap_or(3600.0)
}

fn plot_err(plot: &'static str) -> impl Fn(String) -> ReportError {
    move |message| ReportError::Plot { plot, message }
}

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn x_max(run: &RunData) -> f64 {
    (run.duration as f64 / 1e9).max(1.0)
}

/// The common frame of every plot: caption, margins and label areas.
fn chart_frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: String,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, ("sans-serif", 20))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(62);
    b
}

/// The grid and axes of every plot: time on x, `y_desc` on y (labels
/// formatted by `y_label` when given).
fn draw_mesh<Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    y_desc: &str,
    y_label: Option<&dyn Fn(&f64) -> String>,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("time since start (s)")
        .x_label_formatter(&|v| secs_label(*v))
        .y_desc(y_desc)
        .light_line_style(RGBColor(238, 238, 238))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15));
    if let Some(f) = y_label {
        mesh.y_label_formatter(f);
    }
    mesh.draw().map_err(|e| e.to_string())
}

/// Shades each fault period over the full height and labels it at the top;
/// kinds get their own label row so overlapping faults stay readable.
fn draw_bands<Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultBand],
    y_lo: f64,
    y_hi: f64,
    y_at: impl Fn(f64) -> f64,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let mut kinds: Vec<&str> = faults.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    // Where the last label of each row ends, in data units: a label that
    // would overlap it is left out (the band and the fault table remain).
    let x_span = chart.x_range().end - chart.x_range().start;
    let per_char = x_span / (SIZE.0 as f64 - 80.0) * 8.0;
    let mut row_end = vec![f64::MIN; kinds.len()];
    for band in faults {
        let c = rgb(fault_colour(&band.kind));
        let (x0, x1) = (band.start as f64 / 1e9, band.end as f64 / 1e9);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, y_lo), (x1.max(x0 + 1e-3), y_hi)],
                c.mix(0.16).filled(),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, y_lo), (x0, y_hi)],
                c.mix(0.7).stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
        let row_i = kinds.iter().position(|k| *k == band.kind).unwrap_or(0);
        let row = row_i as f64;
        let label = if band.failed {
            format!("{} (failed)", band.label)
        } else {
            band.label.clone()
        };
        if x0 < row_end[row_i] {
            continue;
        }
        row_end[row_i] = x0 + per_char * (label.chars().count() as f64 + 1.0);
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (x0, y_at(0.015 + row * 0.07)),
                ("sans-serif", 15).into_font().color(&c),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Latency range of a log axis in ms: whole powers of ten around the data.
fn log_range(lat_ms: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for l in lat_ms {
        lo = lo.min(l.max(0.01));
        hi = hi.max(l);
    }
    if hi <= 0.0 {
        return (0.1, 1000.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf((hi * 1.05).log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// `50`, `2.5`: time-axis labels without a needless `.0`.
fn secs_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `1000`, `10`, `0.1`: log-axis labels without trailing zeros.
fn ms_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn log_y(lo: f64, hi: f64) -> impl Fn(f64) -> f64 {
    move |frac| lo * (hi / lo).powf(1.0 - frac)
}

fn finish(root: DrawingArea<SVGBackend<'_>, Shift>, plot: &'static str) -> Result<(), ReportError> {
    root.present().map_err(|e| plot_err(plot)(e.to_string()))
}

/// Every operation's latency at its invocation time, coloured by outcome.
/// Points that would land on the same 2-pixel cell are drawn once, which
/// keeps a 100,000-operation plot small without changing how it looks.
pub fn latency_plot(run: &RunData) -> Result<String, ReportError> {
    const PLOT: &str = "latency";
    let err = plot_err(PLOT);
    let (lo, hi) = log_range(
        run.operations
            .iter()
            .filter_map(|o| o.latency())
            .map(|l| l as f64 / 1e6),
    );
    let xm = x_max(run);
    let mut seen = HashSet::new();
    let mut points: [Vec<(f64, f64)>; 3] = Default::default();
    let (w, h) = (SIZE.0 as f64 / 2.0, SIZE.1 as f64 / 2.0);
    for o in &run.operations {
        let Some(l) = o.latency() else { continue };
        let x = o.start as f64 / 1e9;
        let y = (l as f64 / 1e6).max(lo);
        let cell = (
            (x / xm * w) as u32,
            ((y / lo).ln() / (hi / lo).ln() * h) as u32,
            o.outcome.slot() as u8,
        );
        if seen.insert(cell) {
            points[o.outcome.slot()].push((x, y));
        }
    }
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = chart_frame(&root, "Latency of every operation".into())
            .build_cartesian_2d(0f64..xm, (lo..hi).log_scale())
            .map_err(|e| err(e.to_string()))?;
        draw_mesh(&mut chart, "latency (ms, log)", Some(&|v| ms_label(*v))).map_err(&err)?;
        draw_bands(&mut chart, &run.faults, lo, hi, log_y(lo, hi)).map_err(&err)?;
        for outcome in Outcome::ALL {
            let c = rgb(outcome_colour(outcome));
            let radius = if outcome == Outcome::Ok { 2 } else { 3 };
            chart
                .draw_series(
                    points[outcome.slot()]
                        .iter()
                        .map(|p| Circle::new(*p, radius, c.mix(0.6).filled())),
                )
                .map_err(|e| err(e.to_string()))?
                .label(outcome.as_str())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        finish(root, PLOT)?;
    }
    Ok(out)
}

/// Completion latencies grouped into time buckets (by invocation time).
fn bucketed_latencies(run: &RunData, width: f64) -> Vec<(f64, Vec<f64>)> {
    let n = (x_max(run) / width).ceil() as usize + 1;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); n];
    for o in &run.operations {
        if let Some(l) = o.latency() {
            let b = ((o.start as f64 / 1e9) / width) as usize;
            buckets[b.min(n - 1)].push(l as f64 / 1e6);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, mut v)| {
            v.sort_by(|a, b| a.total_cmp(b));
            ((i as f64 + 0.5) * width, v)
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50, p95, p99 and max latency per time bucket.
pub fn quantile_plot(run: &RunData) -> Result<String, ReportError> {
    const PLOT: &str = "latency quantiles";
    let err = plot_err(PLOT);
    let width = bucket_width(run.duration);
    let buckets = bucketed_latencies(run, width);
    let (lo, hi) = log_range(buckets.iter().flat_map(|(_, v)| [v[0], v[v.len() - 1]]));
    let xm = x_max(run);
    let series: [(&str, f64, RGBColor); 4] = [
        ("p50", 0.5, RGBColor(31, 119, 180)),
        ("p95", 0.95, RGBColor(44, 160, 44)),
        ("p99", 0.99, RGBColor(255, 127, 14)),
        ("max", 1.0, RGBColor(120, 40, 40)),
    ];
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = chart_frame(&root, format!("Latency quantiles per {width} s"))
            .build_cartesian_2d(0f64..xm, (lo..hi).log_scale())
            .map_err(|e| err(e.to_string()))?;
        draw_mesh(&mut chart, "latency (ms, log)", Some(&|v| ms_label(*v))).map_err(&err)?;
        draw_bands(&mut chart, &run.faults, lo, hi, log_y(lo, hi)).map_err(&err)?;
        for (name, q, c) in series {
            let pts: Vec<(f64, f64)> = buckets
                .iter()
                .map(|(x, v)| (*x, quantile(v, q).max(lo)))
                .collect();
            // A bucket with no completions breaks the line: interpolating
            // across it would hide exactly the stall a fault causes.
            let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
            for p in pts {
                match segments.last_mut() {
                    Some(seg) if seg.last().is_some_and(|l| p.0 - l.0 < width * 1.5) => seg.push(p),
                    _ => segments.push(vec![p]),
                }
            }
            for seg in segments.iter().filter(|s| s.len() == 1) {
                chart
                    .draw_series(std::iter::once(Circle::new(seg[0], 2, c.filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
            chart
                .draw_series(
                    segments
                        .into_iter()
                        .filter(|s| s.len() > 1)
                        .map(|s| PathElement::new(s, c.stroke_width(2))),
                )
                .map_err(|e| err(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        finish(root, PLOT)?;
    }
    Ok(out)
}

/// Completions per second in each time bucket, one line per outcome.
pub fn throughput_plot(run: &RunData) -> Result<String, ReportError> {
    const PLOT: &str = "throughput";
    let err = plot_err(PLOT);
    let width = bucket_width(run.duration);
    let xm = x_max(run);
    let n = (xm / width).ceil() as usize + 1;
    let mut counts = vec![[0usize; 3]; n];
    for o in &run.operations {
        if let Some(e) = o.end {
            let b = ((e as f64 / 1e9) / width) as usize;
            counts[b.min(n - 1)][o.outcome.slot()] += 1;
        }
    }
    let peak = counts
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0) as f64
        / width;
    let hi = (peak * 1.25).max(1.0);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = chart_frame(
            &root,
            format!("Throughput (completions per second, {width} s buckets)"),
        )
        .build_cartesian_2d(0f64..xm, 0f64..hi)
        .map_err(|e| err(e.to_string()))?;
        draw_mesh(&mut chart, "ops/s", None).map_err(&err)?;
        draw_bands(&mut chart, &run.faults, 0.0, hi, |frac| hi * (1.0 - frac)).map_err(&err)?;
        for outcome in Outcome::ALL {
            let c = rgb(outcome_colour(outcome));
            // Buckets past the last completion are left out, not drawn as zero.
            let last = counts
                .iter()
                .rposition(|c| c.iter().any(|n| *n > 0))
                .unwrap_or(0);
            let pts: Vec<(f64, f64)> = counts[..=last]
                .iter()
                .enumerate()
                .map(|(i, c)| ((i as f64 + 0.5) * width, c[outcome.slot()] as f64 / width))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(outcome.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        finish(root, PLOT)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Operation;
    use std::path::Path;

    fn run_with(ops: Vec<Operation>, faults: Vec<FaultBand>, duration: u64) -> RunData {
        let mut run = RunData::from_parts(
            Path::new("/x"),
            crate::TestFile::default(),
            None,
            &checker::History::default(),
        );
        run.operations = ops;
        run.faults = faults;
        run.duration = duration;
        run
    }

    fn op(i: usize, start: u64, lat: u64, outcome: Outcome) -> Operation {
        Operation {
            index: i,
            complete_index: Some(i + 1),
            process: (i % 5) as u64,
            f: "read".into(),
            start,
            end: Some(start + lat),
            outcome,
            detail: String::new(),
        }
    }

    #[test]
    fn bucket_widths_are_round() {
        assert_eq!(bucket_width(20_000_000_000), 0.2);
        assert_eq!(bucket_width(600_000_000_000), 10.0);
        assert_eq!(bucket_width(0), 0.1);
    }

    #[test]
    fn plots_are_svg_with_fault_bands_labelled_and_coloured() {
        let ops: Vec<Operation> = (0..200)
            .map(|i| {
                let o = if i % 17 == 0 {
                    Outcome::Info
                } else {
                    Outcome::Ok
                };
                op(
                    i,
                    i as u64 * 50_000_000,
                    2_000_000 + (i as u64 % 7) * 1_000_000,
                    o,
                )
            })
            .collect();
        let faults = vec![FaultBand {
            kind: "partition".into(),
            label: "partition one".into(),
            start: 2_000_000_000,
            end: 5_000_000_000,
            failed: false,
            note: String::new(),
        }];
        let run = run_with(ops, faults, 10_000_000_000);
        for svg in [
            latency_plot(&run).unwrap(),
            quantile_plot(&run).unwrap(),
            throughput_plot(&run).unwrap(),
        ] {
            assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
            assert!(svg.contains("partition one"));
            // The band uses the partition colour.
            assert!(svg.to_lowercase().contains("#4678c8"), "no band colour");
        }
        let q = quantile_plot(&run).unwrap();
        for name in ["p50", "p95", "p99", "max"] {
            assert!(
                q.contains(&format!(">\n{name}\n</text>")),
                "legend lacks {name}"
            );
        }
    }

    #[test]
    fn latency_points_are_deduplicated_per_pixel_cell() {
        let ops: Vec<Operation> = (0..20_000)
            .map(|i| op(i, 1_000_000_000, 5_000_000, Outcome::Ok))
            .collect();
        let run = run_with(ops, vec![], 2_000_000_000);
        let svg = latency_plot(&run).unwrap();
        assert!(
            svg.matches("<circle").count() < 10,
            "identical points are drawn once"
        );
    }

    #[test]
    fn empty_runs_still_draw() {
        let run = run_with(vec![], vec![], 0);
        assert!(latency_plot(&run).unwrap().contains("<svg"));
        assert!(quantile_plot(&run).unwrap().contains("<svg"));
        assert!(throughput_plot(&run).unwrap().contains("<svg"));
    }
}
