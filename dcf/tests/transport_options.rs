//! Process-level tests of the transport options (issue 6): real `dcf-node`
//! clusters on 127.0.0.1 with `--param COMPRESS_ALGORITHM=...` (LZ4, ZSTD)
//! and with TLS (`--param SSL_CA/SSL_CERT/SSL_KEY`, certificates generated
//! with rcgen into the cluster's tempdir) elect a leader and serve writes
//! and reads; a node whose certificate another CA signed never joins.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dcf::kv::protocol::{Outcome, RequestBody};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;

fn base_params() -> Vec<String> {
    vec![
        "ELECTION_TIMEOUT=1000".into(),
        "HEARTBEAT_INTERVAL=200".into(),
    ]
}

/// Writes 30 keys through the leader and reads them back (linearizable).
async fn writes_and_reads(c: &Cluster, prefix: &str) {
    let mut client = c.client();
    // Values big enough that batches pass the compression threshold.
    let value = |i: u32| format!("{prefix}-{i}-").repeat(20);
    for i in 0..30 {
        let r = put_until_ok(&mut client, &format!("{prefix}{i}"), &value(i)).await;
        assert_eq!(r.outcome, Outcome::Ok, "put {prefix}{i}: {r:?}");
    }
    for i in 0..30 {
        let r = client
            .call(
                RequestBody::Get {
                    key: format!("{prefix}{i}"),
                },
                true,
            )
            .await;
        assert_eq!(r.outcome, Outcome::Ok, "get {prefix}{i}: {r:?}");
        assert_eq!(r.value, Value::String(value(i)));
    }
}

/// Every node in `ids` reports `last_index` equal to the leader's within
/// the wait (they receive the log over the configured transport).
async fn all_caught_up(c: &Cluster, ids: &[u32], leader: u32) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let want = c
            .status(leader)
            .await
            .and_then(|s| s["last_index"].as_u64());
        let mut ok = want.is_some();
        for id in ids {
            let got = c.status(*id).await.and_then(|s| s["last_index"].as_u64());
            ok &= got == want;
        }
        if ok {
            return;
        }
        assert!(Instant::now() < end, "nodes {ids:?} did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn compressed_cluster_works(algorithm: u32, level: u32) {
    rt().block_on(async {
        let mut c = Cluster::configured(3);
        c.params = base_params();
        c.params.push(format!("COMPRESS_ALGORITHM={algorithm}"));
        c.params.push(format!("COMPRESS_LEVEL={level}"));
        for id in 1..=3 {
            c.start_node(id);
        }
        let leader = c
            .wait_leader(Duration::from_secs(10), None)
            .await
            .expect("no leader elected");
        writes_and_reads(&c, &format!("a{algorithm}-")).await;
        all_caught_up(&c, &[1, 2, 3], leader).await;
        for id in 1..=3 {
            assert!(c.is_running(id), "node {id} died:\n{}", c.stderr_of(id));
        }
    });
}

#[test]
fn lz4_cluster_elects_and_serves() {
    compressed_cluster_works(2, 9);
}

#[test]
fn zstd_cluster_elects_and_serves() {
    compressed_cluster_works(1, 19);
}

/// A CA writing its certificate and node certificates as PEM into `dir`.
struct Ca {
    dir: PathBuf,
    name: &'static str,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(dir: &Path, name: &'static str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), issuer.pem()).unwrap();
        Ca {
            dir: dir.to_path_buf(),
            name,
            issuer,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// `--param` values for node `id`: SSL_CA (`trust`'s CA), and a
    /// certificate and key signed by this CA.
    fn node_params(&self, id: u32, trust: &Ca) -> Vec<String> {
        let mut p = CertificateParams::new(vec![format!("node{id}.dcf.invalid")]).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("dcf node {id}"));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{}-node{id}.pem", self.name));
        let key_path = self.dir.join(format!("{}-node{id}.key", self.name));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        vec![
            format!("SSL_CA={}", trust.ca_path().display()),
            format!("SSL_CERT={}", cert_path.display()),
            format!("SSL_KEY={}", key_path.display()),
        ]
    }
}

/// A 4-member configuration: nodes 1..3 have certificates of the cluster
/// CA and form a quorum (3 of 4) over TLS; node 4 trusts the cluster CA
/// but its certificate is signed by a rogue CA, so every handshake with
/// it fails (refused as client by the others' servers, refused as server
/// by the others' clients). It must never receive the log.
#[test]
fn tls_cluster_serves_and_rogue_node_cannot_join() {
    rt().block_on(async {
        let mut c = Cluster::configured(4);
        let ca = Ca::new(c.dir.path(), "cluster");
        let rogue = Ca::new(c.dir.path(), "rogue");
        for id in 1..=3 {
            c.params = base_params();
            c.params.extend(ca.node_params(id, &ca));
            // One node also compresses: TLS and compression together.
            if id == 2 {
                c.params.push("COMPRESS_ALGORITHM=2".into());
            }
            c.start_node(id);
        }
        let leader = c
            .wait_leader(Duration::from_secs(10), None)
            .await
            .expect("no leader elected over TLS");
        writes_and_reads(&c, "tls-").await;
        all_caught_up(&c, &[1, 2, 3], leader).await;

        c.params = base_params();
        c.params.extend(rogue.node_params(4, &ca));
        c.start_node(4);
        let leader_term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();
        // Writes go on while node 4 keeps trying.
        let mut client = c.client();
        let end = Instant::now() + Duration::from_secs(4);
        let mut i = 0;
        while Instant::now() < end {
            let r = put_until_ok(&mut client, &format!("after{i}"), "x").await;
            assert_eq!(r.outcome, Outcome::Ok);
            i += 1;
            // Checked all along, not just at the end: node 4 never learns
            // of the leader and never stores an entry.
            if let Some(s4) = c.status(4).await {
                assert_eq!(
                    s4["last_index"].as_u64(),
                    Some(0),
                    "node 4 got entries: {s4}"
                );
                assert_ne!(s4["leader_id"].as_u64(), Some(u64::from(leader)), "{s4}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        all_caught_up(&c, &[1, 2, 3], leader).await;
        assert!(c.is_running(4), "rogue node exited:\n{}", c.stderr_of(4));
        let s4 = c.status(4).await.expect("node 4 answers status");
        assert_eq!(
            s4["last_index"].as_u64(),
            Some(0),
            "node 4 got entries: {s4}"
        );
        assert_ne!(s4["leader_id"].as_u64(), Some(u64::from(leader)), "{s4}");
        let leader_term_now = c.status(leader).await.unwrap()["term"].as_u64().unwrap();
        assert_eq!(leader_term, leader_term_now, "node 4 disturbed the leader");
        // The trusted nodes logged the refused handshakes.
        let refused = (1..=3).any(|id| {
            let log = c.stderr_of(id);
            log.contains("WARN") && log.contains("TLS handshake")
        });
        assert!(refused, "no refused handshake logged:\n{}", c.stderr_of(1));
    });
}

#[test]
fn partial_tls_parameters_fail_the_start() {
    let mut c = Cluster::configured(1);
    let ca = Ca::new(c.dir.path(), "cluster");
    c.params = base_params();
    // SSL_CA and SSL_CERT without SSL_KEY.
    c.params.extend(ca.node_params(1, &ca).into_iter().take(2));
    c.start_node(1);
    let end = Instant::now() + Duration::from_secs(10);
    while c.is_running(1) {
        assert!(
            Instant::now() < end,
            "node started with a partial TLS setup"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = c.stderr_of(1);
    assert!(
        log.contains("SSL_KEY"),
        "error does not name SSL_KEY:\n{log}"
    );
}
