//! A client of `dcf-node`'s key-value service, used by `dcfctl` and the
//! harness. It tries the endpoints in turn until one answers as leader,
//! and it never turns an unknown outcome into a definite one: once a
//! write request may have reached a node, a lost reply is `info`.

use super::protocol::{read_frame, write_frame, Outcome, Request, RequestBody, Response};
use std::time::Duration;
use tokio::net::TcpStream;

/// A client over a list of endpoints (client addresses `host:port`).
pub struct KvClient {
    endpoints: Vec<String>,
    current: usize,
    conn: Option<TcpStream>,
    timeout: Duration,
    next_id: u64,
}

/// True if a reply says "not the leader" (nothing was done; try another node).
pub fn is_not_leader(r: &Response) -> bool {
    r.outcome == Outcome::Fail
        && r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("not leader"))
}

impl KvClient {
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> KvClient {
        KvClient {
            endpoints,
            current: 0,
            conn: None,
            timeout,
            next_id: 1,
        }
    }

    /// The endpoint the next request goes to first.
    pub fn current_endpoint(&self) -> Option<&str> {
        self.endpoints.get(self.current).map(|s| s.as_str())
    }

    fn rotate(&mut self) {
        self.conn = None;
        if !self.endpoints.is_empty() {
            self.current = (self.current + 1) % self.endpoints.len();
        }
    }

    /// Sends `body` and returns the reply. Endpoints that cannot be reached
    /// are skipped (each tried at most once); with `follow_leader` a "not
    /// leader" reply also moves on to the next endpoint, otherwise the
    /// first node that answers is the one that counts.
    pub async fn call(&mut self, body: RequestBody, follow_leader: bool) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        let req = Request { id, body };
        let payload = match serde_json::to_vec(&req) {
            Ok(p) => p,
            Err(e) => return Response::fail(id, format!("cannot encode request: {e}")),
        };
        let write = req.body.is_write();
        let tries = self.endpoints.len().max(1);
        let mut errors = Vec::new();
        for _ in 0..tries {
            let Some(ep) = self.current_endpoint().map(str::to_string) else {
                return Response::fail(id, "no endpoints given");
            };
            if self.conn.is_none() {
                match tokio::time::timeout(self.timeout, TcpStream::connect(&ep)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        self.conn = Some(s);
                    }
                    Ok(Err(e)) => {
                        errors.push(format!("{ep}: {e}"));
                        self.rotate();
                        continue;
                    }
                    Err(_) => {
                        errors.push(format!("{ep}: connect timed out"));
                        self.rotate();
                        continue;
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected");
            let exchange = async {
                write_frame(conn, &payload).await?;
                read_frame(conn)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
            };
            let reply = match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => {
                    self.conn = None;
                    return self.lost(id, write, &ep, "connection closed before the reply");
                }
                Ok(Err(e)) => {
                    self.conn = None;
                    return self.lost(id, write, &ep, &e.to_string());
                }
                Err(_) => {
                    self.conn = None;
                    return self.lost(id, write, &ep, "timed out waiting for the reply");
                }
            };
            let resp: Response = match serde_json::from_slice(&reply) {
                Ok(r) => r,
                Err(e) => {
                    self.conn = None;
                    return self.lost(id, write, &ep, &format!("malformed reply: {e}"));
                }
            };
            if follow_leader && is_not_leader(&resp) {
                errors.push(format!("{ep}: not leader"));
                self.rotate();
                continue;
            }
            return resp;
        }
        let what = if follow_leader {
            "no leader reachable"
        } else {
            "no endpoint reachable"
        };
        Response::fail(id, format!("{what} ({})", errors.join("; ")))
    }

    /// A request may have reached the node but its reply is lost.
    fn lost(&mut self, id: u64, write: bool, ep: &str, why: &str) -> Response {
        let msg = format!("{ep}: {why}");
        if write {
            Response::info(id, msg)
        } else {
            // A read changes nothing, so a lost read is a definite failure.
            Response::fail(id, msg)
        }
    }
}
