//! A reader and writer for EDN, the notation of Jepsen's `history.edn`.
//!
//! Written here rather than borrowed because the importer needs positions
//! (line and column) for every error and must accept what Jepsen actually
//! writes: maps spread over lines, `;` comments, commas as whitespace,
//! `#_` discards, tagged literals (`#inst`, records such as
//! `#jepsen.history.Op{...}`), sets, characters and big numbers.

use std::fmt::Write as _;

use serde_json::Value;
use thiserror::Error;

/// An EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer too large for 64 bits, or with an `N` suffix, as text.
    BigInt(String),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A character such as `\a` or `\newline`.
    Char(char),
    /// A keyword, without its leading colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `( ... )`
    List(Vec<Edn>),
    /// `[ ... ]`
    Vector(Vec<Edn>),
    /// `{ ... }`, in source order.
    Map(Vec<(Edn, Edn)>),
    /// `#{ ... }`
    Set(Vec<Edn>),
    /// `#tag value`
    Tagged(String, Box<Edn>),
}

/// A syntax error with its position.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct EdnError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

impl Edn {
    /// Look up a keyword key in a map (`None` for other values).
    pub fn get(&self, keyword: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Edn::Keyword(name) if name == keyword => Some(v),
                _ => None,
            }),
            Edn::Tagged(_, inner) => inner.get(keyword),
            _ => None,
        }
    }

    /// Convert to JSON: keywords and symbols become strings, lists/vectors/sets
    /// become arrays, maps become objects with stringified keys, tags are dropped.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::BigInt(s) => Value::String(s.clone()),
            Edn::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                Value::Array(items.iter().map(Edn::to_json).collect())
            }
            Edn::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            Edn::Tagged(_, inner) => inner.to_json(),
        }
    }

    /// Convert JSON to EDN: strings stay strings, objects become maps with
    /// keyword keys.
    pub fn from_json(v: &Value) -> Edn {
        match v {
            Value::Null => Edn::Nil,
            Value::Bool(b) => Edn::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Edn::Int(i),
                None => match n.as_u64() {
                    Some(u) => Edn::BigInt(u.to_string()),
                    None => Edn::Float(n.as_f64().unwrap_or(0.0)),
                },
            },
            Value::String(s) => Edn::Str(s.clone()),
            Value::Array(items) => Edn::Vector(items.iter().map(Edn::from_json).collect()),
            Value::Object(m) => Edn::Map(
                m.iter()
                    .map(|(k, v)| (Edn::Keyword(k.clone()), Edn::from_json(v)))
                    .collect(),
            ),
        }
    }
}

impl std::fmt::Display for Edn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        write_edn(self, &mut s);
        f.write_str(&s)
    }
}

fn write_seq(items: &[Edn], open: &str, close: &str, out: &mut String) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_edn(item, out);
    }
    out.push_str(close);
}

/// Append the EDN text of `v` to `out`.
pub fn write_edn(v: &Edn, out: &mut String) {
    match v {
        Edn::Nil => out.push_str("nil"),
        Edn::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Edn::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Edn::BigInt(s) => {
            out.push_str(s);
            out.push('N');
        }
        Edn::Float(x) => {
            if x.is_finite() {
                let _ = write!(out, "{x:?}");
            } else if x.is_nan() {
                out.push_str("##NaN");
            } else if *x > 0.0 {
                out.push_str("##Inf");
            } else {
                out.push_str("##-Inf");
            }
        }
        Edn::Str(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Edn::Char(c) => match c {
            '\n' => out.push_str("\\newline"),
            ' ' => out.push_str("\\space"),
            '\t' => out.push_str("\\tab"),
            '\r' => out.push_str("\\return"),
            c => {
                out.push('\\');
                out.push(*c);
            }
        },
        Edn::Keyword(k) => {
            out.push(':');
            out.push_str(k);
        }
        Edn::Symbol(s) => out.push_str(s),
        Edn::List(items) => write_seq(items, "(", ")", out),
        Edn::Vector(items) => write_seq(items, "[", "]", out),
        Edn::Set(items) => write_seq(items, "#{", "}", out),
        Edn::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_edn(k, out);
                out.push(' ');
                write_edn(v, out);
            }
            out.push('}');
        }
        Edn::Tagged(tag, inner) => {
            out.push('#');
            out.push_str(tag);
            out.push(' ');
            write_edn(inner, out);
        }
    }
}

/// Parse every top-level form of `text`, each with the line it starts on.
pub fn parse_all(text: &str) -> Result<Vec<(Edn, usize)>, EdnError> {
    let mut p = Parser::new(text);
    let mut out = Vec::new();
    loop {
        p.skip_ws()?;
        if p.peek().is_none() {
            return Ok(out);
        }
        let line = p.line;
        out.push((p.value()?, line));
    }
}

/// Parse exactly one form (trailing whitespace and comments allowed).
pub fn parse_one(text: &str) -> Result<Edn, EdnError> {
    let mut p = Parser::new(text);
    p.skip_ws()?;
    let v = p.value()?;
    p.skip_ws()?;
    if p.peek().is_some() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
    depth: usize,
}

/// Deeper nesting than this is rejected instead of overflowing the stack.
const MAX_DEPTH: usize = 512;

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            chars: text.chars().peekable(),
            line: 1,
            column: 1,
            depth: 0,
        }
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        EdnError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn skip_ws(&mut self) -> Result<(), EdnError> {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn token(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if is_delimiter(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn value(&mut self) -> Result<Edn, EdnError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn seq(&mut self, close: char) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => {
                    return Err(self.error(format!("unterminated collection, expected '{close}'")))
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(')' | ']' | '}') => {
                    return Err(self.error(format!("mismatched delimiter, expected '{close}'")))
                }
                Some(_) => {
                    if let Some(v) = self.value_or_discard()? {
                        items.push(v);
                    }
                }
            }
        }
    }

    /// A value, or `None` for a `#_` discard (which may end a collection).
    fn value_or_discard(&mut self) -> Result<Option<Edn>, EdnError> {
        let mut ahead = self.chars.clone();
        if ahead.next() == Some('#') && ahead.next() == Some('_') {
            self.bump();
            self.bump();
            self.skip_ws()?;
            self.value()?;
            return Ok(None);
        }
        self.value().map(Some)
    }

    fn value_inner(&mut self) -> Result<Edn, EdnError> {
        self.skip_ws()?;
        let c = match self.peek() {
            Some(c) => c,
            None => return Err(self.error("unexpected end of input")),
        };
        match c {
            '(' => {
                self.bump();
                Ok(Edn::List(self.seq(')')?))
            }
            '[' => {
                self.bump();
                Ok(Edn::Vector(self.seq(']')?))
            }
            '{' => {
                self.bump();
                self.map_body()
            }
            ')' | ']' | '}' => Err(self.error(format!("unexpected '{c}'"))),
            '"' => self.string(),
            '\\' => self.character(),
            ':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return Err(self.error("empty keyword"));
                }
                Ok(Edn::Keyword(name))
            }
            '#' => self.dispatch(),
            _ => self.atom(),
        }
    }

    fn map_body(&mut self) -> Result<Edn, EdnError> {
        let items = self.seq('}')?;
        if items.len() % 2 != 0 {
            return Err(self.error("map literal has an odd number of forms"));
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn dispatch(&mut self) -> Result<Edn, EdnError> {
        self.bump(); // '#'
        match self.peek() {
            Some('{') => {
                self.bump();
                Ok(Edn::Set(self.seq('}')?))
            }
            Some('_') => {
                self.bump();
                self.skip_ws()?;
                self.value()?;
                self.skip_ws()?;
                self.value()
            }
            Some('#') => {
                self.bump();
                match self.token().as_str() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    other => Err(self.error(format!("unknown symbolic value ##{other}"))),
                }
            }
            Some(c) if c.is_alphabetic() => {
                let tag = self.token();
                self.skip_ws()?;
                let inner = self.value()?;
                Ok(Edn::Tagged(tag, Box::new(inner)))
            }
            _ => Err(self.error("unsupported '#' dispatch")),
        }
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        self.bump(); // opening quote
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('"') => return Ok(Edn::Str(s)),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.error(format!("bad unicode escape \\u{hex}")))?;
                        s.push(c);
                    }
                    Some(c) => return Err(self.error(format!("bad string escape \\{c}"))),
                    None => return Err(self.error("unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn character(&mut self) -> Result<Edn, EdnError> {
        self.bump(); // backslash
        let first = self
            .bump()
            .ok_or_else(|| self.error("backslash at end of input"))?;
        let mut name = String::from(first);
        name.push_str(&self.token());
        let c = match name.as_str() {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            "formfeed" => '\u{c}',
            "backspace" => '\u{8}',
            n if n.chars().count() == 1 => first,
            n if n.starts_with('u') && n.len() == 5 => u32::from_str_radix(&n[1..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| self.error(format!("bad character \\{n}")))?,
            n => return Err(self.error(format!("unknown character \\{n}"))),
        };
        Ok(Edn::Char(c))
    }

    fn atom(&mut self) -> Result<Edn, EdnError> {
        let tok = self.token();
        if tok.is_empty() {
            // A lone delimiter we do not handle; consume it to report it.
            let c = self.peek().unwrap_or(' ');
            return Err(self.error(format!("unexpected character {c:?}")));
        }
        match tok.as_str() {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let mut chars = tok.chars();
        let first = chars.next().unwrap_or(' ');
        let second = chars.next();
        let numeric = first.is_ascii_digit()
            || ((first == '-' || first == '+') && second.is_some_and(|c| c.is_ascii_digit()));
        if !numeric {
            return Ok(Edn::Symbol(tok));
        }
        self.number(&tok)
    }

    fn number(&self, tok: &str) -> Result<Edn, EdnError> {
        let bad = || self.error(format!("bad number {tok:?}"));
        if let Some(int) = tok.strip_suffix('N') {
            int.parse::<i128>().map_err(|_| bad())?;
            return Ok(match int.parse::<i64>() {
                Ok(i) => Edn::Int(i),
                Err(_) => Edn::BigInt(int.trim_start_matches('+').to_string()),
            });
        }
        let float_text = tok.strip_suffix('M').unwrap_or(tok);
        if float_text.contains(['.', 'e', 'E']) || tok.ends_with('M') {
            return float_text.parse::<f64>().map(Edn::Float).map_err(|_| bad());
        }
        if tok.contains('/') {
            // A ratio such as 1/3: keep it as a float, which is what a checker needs.
            let (n, d) = tok.split_once('/').ok_or_else(bad)?;
            let n: f64 = n.parse().map_err(|_| bad())?;
            let d: f64 = d.parse().map_err(|_| bad())?;
            return Ok(Edn::Float(n / d));
        }
        match tok.parse::<i64>() {
            Ok(i) => Ok(Edn::Int(i)),
            Err(_) => {
                tok.parse::<i128>().map_err(|_| bad())?;
                Ok(Edn::BigInt(tok.trim_start_matches('+').to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_over_lines_with_comments_and_tags() {
        let text = "; a comment\n{:type :invoke,\n :f :cas ; inline\n :value [1 2]\n :time 12\n #_ :discarded #_ 1\n :x #{1 \"a\"} :c \\newline :t #inst \"2024\"}\n[1 -2 3.5 4N 99999999999999999999]";
        let forms = parse_all(text).unwrap();
        assert_eq!(forms.len(), 2);
        let (m, line) = &forms[0];
        assert_eq!(*line, 2);
        assert_eq!(m.get("type"), Some(&Edn::Keyword("invoke".into())));
        assert_eq!(
            m.get("value"),
            Some(&Edn::Vector(vec![Edn::Int(1), Edn::Int(2)]))
        );
        assert_eq!(m.get("c"), Some(&Edn::Char('\n')));
        assert!(matches!(m.get("t"), Some(Edn::Tagged(t, _)) if t == "inst"));
        assert_eq!(m.get("discarded"), None);
        assert_eq!(
            forms[1].0,
            Edn::Vector(vec![
                Edn::Int(1),
                Edn::Int(-2),
                Edn::Float(3.5),
                Edn::Int(4),
                Edn::BigInt("99999999999999999999".into())
            ])
        );
    }

    #[test]
    fn reports_errors_with_positions() {
        let err = parse_all("{:a 1\n :b [1 2}").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("mismatched"), "{err}");
        assert!(parse_all("{:a}").is_err());
        assert!(parse_all("\"open").is_err());
        assert!(parse_all(&"[".repeat(10_000)).is_err());
    }

    #[test]
    fn writes_what_it_reads() {
        let text = "{:a [1 \"x\\\"y\" :k nil true], :b #{2}, :c (1 2), :d \\a, :e -1.5}";
        let v = parse_one(text).unwrap();
        let again = parse_one(&v.to_string()).unwrap();
        assert_eq!(v, again);
    }
}
