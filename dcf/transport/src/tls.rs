//! TLS between nodes (DCF's SSL_CA / SSL_CERT / SSL_KEY / SSL_CRL), with
//! rustls and its `ring` provider.
//!
//! Both directions are mutually authenticated against one CA: the
//! accepting side requires a client certificate and verifies its chain to
//! the CA; the connecting side verifies the server's chain to the same CA
//! and presents its own certificate. TLS 1.2 is the minimum (rustls offers
//! 1.3 and 1.2, nothing older), with rustls's default cipher suites (all
//! AEAD with forward secrecy); DCF's SSL_CIPHER is not applied.
//!
//! Peer names: nodes are addressed by IP and node certificates often carry
//! no matching name, so the connecting side accepts a server certificate
//! for *any* name as long as its chain verifies to the configured CA (and
//! it is not revoked by the CRL, and it is within its validity period).
//! In other words the CA is the trust boundary: every certificate it signed
//! is a cluster member. The node id is not bound to the certificate either:
//! a node with a valid certificate may claim any member id in its hello, as
//! with plain TCP. Use a CA dedicated to the cluster.
//!
//! The hello frame and everything after it travel inside TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::TransportError;

/// Where the PEM files of a node's TLS identity are. TLS is on for a
/// transport exactly when its [`crate::TransportConfig::tls`] is `Some`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The CA certificate(s) that sign every node certificate (PEM; all
    /// certificates in the file are trusted).
    pub ca_path: PathBuf,
    /// This node's certificate chain (PEM, leaf first).
    pub cert_path: PathBuf,
    /// This node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// Optional certificate revocation list(s) of the CA (PEM); a revoked
    /// certificate is refused in both directions.
    pub crl_path: Option<PathBuf>,
}

impl TlsConfig {
    /// A configuration without a CRL.
    pub fn new(
        ca_path: impl Into<PathBuf>,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> TlsConfig {
        TlsConfig {
            ca_path: ca_path.into(),
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            crl_path: None,
        }
    }

    /// Builds the configuration from DCF's SSL_CA, SSL_CERT, SSL_KEY and
    /// SSL_CRL values (empty = unset): `None` when none of CA, certificate
    /// and key is set, an error naming the missing ones when only some
    /// are (a half-configured node would otherwise silently talk plain
    /// TCP, or never talk at all).
    pub fn from_dcf_params(
        ca: &str,
        cert: &str,
        key: &str,
        crl: &str,
    ) -> Result<Option<TlsConfig>, TransportError> {
        let (ca, cert, key, crl) = (ca.trim(), cert.trim(), key.trim(), crl.trim());
        let set = [("SSL_CA", ca), ("SSL_CERT", cert), ("SSL_KEY", key)];
        let missing: Vec<&str> = set
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if missing.len() == set.len() {
            if !crl.is_empty() {
                return Err(TransportError::InvalidConfig(
                    "SSL_CRL is set but SSL_CA, SSL_CERT and SSL_KEY are not".into(),
                ));
            }
            return Ok(None);
        }
        if !missing.is_empty() {
            return Err(TransportError::InvalidConfig(format!(
                "TLS needs SSL_CA, SSL_CERT and SSL_KEY together; missing {}",
                missing.join(", ")
            )));
        }
        Ok(Some(TlsConfig {
            ca_path: ca.into(),
            cert_path: cert.into(),
            key_path: key.into(),
            crl_path: (!crl.is_empty()).then(|| crl.into()),
        }))
    }
}

/// The rustls configurations built from a [`TlsConfig`] once at start.
#[derive(Clone)]
pub(crate) struct TlsContext {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsContext")
    }
}

fn file_err(what: &'static str, path: &Path, reason: impl ToString) -> TransportError {
    TransportError::TlsFile {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads every PEM section of type `T` in `path`; at least one must be
/// there. The file is read up front so a missing or unreadable file gives
/// an I/O reason rather than "no certificate found".
fn read_pem_all<T: PemObject>(
    what: &'static str,
    path: &Path,
    kind: &str,
) -> Result<Vec<T>, TransportError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(what, path, e))?;
    let items: Vec<T> = T::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(what, path, format!("malformed PEM: {e}")))?;
    if items.is_empty() {
        return Err(file_err(what, path, format!("no {kind} PEM section found")));
    }
    Ok(items)
}

impl TlsContext {
    /// Loads and checks the files and builds both sides' configurations.
    pub fn load(cfg: &TlsConfig) -> Result<TlsContext, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cas: Vec<CertificateDer<'static>> = read_pem_all("CA", &cfg.ca_path, "CERTIFICATE")?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| file_err("CA", &cfg.ca_path, format!("not a usable CA: {e}")))?;
        }
        let roots = Arc::new(roots);
        let certs: Vec<CertificateDer<'static>> =
            read_pem_all("certificate", &cfg.cert_path, "CERTIFICATE")?;
        let key_bytes =
            std::fs::read(&cfg.key_path).map_err(|e| file_err("private key", &cfg.key_path, e))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
            file_err(
                "private key",
                &cfg.key_path,
                format!("no valid PEM private key: {e}"),
            )
        })?;
        let crls: Vec<CertificateRevocationListDer<'static>> = match &cfg.crl_path {
            Some(p) => read_pem_all("CRL", p, "X509 CRL")?,
            None => Vec::new(),
        };
        let crl_err = |e: rustls::server::VerifierBuilderError| match &cfg.crl_path {
            Some(p) => file_err("CRL", p, e),
            None => file_err("CA", &cfg.ca_path, e),
        };
        let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .with_crls(crls.clone())
                .build()
                .map_err(crl_err)?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| key_mismatch(cfg, e))?;
        // Connections are long-lived and never resumed; tickets would only
        // be bytes the (read-only) accepting side has to push out.
        server.send_tls13_tickets = 0;

        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .with_crls(crls)
            .build()
            .map_err(crl_err)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier { inner }))
            .with_client_auth_cert(certs, key)
            .map_err(|e| key_mismatch(cfg, e))?;
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

fn key_mismatch(cfg: &TlsConfig, e: rustls::Error) -> TransportError {
    TransportError::Tls(format!(
        "certificate {} and private key {} cannot be used together: {e}",
        cfg.cert_path.display(),
        cfg.key_path.display()
    ))
}

/// Verifies a server certificate like rustls's WebPKI verifier (chain to
/// the CA, validity period, CRL, handshake signatures) but accepts it for
/// any name; see the module docs for why.
#[derive(Debug)]
struct AnyNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The WebPKI verifier checks the chain (and revocation) first and
        // the name last, so a name error means everything else passed.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name the connecting side verifies against: the peer's IP (it is
/// not sent as SNI; any name is accepted, see the module docs).
pub(crate) fn server_name(addr: std::net::SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}
