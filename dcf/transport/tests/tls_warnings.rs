//! The warnings of refused TLS handshakes, in a test binary of its own:
//! the log capture uses a thread-local subscriber, and tracing caches a
//! log site's interest the first time it fires, so another test firing the
//! same warnings concurrently (without a subscriber) could hide them.

mod pki;

use std::io::Write;
use std::sync::{Arc, Mutex};

use pki::{cfg, link, never_reaches, reaches, start, Pki};

/// Captured log output (for the `warn!` of refused handshakes).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// Single-threaded so the thread-local log subscriber sees every task.
#[tokio::test(flavor = "current_thread")]
async fn rogue_certificate_is_refused_both_ways_and_logged() {
    let logs = Capture::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer({
            let l = logs.clone();
            move || l.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let rogue_pki = Pki::new(dir.path(), "rogue");
    let mut n1 = start(cfg(1, Some(pki.node(1)))).await;
    let mut n2 = start(cfg(2, Some(pki.node(2)))).await;
    // Node 3 trusts the cluster CA but its own certificate is signed by
    // the rogue CA: it would accept node 1, so any refusal is node 1's.
    let mut rogue = rogue_pki.node(3);
    rogue.ca_path = pki.ca_path();
    let mut n3 = start(cfg(3, Some(rogue))).await;
    link(&n1, &n2);
    link(&n1, &n3);

    reaches(&n2, &mut n1.rx, 1).await;
    // Node 3 as client: node 1 refuses its certificate.
    never_reaches(&n3, &mut n1.rx, 1).await;
    // Node 3 as server: node 1 refuses the server certificate.
    never_reaches(&n1, &mut n3.rx, 3).await;
    // And the trusted pair still works in both directions.
    reaches(&n1, &mut n2.rx, 2).await;
    reaches(&n2, &mut n1.rx, 1).await;

    let s1 = n1.t.stats();
    assert!(s1.tls_failures >= 2, "{s1:?}");
    assert!(n3.t.stats().tls_failures >= 1, "{:?}", n3.t.stats());
    assert_eq!(n2.t.stats().tls_failures, 0);
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("TLS handshake failed, refusing connection"),
        "no server-side warning in:\n{text}"
    );
    assert!(
        text.contains("TLS handshake with peer failed"),
        "no client-side warning in:\n{text}"
    );
}
