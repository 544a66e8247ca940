//! Colours and the stylesheet shared by the report and the index, so an
//! outcome or fault kind has the same colour in every plot and view. Fault
//! kinds' colours and labels come from the fault registry; no kind is
//! named here.

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

/// Colour of an outcome: ok green, fail red, info amber.
pub fn outcome_colour(o: crate::model::Outcome) -> Rgb {
    match o {
        crate::model::Outcome::Ok => (60, 150, 80),
        crate::model::Outcome::Fail => (214, 69, 65),
        crate::model::Outcome::Info => (232, 160, 20),
    }
}

/// Colour of the bands of kinds the fault registry does not know (a run
/// written by another tool or another version).
const UNKNOWN_FAULT: Rgb = (130, 130, 130);

/// Colour of a fault kind's bands, as its module in the fault registry
/// ([`nemesis::faults`]) declares it.
pub fn fault_colour(kind: &str) -> Rgb {
    nemesis::style_of(kind).map_or(UNKNOWN_FAULT, |s| s.colour)
}

/// The word for a fault kind's periods in legends and band labels, as its
/// module declares it; the kind's own name when the registry does not know
/// it.
pub fn fault_label(kind: &str) -> &str {
    nemesis::style_of(kind).map_or(kind, |s| s.label)
}

/// `#rrggbb`.
pub fn hex((r, g, b): Rgb) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The stylesheet, inlined into every page.
pub const CSS: &str = r#"
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#f4f5f7}
main{max-width:1240px;margin:0 auto;padding:12px 20px 60px}
h1{font-size:20px;margin:6px 0}
h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d5d9de;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}
a{color:#1f5fa8}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#fff;border:1px solid #dde1e6;padding:8px;overflow:auto;max-height:360px}
#reproduce{white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;background:#fff;margin:4px 0}
th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;margin:10px 0}
.verdict{border-radius:8px;padding:14px 18px;color:#fff;margin:8px 0}
.verdict .word{font-size:30px;font-weight:800;letter-spacing:.5px}
.verdict .why{font-size:15px;margin-top:4px}
.verdict.valid{background:#2f8f4e}.verdict.invalid{background:#c0392b}
.verdict.unknown{background:#d68910}.verdict.failure{background:#5d6d7e}.verdict.unchecked{background:#7f8c8d}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:700;color:#fff}
.pill.valid{background:#2f8f4e}.pill.invalid{background:#c0392b}.pill.unknown{background:#d68910}.pill.failure{background:#5d6d7e}.pill.unchecked{background:#7f8c8d}
.meta{display:flex;flex-wrap:wrap;gap:6px 22px;color:#444}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12.5px;margin:2px 0 6px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.plot svg{max-width:100%;height:auto;display:block}
.explain svg{max-width:100%;height:auto}
.scrollx{overflow-x:auto}
.finding td.text{font-family:ui-monospace,Menlo,monospace;font-size:12px;white-space:pre-wrap;word-break:break-all}
.kind-panic{color:#c0392b;font-weight:700}.kind-error{color:#b9770e}
.tl-tools{display:flex;gap:8px;align-items:center;margin:4px 0;flex-wrap:wrap}
.tl-tools button{font:inherit;padding:1px 9px}
.tl-scroll{position:relative;overflow:auto;height:440px;border:1px solid #cfd4da;background:#fff}
.tl-scroll canvas{position:sticky;left:0;top:0;display:block}
.tl-tip{position:fixed;pointer-events:none;background:#1d232a;color:#fff;padding:5px 8px;border-radius:4px;font-size:12px;max-width:520px;z-index:10;display:none;white-space:pre-wrap}
.anomaly{border-left:4px solid #c0392b}
.steps li{margin:2px 0}
nav.toc{font-size:13px;margin:4px 0 0}nav.toc a{margin-right:12px}
input.filter{font:inherit;padding:3px 6px;width:280px}
"#;
