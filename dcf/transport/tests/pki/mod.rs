//! Support for the TLS tests: a throw-away PKI (a CA and node certificates
//! generated with rcgen at test time and written as PEM files into a
//! directory) and small transport helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dcf_transport::{HostEnvelope, HostMessage, TlsConfig, Transport, TransportConfig, Wire};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};
use tokio::sync::mpsc;

/// A CA whose files live in `dir`, named after `name`.
pub struct Pki {
    dir: PathBuf,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            ca,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate for node `id` (serial = id) trusting this CA. Its only
    /// name is a DNS name that matches no address: peers must accept it
    /// for any name.
    pub fn node(&self, id: u32) -> TlsConfig {
        let mut params = CertificateParams::new(vec![format!("dcf-node-{id}.invalid")]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("dcf node {id}"));
        params.serial_number = Some(SerialNumber::from(u64::from(id)));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.join(format!("{}-node{id}.pem", self.name));
        let key_path = self.dir.join(format!("{}-node{id}.key", self.name));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TlsConfig::new(self.ca_path(), cert_path, key_path)
    }

    /// A CRL of this CA revoking the given node ids; returns its path.
    pub fn crl(&self, revoked: &[u32]) -> PathBuf {
        let now = rcgen::date_time_ymd(2024, 1, 1);
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|id| RevokedCertParams {
                    serial_number: SerialNumber::from(u64::from(*id)),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca).unwrap();
        let path = self.dir.join(format!("{}-crl.pem", self.name));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

pub const WAIT: Duration = Duration::from_secs(10);

pub fn msg(from: u32, to: u32, seq: u64) -> Wire {
    Wire::Host(HostEnvelope {
        stream: 1,
        from,
        to,
        msg: HostMessage::User {
            data: format!("payload {seq} from {from} to {to} ")
                .repeat(4)
                .into_bytes(),
        },
    })
}

pub fn seq_of(e: &Wire) -> u64 {
    match e {
        Wire::Host(HostEnvelope {
            msg: HostMessage::User { data },
            ..
        }) => std::str::from_utf8(data).unwrap()["payload ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        _ => panic!("unexpected {e:?}"),
    }
}

pub fn cfg(id: u32, tls: Option<TlsConfig>) -> TransportConfig {
    let mut c = TransportConfig::new(id, "127.0.0.1:0".parse().unwrap());
    c.backoff_min = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(100);
    c.connect_timeout = Duration::from_secs(2);
    c.tls = tls;
    c
}

pub struct Node {
    pub t: Transport,
    pub rx: mpsc::Receiver<Wire>,
}

pub async fn start(c: TransportConfig) -> Node {
    let (tx, rx) = mpsc::channel(8192);
    let t = Transport::start(c, tx).await.expect("start");
    Node { t, rx }
}

pub fn link(a: &Node, b: &Node) {
    a.t.set_peer(b.t.node_id(), b.t.local_addr());
    b.t.set_peer(a.t.node_id(), a.t.local_addr());
}

pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not reached in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `from -> to` until one arrives at `rx` (the first sends may race
/// the handshake).
pub async fn reaches(from: &Node, rx: &mut mpsc::Receiver<Wire>, to: u32) {
    let deadline = Instant::now() + WAIT;
    let me = from.t.node_id();
    let mut seq = 1_000_000;
    loop {
        from.t.send(msg(me, to, seq));
        seq += 1;
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            assert_eq!((e.from_node(), e.to_node()), (me, to));
            return;
        }
        assert!(Instant::now() < deadline, "{me} never reached {to}");
    }
}

/// Sends `from -> to` for a while and checks nothing arrives.
pub async fn never_reaches(from: &Node, rx: &mut mpsc::Receiver<Wire>, to: u32) {
    let me = from.t.node_id();
    for seq in 0..30 {
        from.t.send(msg(me, to, seq));
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
            panic!("{me} -> {to} got through: {e:?}");
        }
    }
}
