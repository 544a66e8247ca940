//! `dcf-harness serve`: serves the store read-only over HTTP/1.1 so reports,
//! histories and node logs can be browsed from another machine's browser.
//!
//! Only GET and HEAD; one thread per connection; every response closes the
//! connection. A request path is percent-decoded, `..` segments are
//! refused, and the resolved file must canonicalize to a path inside the
//! store, so neither `..` nor a symlink can reach anything outside it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `dcf-harness serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The store to serve.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Address to listen on (keep it on loopback unless you mean to share).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
}

/// Runs `serve` until killed; returns an exit code only on a startup error.
pub fn run(args: &ServeArgs) -> i32 {
    if let Err(e) = reports::write_index(&args.store) {
        eprintln!("dcf-harness serve: warning: index not written: {e}");
    }
    match Server::bind(&args.store, &args.addr) {
        Ok(server) => {
            println!(
                "serving {} read-only at http://{}/ (Ctrl-C to stop)",
                server.root.display(),
                server.local_addr()
            );
            server.serve();
            0
        }
        Err(e) => {
            eprintln!("dcf-harness serve: {e}");
            1
        }
    }
}

/// A read-only file server rooted at a store.
pub struct Server {
    root: PathBuf,
    listener: TcpListener,
}

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A file to send.
    File(PathBuf),
    /// A directory without index: list it.
    Listing(PathBuf),
    /// A directory asked for without a trailing slash: redirect to this.
    Redirect(String),
    /// An HTTP error status.
    Status(u16),
}

impl Server {
    /// Binds the listener; the store must exist.
    pub fn bind(store: &Path, addr: &str) -> std::io::Result<Server> {
        let root = store.canonicalize().map_err(|e| {
            std::io::Error::new(e.kind(), format!("store {}: {e}", store.display()))
        })?;
        let listener = TcpListener::bind(addr)?;
        Ok(Server { root, listener })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Accepts connections forever, one thread each.
    pub fn serve(self) {
        for stream in self.listener.incoming().flatten() {
            let root = self.root.clone();
            std::thread::spawn(move || {
                let _ = handle(&root, stream);
            });
        }
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Maps a request target to a file under `root` (which must be canonical).
pub fn resolve(root: &Path, target: &str) -> Resolved {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Resolved::Status(400);
    }
    let Some(decoded) = percent_decode(path).and_then(|b| String::from_utf8(b).ok()) else {
        return Resolved::Status(400);
    };
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Resolved::Status(403),
            s if s.contains('\\') || s.contains('\0') => return Resolved::Status(403),
            s => rel.push(s),
        }
    }
    let Ok(real) = root.join(&rel).canonicalize() else {
        return Resolved::Status(404);
    };
    if !real.starts_with(root) {
        return Resolved::Status(403);
    }
    if real.is_dir() {
        if !decoded.ends_with('/') {
            return Resolved::Redirect(format!("{path}/"));
        }
        for index in ["index.html", "report.html"] {
            let candidate = real.join(index);
            if candidate.is_file() {
                return match candidate.canonicalize() {
                    Ok(c) if c.starts_with(root) => Resolved::File(c),
                    _ => Resolved::Status(403),
                };
            }
        }
        return Resolved::Listing(real);
    }
    if real.is_file() {
        Resolved::File(real)
    } else {
        Resolved::Status(404)
    }
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "jsonl" | "log" | "stderr" | "txt" | "edn" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "css" => "text/css",
        "js" => "text/javascript",
        _ => "application/octet-stream",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn listing(dir: &Path) -> String {
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, e.path().is_dir())
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut s = String::from("<!DOCTYPE html><meta charset=\"utf-8\"><title>listing</title><ul><li><a href=\"../\">../</a></li>");
    for (name, is_dir) in entries {
        let slash = if is_dir { "/" } else { "" };
        let href: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        s.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{}{slash}</a></li>",
            escape(&name)
        ));
    }
    s.push_str("</ul>");
    s
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: Option<&mut dyn Read>,
    len: u64,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {len}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if let Some(body) = body {
        std::io::copy(body, out)?;
    }
    out.flush()
}

fn handle(root: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(16 * 1024));
    let mut first = String::new();
    reader.read_line(&mut first)?;
    // Drain the headers; nothing in them changes what is served.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    let text = |s: &str| ("Content-Type", s.to_string());
    if method != "GET" && !head_only {
        let msg = b"only GET and HEAD\n";
        return respond(
            &mut stream,
            405,
            &[text("text/plain"), ("Allow", "GET, HEAD".into())],
            Some(&mut &msg[..]),
            msg.len() as u64,
        );
    }
    match resolve(root, target) {
        Resolved::File(p) => {
            let mut f = std::fs::File::open(&p)?;
            let len = f.metadata()?.len();
            let body: Option<&mut dyn Read> = if head_only { None } else { Some(&mut f) };
            respond(&mut stream, 200, &[text(content_type(&p))], body, len)
        }
        Resolved::Listing(dir) => {
            let html = listing(&dir);
            let mut bytes = html.as_bytes();
            let len = bytes.len() as u64;
            let body: Option<&mut dyn Read> = if head_only { None } else { Some(&mut bytes) };
            respond(
                &mut stream,
                200,
                &[text("text/html; charset=utf-8")],
                body,
                len,
            )
        }
        Resolved::Redirect(to) => respond(&mut stream, 301, &[("Location", to)], None, 0),
        Resolved::Status(code) => {
            let msg = format!("{code}\n");
            let mut bytes = msg.as_bytes();
            let body: Option<&mut dyn Read> = if head_only { None } else { Some(&mut bytes) };
            respond(
                &mut stream,
                code,
                &[text("text/plain")],
                body,
                msg.len() as u64,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    #[test]
    fn serves_files_and_refuses_escapes() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret.txt"), "top secret").unwrap();
        let store = outer.path().join("store");
        std::fs::create_dir_all(store.join("t/run1")).unwrap();
        std::fs::write(store.join("t/run1/report.html"), "<p>report</p>").unwrap();
        std::fs::write(store.join("t/run1/history.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(outer.path(), store.join("evil")).unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), store.join("t/leak.txt"))
            .unwrap();
        let server = Server::bind(&store, "127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        std::thread::spawn(move || server.serve());

        let ok = get(addr, "GET /t/run1/report.html HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ok, (200, "<p>report</p>".to_string()));
        assert_eq!(
            get(addr, "GET /t/run1/ HTTP/1.1\r\n\r\n").1,
            "<p>report</p>"
        );
        assert_eq!(get(addr, "GET /t/run1 HTTP/1.1\r\n\r\n").0, 301);
        let listing = get(addr, "GET /t/ HTTP/1.1\r\n\r\n");
        assert_eq!(listing.0, 200);
        assert!(listing.1.contains("href=\"run1/\""));
        for escape in [
            "/../secret.txt",
            "/t/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/evil/secret.txt",
            "/t/leak.txt",
        ] {
            let (status, body) = get(addr, &format!("GET {escape} HTTP/1.1\r\n\r\n"));
            assert!(status == 403 || status == 404, "{escape}: {status}");
            assert!(!body.contains("top secret"), "{escape} leaked");
        }
        assert_eq!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").0, 404);
        assert_eq!(
            get(addr, "DELETE /t/run1/report.html HTTP/1.1\r\n\r\n").0,
            405
        );
        assert!(store.join("t/run1/report.html").is_file());
    }

    #[test]
    fn resolve_rejects_dot_dot_before_touching_the_disk() {
        let root = Path::new("/definitely/not/here");
        assert_eq!(resolve(root, "/a/../b"), Resolved::Status(403));
        assert_eq!(resolve(root, "relative"), Resolved::Status(400));
        assert_eq!(resolve(root, "/%zz"), Resolved::Status(400));
    }
}
