//! The DCF library API in-process: three `Dcf` instances on loopback.

use dcf::core::{Entry, NodeId, StreamId};
use dcf::engine::{Dcf, DcfCallbacks, DcfError, StartOptions};
use dcf::params::Params;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Recorded {
    committed: Mutex<Vec<Entry>>,
    messages: Mutex<Vec<(NodeId, Vec<u8>)>>,
}

struct Cb(Arc<Recorded>);
impl DcfCallbacks for Cb {
    fn on_commit(&self, _s: StreamId, entries: Vec<Entry>, _leader: bool) {
        self.0.committed.lock().unwrap().extend(entries);
    }
    fn on_user_message(&self, _s: StreamId, from: NodeId, data: Vec<u8>) {
        self.0.messages.lock().unwrap().push((from, data));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    dcf: Dcf,
    rec: Arc<Recorded>,
}

fn start_cluster(dir: &std::path::Path) -> Vec<Node> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let config = format!(
        "[{}]",
        (0..3)
            .map(|i| format!(
                r#"{{"stream_id":1,"node_id":{},"ip":"127.0.0.1","port":{},"role":"{}"}}"#,
                i + 1,
                ports[i],
                if i == 0 { "LEADER" } else { "FOLLOWER" }
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    (1..=3)
        .map(|id| {
            let rec = Arc::new(Recorded::default());
            let mut opts = StartOptions::new(dir.join(format!("n{id}")));
            let mut params = Params::default();
            params.set("ELECTION_TIMEOUT", "500").unwrap();
            params.set("HEARTBEAT_INTERVAL", "100").unwrap();
            opts.params = params;
            opts.callbacks = Arc::new(Cb(rec.clone()));
            Node {
                dcf: Dcf::start(id, &config, opts).unwrap(),
                rec,
            }
        })
        .collect()
}

fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn leader_of(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| {
        let info: serde_json::Value =
            serde_json::from_str(&n.dcf.query_stream_info(1).unwrap()).unwrap();
        info["role"] == "LEADER" && n.dcf.stream_status(1).unwrap().leader_ready
    })
}

#[test]
fn universal_write_from_a_follower_user_messages_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let leader = wait_for(Duration::from_secs(5), || leader_of(&nodes)).expect("a leader");
    let follower = (leader + 1) % 3;
    // Followers know the leader once a heartbeat arrived.
    wait_for(Duration::from_secs(2), || {
        nodes[follower]
            .dcf
            .stream_status(1)
            .unwrap()
            .leader_id
            .map(|_| ())
    });

    // A plain write on a follower is refused with the leader's id ...
    match rt.block_on(nodes[follower].dcf.write(1, 7, b"x".to_vec())) {
        Err(DcfError::NotLeader { leader: Some(l) }) => assert_eq!(l as usize, leader + 1),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    // ... while universal_write forwards it to the leader.
    let (term, index) = rt
        .block_on(
            nodes[follower]
                .dcf
                .universal_write(1, 42, b"forwarded".to_vec()),
        )
        .expect("forwarded write");
    for n in &nodes {
        let found = wait_for(Duration::from_secs(3), || {
            n.rec
                .committed
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.index == index)
                .cloned()
        })
        .expect("entry committed on every node");
        assert_eq!(
            (found.term, found.key, found.data.as_slice()),
            (term, 42, &b"forwarded"[..])
        );
        n.dcf.set_applied_index(1, index);
    }
    let entry = rt.block_on(nodes[leader].dcf.read(1, index)).unwrap();
    assert_eq!(entry.data, b"forwarded");

    // User messages reach the other nodes' callbacks.
    nodes[leader]
        .dcf
        .broadcast_msg(1, b"hello".to_vec())
        .unwrap();
    for (i, n) in nodes.iter().enumerate() {
        if i == leader {
            continue;
        }
        let got = wait_for(Duration::from_secs(3), || {
            n.rec.messages.lock().unwrap().first().cloned()
        });
        assert_eq!(got, Some(((leader + 1) as NodeId, b"hello".to_vec())));
    }
    assert!(matches!(
        nodes[leader].dcf.send_msg(1, 2, vec![0; 600 * 1024]),
        Err(DcfError::MessageTooLarge(_))
    ));

    // Queries use DCF's field names.
    let info: serde_json::Value =
        serde_json::from_str(&nodes[leader].dcf.query_stream_info(1).unwrap()).unwrap();
    for field in [
        "stream_id",
        "local_node_id",
        "role",
        "term",
        "run_mode",
        "work_mode",
        "hb_interval",
        "elc_timeout",
        "applied_index",
        "commit_index",
        "first_index",
        "last_index",
        "cluster_min_apply_idx",
        "leader_id",
        "leader_ip",
        "leader_port",
        "nodes",
    ] {
        assert!(
            info.get(field).is_some(),
            "stream info lacks {field}: {info}"
        );
    }
    assert_eq!(info["nodes"].as_array().unwrap().len(), 3);
    assert!(
        info["nodes"][0].get("match_index").is_some(),
        "leader reports per-node progress"
    );
    let cluster: serde_json::Value =
        serde_json::from_str(&nodes[0].dcf.query_cluster_info().unwrap()).unwrap();
    assert_eq!(cluster["stream_list"].as_array().unwrap().len(), 1);
    let li: serde_json::Value =
        serde_json::from_str(&nodes[follower].dcf.query_leader_info(1).unwrap()).unwrap();
    assert_eq!(li["leader_id"], (leader + 1) as u64);
    assert!(nodes[leader].dcf.get_last_index(1).unwrap() >= index);
    assert!(nodes[leader].dcf.get_node_last_disk_index(1).unwrap() >= index);
    assert!(nodes[leader].dcf.get_leader_last_index(1).unwrap() >= index);
    wait_for(Duration::from_secs(3), || {
        (nodes[leader].dcf.get_cluster_min_applied_idx(1).unwrap() >= index).then_some(())
    })
    .expect("cluster min applied index reaches the write");

    // Parameters: DCF names, clear errors.
    nodes[0].dcf.set_param("ELECTION_TIMEOUT", "800").unwrap();
    assert_eq!(nodes[0].dcf.get_param("election_timeout").unwrap(), "800");
    let e = nodes[0].dcf.set_param("ELECTION_TIMEOUT", "0").unwrap_err();
    assert!(e.to_string().contains("ELECTION_TIMEOUT"), "{e}");
    assert!(nodes[0].dcf.set_param("NOPE", "1").is_err());

    // Prefix truncation: entries below the kept index are gone.
    rt.block_on(nodes[leader].dcf.truncate(1, index)).unwrap();
    wait_for(Duration::from_secs(2), || {
        (nodes[leader].dcf.stream_status(1).unwrap().first_index == index).then_some(())
    })
    .expect("first index moved");
    assert!(matches!(
        rt.block_on(nodes[leader].dcf.read(1, 1)),
        Err(DcfError::NoEntry(1))
    ));
    for n in &nodes {
        n.dcf.stop();
    }
}

#[test]
fn persisted_metadata_wins_over_the_passed_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = format!(
        r#"[{{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":{port},"role":"LEADER"}}]"#
    );
    let d = Dcf::start(1, &cfg, StartOptions::new(dir.path())).unwrap();
    d.stop();
    drop(d);
    // Restart with a different (still valid) config: the persisted one is used.
    let other = free_port();
    let cfg2 = format!(
        r#"[{{"stream_id":1,"node_id":1,"ip":"127.0.0.1","port":{other},"role":"LEADER"}}]"#
    );
    let d = Dcf::start(1, &cfg2, StartOptions::new(dir.path())).unwrap();
    let info: serde_json::Value = serde_json::from_str(&d.query_stream_info(1).unwrap()).unwrap();
    assert_eq!(info["nodes"][0]["port"], port);
    d.stop();
    // A malformed config is rejected with a clear error even on restart.
    let e = Dcf::start(1, "[{", StartOptions::new(dir.path()))
        .err()
        .expect("malformed config rejected");
    assert!(e.to_string().contains("config"), "{e}");
}
