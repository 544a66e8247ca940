//! Small helpers for writing HTML by hand: escaping, and embedding JSON in
//! a script element without letting it close the element early.

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` element: `</` can never
/// appear, so the data cannot end the element or inject markup.
pub fn script_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--")
}

/// Seconds with one decimal, for ns times.
pub fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

/// A link that makes the timeline jump to the operation invoked at history
/// index `index`.
pub fn op_link(index: usize, text: &str) -> String {
    format!(
        "<a class=\"oplink\" href=\"#timeline\" data-op=\"{index}\">{}</a>",
        escape(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_script_ends() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let j = script_json(&serde_json::json!({"d": "</script><b>"}));
        assert!(!j.contains("</"));
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["d"], "</script><b>");
    }
}
