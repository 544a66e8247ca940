//! TLS between transports on 127.0.0.1: mutual authentication against a CA
//! generated at test time, refusal of certificates from another CA (as
//! client and as server) and of revoked ones, refusal of plain TCP on a
//! TLS port, and clear start errors for bad files.

mod pki;

use std::net::SocketAddr;

use dcf_transport::{Compression, TlsConfig, Transport, TransportError};
use pki::{cfg, link, msg, never_reaches, reaches, seq_of, start, wait_for, Pki, WAIT};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_nodes_exchange_thousands_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let mut c1 = cfg(1, Some(pki.node(1)));
    c1.compression = Compression::Lz4;
    let mut nodes = [start(c1).await, start(cfg(2, Some(pki.node(2)))).await];
    link(&nodes[0], &nodes[1]);
    const N: u64 = 3000;
    for seq in 0..N {
        nodes[0].t.send(msg(1, 2, seq));
        nodes[1].t.send(msg(2, 1, seq));
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let other = 2 - i as u32;
        for want in 0..N {
            let e = tokio::time::timeout(WAIT, node.rx.recv())
                .await
                .expect("timed out")
                .unwrap();
            assert_eq!(e.from_node(), other);
            assert_eq!(seq_of(&e), want);
        }
    }
    for n in &nodes {
        let s = n.t.stats();
        assert_eq!(s.tls_failures, 0, "{s:?}");
        assert_eq!(s.bad_frames, 0, "{s:?}");
    }
    assert!(nodes[0].t.stats().compressed_frames_sent > 0);
    for n in &nodes {
        n.t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_another_ca_cannot_talk_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let rogue_pki = Pki::new(dir.path(), "rogue");
    let mut n1 = start(cfg(1, Some(pki.node(1)))).await;
    let mut n2 = start(cfg(2, Some(pki.node(2)))).await;
    let mut n9 = start(cfg(9, Some(rogue_pki.node(9)))).await;
    link(&n1, &n2);
    link(&n1, &n9);
    never_reaches(&n9, &mut n1.rx, 1).await;
    never_reaches(&n1, &mut n9.rx, 9).await;
    reaches(&n2, &mut n1.rx, 1).await;
    reaches(&n1, &mut n2.rx, 2).await;
    assert!(n1.t.stats().tls_failures >= 2);
    assert!(n9.t.stats().tls_failures >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let crl = pki.crl(&[3]);
    let with_crl = |id| {
        let mut t = pki.node(id);
        t.crl_path = Some(crl.clone());
        t
    };
    let mut n1 = start(cfg(1, Some(with_crl(1)))).await;
    let mut n2 = start(cfg(2, Some(with_crl(2)))).await;
    let mut n3 = start(cfg(3, Some(pki.node(3)))).await;
    link(&n1, &n2);
    link(&n1, &n3);
    reaches(&n2, &mut n1.rx, 1).await;
    never_reaches(&n3, &mut n1.rx, 1).await;
    never_reaches(&n1, &mut n3.rx, 3).await;
    reaches(&n1, &mut n2.rx, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_tls_nodes_cannot_talk() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let mut tls = start(cfg(1, Some(pki.node(1)))).await;
    let mut plain = start(cfg(2, None)).await;
    link(&tls, &plain);
    // Plain TCP (hello in clear) on the TLS port: refused at the handshake.
    never_reaches(&plain, &mut tls.rx, 1).await;
    wait_for("TLS side counts the failure", || {
        tls.t.stats().tls_failures >= 1
    })
    .await;
    // A TLS client on the plain port: its ClientHello is not a frame.
    never_reaches(&tls, &mut plain.rx, 2).await;
    wait_for("plain side sees bad frames", || {
        plain.t.stats().bad_frames >= 1
    })
    .await;
    // Raw bytes that are not TLS do not hurt the TLS listener either.
    let addr: SocketAddr = tls.t.local_addr();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"DF\x01\x00garbage").await;
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf)).await;
    assert!(r.is_ok(), "garbage connection not closed");
}

fn start_err(tls: TlsConfig) -> TransportError {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, _rx) = mpsc::channel(1);
        match Transport::start(cfg(1, Some(tls)), tx).await {
            Ok(_) => panic!("started with bad TLS files"),
            Err(e) => e,
        }
    })
}

#[test]
fn bad_tls_files_fail_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let good = pki.node(1);
    let other = pki.node(2);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let missing = dir.path().join("missing.pem");

    let cases: Vec<(&str, TlsConfig, &str)> = vec![
        (
            "missing CA",
            TlsConfig {
                ca_path: missing.clone(),
                ..good.clone()
            },
            "missing.pem",
        ),
        (
            "CA without certificates",
            TlsConfig {
                ca_path: garbage.clone(),
                ..good.clone()
            },
            "garbage.pem",
        ),
        (
            "truncated certificate",
            TlsConfig {
                cert_path: broken.clone(),
                ..good.clone()
            },
            "broken.pem",
        ),
        (
            "missing key",
            TlsConfig {
                key_path: missing.clone(),
                ..good.clone()
            },
            "missing.pem",
        ),
        (
            "certificate given as key",
            TlsConfig {
                key_path: good.cert_path.clone(),
                ..good.clone()
            },
            "node1.pem",
        ),
        (
            "key of another node",
            TlsConfig {
                key_path: other.key_path.clone(),
                ..good.clone()
            },
            "node2.key",
        ),
        (
            "bad CRL",
            TlsConfig {
                crl_path: Some(garbage.clone()),
                ..good.clone()
            },
            "garbage.pem",
        ),
    ];
    for (what, tls, file) in cases {
        let e = start_err(tls);
        let text = e.to_string();
        assert!(
            matches!(e, TransportError::TlsFile { .. } | TransportError::Tls(_)),
            "{what}: {e:?}"
        );
        assert!(
            text.contains(file),
            "{what}: error does not name {file}: {text}"
        );
    }
}

#[test]
fn dcf_params_turn_tls_on_only_when_complete() {
    assert_eq!(TlsConfig::from_dcf_params("", "", "", "").unwrap(), None);
    let t = TlsConfig::from_dcf_params("/ca.pem", "/c.pem", "/k.pem", "")
        .unwrap()
        .unwrap();
    assert_eq!(t, TlsConfig::new("/ca.pem", "/c.pem", "/k.pem"));
    let t = TlsConfig::from_dcf_params("/ca.pem", "/c.pem", "/k.pem", "/crl.pem")
        .unwrap()
        .unwrap();
    assert_eq!(
        t.crl_path.as_deref(),
        Some(std::path::Path::new("/crl.pem"))
    );
    for (ca, cert, key, missing) in [
        ("/ca.pem", "", "", "SSL_CERT, SSL_KEY"),
        ("", "/c.pem", "/k.pem", "SSL_CA"),
        ("/ca.pem", "/c.pem", "", "SSL_KEY"),
    ] {
        let e = TlsConfig::from_dcf_params(ca, cert, key, "").unwrap_err();
        assert!(e.to_string().contains(missing), "{e}");
    }
    assert!(TlsConfig::from_dcf_params("", "", "", "/crl.pem").is_err());
}
