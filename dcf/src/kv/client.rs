//! A client of `dcf-node`'s key-value service, used by `dcfctl` and the
//! harness. It tries the endpoints in turn until one answers as leader,
//! and it never turns an unknown outcome into a definite one: once a
//! write request may have reached a node, a lost reply is `info`.
//!
//! Exactly-once writes: every put, cas, append and transaction carries a
//! tag (this client's random id and a sequence number). A write whose
//! outcome is unknown (timeout, lost connection, leader change) is sent
//! again with the same tag, a bounded number of times and possibly to
//! another node; the nodes apply a tag at most once and answer a retry
//! with the first application's result. After an unknown attempt, a
//! later "not done" answer only speaks for that attempt, so the write
//! stays unknown unless a later attempt settles it.

use super::machine::WriteTag;
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
    /// This client's id in write tags (random, so that clients of other
    /// processes never share one).
    client_id: u64,
    /// The sequence number of the last tagged write.
    seq: u64,
    /// How many times an indeterminate write is sent again.
    write_retries: u32,
}

/// Default number of retries of an indeterminate write.
pub const DEFAULT_WRITE_RETRIES: u32 = 8;
/// Retries stop once this many call timeouts passed since the first
/// attempt, so that an election has time to finish but a write does not
/// hang its caller for long.
const RETRY_WINDOW_TIMEOUTS: u32 = 3;

/// True for the requests that carry an exactly-once tag (state-machine
/// writes; admin requests are not deduplicated).
pub fn is_tagged_write(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Put { .. }
            | RequestBody::Cas { .. }
            | RequestBody::Append { .. }
            | RequestBody::Txn { .. }
    )
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
            // Below 2^53, so that any JSON reader keeps it exact.
            client_id: rand::random::<u64>() >> 11,
            seq: 0,
            write_retries: DEFAULT_WRITE_RETRIES,
        }
    }

    /// Sets how many times an indeterminate write is sent again (0: never).
    pub fn set_write_retries(&mut self, n: u32) {
        self.write_retries = n;
    }

    /// This client's id in write tags.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Sends `body` (see [`KvClient::call_once`]); a state-machine write is
    /// tagged and, while its outcome is unknown, retried with the same tag.
    pub async fn call(&mut self, body: RequestBody, follow_leader: bool) -> Response {
        if !is_tagged_write(&body) {
            return self.call_once(body, None, follow_leader).await;
        }
        // Retries move to other endpoints; the next request starts again
        // where this one did, so a client keeps talking to its node (a
        // harness binds clients to nodes: one that drifted away from a
        // cut-off leader would never see what that leader serves).
        let home = self.current;
        let resp = self.call_tagged(body, follow_leader).await;
        if self.current != home {
            self.current = home;
            self.conn = None;
        }
        resp
    }

    async fn call_tagged(&mut self, body: RequestBody, follow_leader: bool) -> Response {
        self.seq += 1;
        let tag = WriteTag {
            client: self.client_id,
            seq: self.seq,
        };
        let mut unknown: Option<Response> = None;
        let mut attempt = 0;
        let give_up = tokio::time::Instant::now() + self.timeout * RETRY_WINDOW_TIMEOUTS;
        loop {
            let resp = self.call_once(body.clone(), Some(tag), follow_leader).await;
            let settled = match resp.outcome {
                Outcome::Ok => true,
                // Definite for this attempt; for the write only if no earlier
                // attempt may have been applied, or if it ran (a cas
                // mismatch is the recorded result of the tag's one run).
                Outcome::Fail => unknown.is_none() || resp.code.is_some_and(|c| c.executed()),
                Outcome::Info => false,
            };
            if settled {
                return resp;
            }
            let last_info = resp.outcome == Outcome::Info;
            if last_info || unknown.is_none() {
                unknown = Some(resp.clone());
            }
            if attempt >= self.write_retries || tokio::time::Instant::now() >= give_up {
                let first = unknown.expect("an unknown attempt");
                let why = first.error.clone().unwrap_or_default();
                let mut r = Response::info(
                    resp.id,
                    first.code.unwrap_or(FailureCode::Timeout),
                    format!(
                        "outcome unknown after {} attempts (last: {})",
                        attempt + 1,
                        resp.error.clone().unwrap_or(why)
                    ),
                );
                r.node = resp.node.or(first.node);
                return r;
            }
            attempt += 1;
            tracing::debug!(
                client = tag.client,
                seq = tag.seq,
                attempt,
                "retrying a write whose outcome is unknown"
            );
            self.rotate();
            // Give an election time to finish before the next attempt.
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(4)))).await;
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
    pub async fn call_once(
        &mut self,
        body: RequestBody,
        tag: Option<WriteTag>,
        follow_leader: bool,
    ) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        let req = Request { id, body, tag };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    /// What the test server does with each request, in turn.
    #[derive(Clone, Copy)]
    enum Step {
        /// Drops the connection without a reply (outcome unknown).
        Drop,
        NotLeader,
        Ok,
        CasMismatch,
    }

    /// A server on loopback that answers requests by `steps` and records
    /// the tags it received.
    async fn server(steps: Vec<Step>) -> (String, Arc<Mutex<Vec<Option<WriteTag>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tags = Arc::new(Mutex::new(Vec::new()));
        let seen = tags.clone();
        tokio::spawn(async move {
            let mut steps = steps.into_iter();
            'conns: while let Ok((mut sock, _)) = listener.accept().await {
                while let Ok(Some(frame)) = read_frame(&mut sock).await {
                    let req: Request = serde_json::from_slice(&frame).unwrap();
                    seen.lock().unwrap().push(req.tag);
                    let resp = match steps.next() {
                        Some(Step::Drop) | None => continue 'conns,
                        Some(Step::NotLeader) => {
                            Response::fail(req.id, FailureCode::NotLeader, "not leader")
                        }
                        Some(Step::Ok) => Response::ok(req.id, json!("done")),
                        Some(Step::CasMismatch) => {
                            Response::fail(req.id, FailureCode::CasMismatch, "holds 3")
                        }
                    };
                    let bytes = serde_json::to_vec(&resp).unwrap();
                    write_frame(&mut sock, &bytes).await.unwrap();
                }
            }
        });
        (addr, tags)
    }

    fn put() -> RequestBody {
        RequestBody::Put {
            key: "k".into(),
            value: json!(1),
        }
    }

    async fn run(steps: Vec<Step>, retries: u32) -> (Response, Vec<Option<WriteTag>>) {
        let (addr, tags) = server(steps).await;
        let mut c = KvClient::new(vec![addr], Duration::from_secs(2));
        c.set_write_retries(retries);
        let r = c.call(put(), true).await;
        let tags = tags.lock().unwrap().clone();
        (r, tags)
    }

    #[tokio::test]
    async fn an_unknown_write_is_retried_with_the_same_tag_until_it_settles() {
        let (r, tags) = run(vec![Step::Drop, Step::NotLeader, Step::Ok], 4).await;
        assert_eq!((r.outcome, r.value), (Outcome::Ok, Value::from("done")));
        assert_eq!(tags.len(), 3);
        assert!(tags[0].is_some() && tags.iter().all(|t| *t == tags[0]));
        // A cas mismatch is the tag's one run: settled.
        let (r, _) = run(vec![Step::Drop, Step::CasMismatch], 4).await;
        assert_eq!(r.code, Some(FailureCode::CasMismatch));
    }

    /// A write settled by a retry on another node leaves the client at its
    /// own node: drifting away from a cut-off leader hid its stale reads
    /// from the harness (read-lease was caught 0 of 10 times).
    #[tokio::test]
    async fn a_retried_write_returns_the_client_to_its_node() {
        let (home, _) = server(vec![Step::Drop]).await;
        let (other, other_tags) = server(vec![Step::Ok]).await;
        let mut c = KvClient::new(vec![home.clone(), other], Duration::from_secs(2));
        c.set_write_retries(2);
        let r = c.call(put(), true).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(other_tags.lock().unwrap().len(), 1, "settled by the retry");
        assert_eq!(c.current_endpoint(), Some(home.as_str()));
    }

    #[tokio::test]
    async fn a_write_stays_unknown_when_no_retry_settles_it() {
        // "Not leader" after an unknown attempt speaks for the retry only.
        let (r, tags) = run(vec![Step::Drop, Step::NotLeader, Step::NotLeader], 2).await;
        assert_eq!(r.outcome, Outcome::Info, "{r:?}");
        assert_eq!(r.code, Some(FailureCode::ConnectionLost));
        assert_eq!(tags.len(), 3);
        // Without an unknown attempt, "not leader" is definite at once.
        let (r, tags) = run(vec![Step::NotLeader], 2).await;
        assert_eq!(
            (r.outcome, r.code),
            (Outcome::Fail, Some(FailureCode::NotLeader))
        );
        assert_eq!(tags.len(), 1);
        // No retries: the first unknown answer stands.
        let (r, tags) = run(vec![Step::Drop, Step::Ok], 0).await;
        assert_eq!(r.outcome, Outcome::Info);
        assert_eq!(tags.len(), 1);
    }

    #[tokio::test]
    async fn reads_and_admin_requests_carry_no_tag_and_are_not_retried() {
        let (addr, tags) = server(vec![Step::Drop]).await;
        let mut c = KvClient::new(vec![addr], Duration::from_secs(2));
        let r = c.call(RequestBody::Get { key: "k".into() }, true).await;
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(*tags.lock().unwrap(), vec![None]);
    }
}
