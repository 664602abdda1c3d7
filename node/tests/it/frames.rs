//! Hostile bytes on the peer port.

use std::time::Duration;

use consensus_core::{wire, AgentId};
use node::config::NodeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{exclusive, Cluster};

/// Unauthenticated connections, malformed bodies, foreign headers and oversized frames are
/// rejected and counted, and the node keeps deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_are_rejected_counted_and_the_node_stays_up() {
    let _one = exclusive().await;
    let cluster = Cluster::start("frames", 4, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3]).await;
        let config = node::checks::load(&cluster.configs[0]).unwrap_or_else(|e| panic!("{e}"));
        let target = config.listen;
        let one = node::checks::load(&cluster.configs[1]).unwrap_or_else(|e| panic!("{e}"));
        let key = node::keys::read_secret(&NodeConfig::resolve(&cluster.configs[1], &one.key_file))
            .unwrap_or_else(|e| panic!("{e}"));

        // 1. No handshake: junk instead of a signed identity.
        let mut raw = TcpStream::connect(target).await.unwrap_or_else(|e| panic!("{e}"));
        let mut hello = [0u8; node::transport::HELLO_BYTES];
        raw.read_exact(&mut hello).await.unwrap_or_else(|e| panic!("{e}"));
        let _ = raw.write_all(&[0xAB; node::transport::IDENT_BYTES]).await;
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest).await; // closed by the node

        // 2. A valid identity signed with the wrong key (agent 2 claims to be agent 1).
        let two = node::checks::load(&cluster.configs[2]).unwrap_or_else(|e| panic!("{e}"));
        let wrong = node::keys::read_secret(&NodeConfig::resolve(&cluster.configs[2], &two.key_file))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut forged =
            node::transport::dial(AgentId(1), AgentId(0), target, &wrong).await.unwrap_or_else(|e| panic!("{e}"));
        let mut rest = Vec::new();
        let _ = forged.read_to_end(&mut rest).await;

        // 3. Authenticated, a body that is not a message: rejected as malformed, connection kept.
        let mut conn =
            node::transport::dial(AgentId(1), AgentId(0), target, &key).await.unwrap_or_else(|e| panic!("{e}"));
        let mut frame = wire::MAGIC.to_vec();
        frame.push(wire::VERSION);
        frame.extend_from_slice(&4u32.to_be_bytes());
        frame.extend_from_slice(&[250, 251, 252, 253]);
        conn.write_all(&frame).await.unwrap_or_else(|e| panic!("{e}"));
        // 4. Then a frame declaring a body above the limit: the connection is closed.
        let mut big = wire::MAGIC.to_vec();
        big.push(wire::VERSION);
        big.extend_from_slice(&((wire::MAX_BODY_BYTES as u32) + 1).to_be_bytes());
        conn.write_all(&big).await.unwrap_or_else(|e| panic!("{e}"));
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;

        // 5. Authenticated, a foreign header.
        let mut conn =
            node::transport::dial(AgentId(1), AgentId(0), target, &key).await.unwrap_or_else(|e| panic!("{e}"));
        conn.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;

        let mut counted = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..100 {
            counted = (
                cluster.metric(0, "bftsim_unauthenticated_connections_total", "").await,
                cluster.metric(0, "bftsim_rejections_total", "reason=\"malformed\"").await,
                cluster.metric(0, "bftsim_frames_oversized_total", "").await,
                cluster.metric(0, "bftsim_frames_bad_header_total", "").await,
            );
            if counted == (2.0, 1.0, 1.0, 1.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counted, (2.0, 1.0, 1.0, 1.0), "(unauthenticated, malformed, oversized, bad header)");

        // The node is up and still takes part.
        let s = cluster.open(1, "still alive?").await;
        for i in 0..4 {
            cluster.must_decide(i, s, 20_000).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.unwrap_or_else(|_| panic!("timed out"));
}
