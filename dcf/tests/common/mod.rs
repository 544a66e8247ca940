//! Starting real `dcf-node` processes on loopback for process-level tests.
//! Every node is killed when its [`Cluster`] is dropped, also on panic.

#![allow(dead_code)]

use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody, Response};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_dcf-node");
pub const CTL_BIN: &str = env!("CARGO_BIN_EXE_dcfctl");

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Node {
    pub id: u32,
    pub peer_port: u16,
    pub client_addr: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: String,
    pub nodes: Vec<Node>,
    pub params: Vec<String>,
    /// Extra `dcf-node` arguments for every node.
    pub node_args: Vec<String>,
}

impl Cluster {
    /// `n` configured nodes on free loopback ports (node 1 the configured
    /// LEADER), none started and no parameters set.
    pub fn configured(n: u32) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut items = Vec::new();
        for id in 1..=n {
            let peer_port = free_port();
            items.push(format!(
                r#"{{"stream_id":1,"node_id":{id},"ip":"127.0.0.1","port":{peer_port},"role":"{}"}}"#,
                if id == 1 { "LEADER" } else { "FOLLOWER" }
            ));
            nodes.push(Node {
                id,
                peer_port,
                client_addr: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("n{id}")),
                child: None,
            });
        }
        Cluster {
            dir,
            config: format!("[{}]", items.join(",")),
            nodes,
            params: Vec::new(),
            node_args: Vec::new(),
        }
    }

    /// Starts `n` nodes (node 1 configured LEADER) with fast timeouts.
    pub fn start(n: u32) -> Cluster {
        Cluster::start_with(n, |_| Vec::new())
    }

    /// Like [`Cluster::start`], with extra `NAME=VALUE` parameters for every
    /// node, made from the cluster's folder (for certificates).
    pub fn start_with(n: u32, extra: impl FnOnce(&Path) -> Vec<String>) -> Cluster {
        Cluster::start_with_args(n, extra, &[])
    }

    /// Like [`Cluster::start_with`], with extra `dcf-node` arguments.
    pub fn start_with_args(
        n: u32,
        extra: impl FnOnce(&Path) -> Vec<String>,
        node_args: &[&str],
    ) -> Cluster {
        let mut c = Cluster::configured(n);
        c.node_args = node_args.iter().map(|a| a.to_string()).collect();
        c.params = vec![
            "ELECTION_TIMEOUT=1000".into(),
            "HEARTBEAT_INTERVAL=200".into(),
        ];
        let more = extra(c.dir.path());
        c.params.extend(more);
        for id in 1..=n {
            c.start_node(id);
        }
        c
    }

    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn start_node(&mut self, id: u32) {
        let config = self.config.clone();
        let params = self.params.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} already running");
        let log = std::fs::File::create(self.dir.path().join(format!("n{id}.stderr.{}", now_ms())))
            .unwrap();
        let mut cmd = Command::new(NODE_BIN);
        cmd.arg("--node-id")
            .arg(id.to_string())
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--client-addr")
            .arg(&node.client_addr)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for p in &params {
            cmd.arg("--param").arg(p);
        }
        cmd.args(&self.node_args);
        node.child = Some(cmd.spawn().expect("spawn dcf-node"));
    }

    /// SIGKILL a node.
    pub fn kill(&mut self, id: u32) {
        if let Some(mut c) = self.nodes[(id - 1) as usize].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self, id: u32) -> bool {
        match self.nodes[(id - 1) as usize].child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect()
    }

    pub fn client(&self) -> KvClient {
        KvClient::new(self.endpoints(), Duration::from_secs(5))
    }

    /// The stream info of one node, if it answers.
    pub async fn status(&self, id: u32) -> Option<Value> {
        let mut c = KvClient::new(
            vec![self.node(id).client_addr.clone()],
            Duration::from_secs(2),
        );
        let r = c.call(RequestBody::Status, false).await;
        (r.outcome == Outcome::Ok).then_some(r.value)
    }

    /// Waits until some running node reports itself leader; returns its id.
    pub async fn wait_leader(&self, within: Duration, except: Option<u32>) -> Option<u32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            for n in &self.nodes {
                if Some(n.id) == except || n.child.is_none() {
                    continue;
                }
                if let Some(s) = self.status(n.id).await {
                    if s["role"] == "LEADER" {
                        return Some(n.id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Runs `dcfctl --endpoints ... ARGS`; returns (exit code, stdout, stderr).
    pub fn dcfctl(&self, args: &[&str]) -> (i32, String, String) {
        run_dcfctl(&self.endpoints().join(","), args)
    }

    /// Runs `dcfctl` against node `id`'s endpoint only (admin commands run
    /// on the node they are sent to).
    pub fn dcfctl_on(&self, id: u32, args: &[&str]) -> (i32, String, String) {
        run_dcfctl(&self.node(id).client_addr, args)
    }

    /// Everything node `id` wrote to stderr over all its runs.
    pub fn stderr_of(&self, id: u32) -> String {
        let mut all = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("n{id}.stderr.")))
            })
            .collect();
        files.sort();
        for f in files {
            all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Retries a write until it gets a definite answer (ok or fail).
pub async fn put_until_ok(c: &mut KvClient, key: &str, value: &str) -> Response {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .call(
                RequestBody::Put {
                    key: key.into(),
                    value: Value::String(value.into()),
                },
                true,
            )
            .await;
        if r.outcome == Outcome::Ok || Instant::now() > end {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The log segment files of a node's stream 1, newest last.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("log_"))
                {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

impl Cluster {
    /// Starts one more node whose config lists every existing node and
    /// itself (as `gs_ctl member add` expects); returns its id. It joins only
    /// once the leader adds it with `dcfctl member add`.
    pub fn start_extra_node(&mut self) -> u32 {
        let id = self.nodes.len() as u32 + 1;
        let peer_port = free_port();
        let client_port = free_port();
        let mut items: Vec<serde_json::Value> = serde_json::from_str(&self.config).unwrap();
        items.push(serde_json::json!({
            "stream_id": 1, "node_id": id, "ip": "127.0.0.1", "port": peer_port, "role": "FOLLOWER"
        }));
        let config = serde_json::Value::Array(items).to_string();
        self.nodes.push(Node {
            id,
            peer_port,
            client_addr: format!("127.0.0.1:{client_port}"),
            data_dir: self.dir.path().join(format!("n{id}")),
            child: None,
        });
        let saved = std::mem::replace(&mut self.config, config);
        self.start_node(id);
        self.config = saved;
        id
    }
}

/// Transport options the process-level scenarios also run with.
pub fn lz4_params(_dir: &Path) -> Vec<String> {
    vec!["COMPRESS_ALGORITHM=2".into(), "COMPRESS_LEVEL=1".into()]
}

/// TLS for every node: a fresh CA in `dir` and one certificate (signed by
/// it, valid for client and server use) shared by all nodes; peers are
/// verified against the CA. LZ4 compression is turned on too.
pub fn tls_params(dir: &Path) -> Vec<String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut node = CertificateParams::new(vec!["node.dcf.invalid".to_string()]).unwrap();
    node.distinguished_name.push(DnType::CommonName, "dcf node");
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = node.signed_by(&key, &issuer).unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    );
    std::fs::write(&ca_path, issuer.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut p = vec![
        format!("SSL_CA={}", ca_path.display()),
        format!("SSL_CERT={}", cert_path.display()),
        format!("SSL_KEY={}", key_path.display()),
    ];
    p.extend(lz4_params(dir));
    p
}

impl Cluster {
    /// Checks from node `id`'s log that the transport runs with the
    /// cluster's TLS and compression parameters (so a scenario cannot pass
    /// with them silently ignored).
    pub fn assert_transport_options(&self, id: u32) {
        let log = self.stderr_of(id);
        let line = log
            .lines()
            .find(|l| l.contains("transport listening"))
            .unwrap_or_else(|| panic!("node {id} logged no transport start:\n{log}"));
        let tls = self.params.iter().any(|p| p.starts_with("SSL_CA="));
        assert!(line.contains(&format!("tls={tls}")), "{line}");
        if self.params.iter().any(|p| p == "COMPRESS_ALGORITHM=2") {
            assert!(line.contains("compression=LZ4"), "{line}");
        }
    }
}

fn run_dcfctl(endpoints: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(CTL_BIN)
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A current-thread tokio runtime for a test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `f` every 100 ms until it returns `Some` or `within` runs out.
pub async fn until<T>(within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
