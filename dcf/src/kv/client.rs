//! A client of `dcf-node`'s key-value service, used by `dcfctl` and the
//! harness. It tries the endpoints in turn until one answers as leader,
//! and it never turns an unknown outcome into a definite one: once a
//! write request may have reached a node, a lost reply is `info`.

use super::protocol::{
    read_frame, write_frame, FailureCode, Outcome, Request, RequestBody, Response,
};
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

/// True if a reply says "not the leader" (nothing was done; try another
/// node). Decided by the reply's code, never by its wording.
pub fn is_not_leader(r: &Response) -> bool {
    r.outcome == Outcome::Fail && r.code == Some(FailureCode::NotLeader)
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
            Err(e) => {
                return Response::fail(
                    id,
                    FailureCode::BadRequest,
                    format!("cannot encode request: {e}"),
                )
            }
        };
        let write = req.body.is_write();
        let tries = self.endpoints.len().max(1);
        let mut errors = Vec::new();
        let mut answered_not_leader = false;
        for _ in 0..tries {
            let Some(ep) = self.current_endpoint().map(str::to_string) else {
                return Response::fail(id, FailureCode::BadRequest, "no endpoints given");
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
                    return self.lost(
                        id,
                        write,
                        &ep,
                        FailureCode::ConnectionLost,
                        "connection closed before the reply",
                    );
                }
                Ok(Err(e)) => {
                    self.conn = None;
                    return self.lost(id, write, &ep, FailureCode::ConnectionLost, &e.to_string());
                }
                Err(_) => {
                    self.conn = None;
                    return self.lost(
                        id,
                        write,
                        &ep,
                        FailureCode::Timeout,
                        "timed out waiting for the reply",
                    );
                }
            };
            let resp: Response = match serde_json::from_slice(&reply) {
                Ok(r) => r,
                Err(e) => {
                    self.conn = None;
                    return self.lost(
                        id,
                        write,
                        &ep,
                        FailureCode::ConnectionLost,
                        &format!("malformed reply: {e}"),
                    );
                }
            };
            if follow_leader && is_not_leader(&resp) {
                answered_not_leader = true;
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
        // Nothing was sent, or every node that answered refused as not
        // leader: nothing was done either way.
        let code = if answered_not_leader {
            FailureCode::NotLeader
        } else {
            FailureCode::Unreachable
        };
        Response::fail(id, code, format!("{what} ({})", errors.join("; ")))
    }

    /// A request may have reached the node but its reply is lost.
    fn lost(&mut self, id: u64, write: bool, ep: &str, code: FailureCode, why: &str) -> Response {
        let msg = format!("{ep}: {why}");
        if write {
            Response::info(id, code, msg)
        } else {
            // A read changes nothing, so a lost read is a definite failure.
            Response::fail(id, code, msg)
        }
    }
}
