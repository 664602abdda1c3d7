//! The loopback proxy between nodes that the harness owns: every node dials each peer through
//! its own listener for that link (node i's `[[peers]] address` of peer j is the proxy's
//! `i → j` port), and the proxy applies the scenario's network to whole frames.
//!
//! A node's connection to a peer carries frames one way only (node/src/transport.rs: the
//! dialer sends, the acceptor only says hello), so after the handshake (the acceptor's hello,
//! passed through; the dialer's 72-byte ident, passed through) the `i → j` stream is a
//! sequence of consensus-core `wire` frames (7-byte header, body length at bytes 3..7). Per
//! frame the proxy does what the simulator's network does per message: a partition in effect
//! discards it (the link is cut, as in the simulator: nothing is delivered later), a clog holds
//! it (with every later frame of the link, keeping TCP's order) until the unclog, `drop` loses
//! it, `duplicate` sends it twice, and `latency_ms` delays it (never reordering a connection).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use consensus_core::wire;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::scenario::{ClogTarget, Network};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes of the dialer's ident (node/src/transport.rs: magic, id, signature).
const IDENT_BYTES: usize = 4 + 4 + 64;
/// Frames a clogged link holds before it drops new ones (counted as dropped).
const HELD_FRAMES: usize = 65_536;

/// What the network does now; the fault timeline changes it.
#[derive(Debug)]
struct State {
    network: Network,
    /// `(groups, one_way)` of the partition in effect.
    partition: Option<(Vec<Vec<u32>>, bool)>,
    clogs: BTreeSet<ClogTarget>,
    rng: ChaCha8Rng,
    counts: reports::model::MessageCounts,
}

/// The proxy's shared state: the network conditions and the frame counters.
#[derive(Clone, Debug)]
pub struct Net {
    state: Arc<Mutex<State>>,
}

/// What happens to one frame.
enum Fate {
    Discard,
    Deliver { copies: usize, delay: Duration },
}

impl Net {
    /// The network of a scenario; drops, duplicates and latencies drawn from `seed`.
    pub fn new(network: Network, seed: u64) -> Net {
        let state = State {
            network,
            partition: None,
            clogs: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            counts: reports::model::MessageCounts::default(),
        };
        Net { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts the links between groups (only from `groups[0]` to the others when `one_way`),
    /// replacing any partition in effect.
    pub fn partition(&self, groups: Vec<Vec<u32>>, one_way: bool) {
        self.lock().partition = Some((groups, one_way));
    }

    /// Removes the partition in effect.
    pub fn heal(&self) {
        self.lock().partition = None;
    }

    /// Holds a target's frames until [`Net::unclog`].
    pub fn clog(&self, target: ClogTarget) {
        self.lock().clogs.insert(target);
    }

    /// Releases a clog.
    pub fn unclog(&self, target: ClogTarget) {
        self.lock().clogs.remove(&target);
    }

    /// Frames seen, delivered and lost so far.
    pub fn counts(&self) -> reports::model::MessageCounts {
        self.lock().counts
    }

    fn cut(state: &State, from: u32, to: u32) -> bool {
        let Some((groups, one_way)) = &state.partition else { return false };
        let group = |a: u32| groups.iter().position(|g| g.contains(&a));
        match (group(from), group(to)) {
            (Some(a), Some(b)) if a != b => !*one_way || a == 0,
            _ => false,
        }
    }

    fn clogged(&self, from: u32, to: u32) -> bool {
        let state = self.lock();
        state.clogs.iter().any(|c| match *c {
            ClogTarget::Agent(a) => a == from || a == to,
            ClogTarget::Link([a, b]) => (a == from && b == to) || (a == to && b == from),
        })
    }

    /// Decides the fate of one frame of `len` bytes from `from` to `to`.
    fn fate(&self, from: u32, to: u32, len: usize) -> Fate {
        let mut state = self.lock();
        state.counts.sent += 1;
        state.counts.bytes += len as u64;
        if Net::cut(&state, from, to) {
            state.counts.dropped += 1;
            return Fate::Discard;
        }
        let network = state.network;
        if network.drop > 0.0 && state.rng.gen_bool(network.drop.clamp(0.0, 1.0)) {
            state.counts.dropped += 1;
            return Fate::Discard;
        }
        let [min, max] = network.latency_ms;
        let delay = Duration::from_millis(if max > min { state.rng.gen_range(min..=max) } else { min });
        let twice = network.duplicate > 0.0 && state.rng.gen_bool(network.duplicate.clamp(0.0, 1.0));
        Fate::Deliver { copies: if twice { 2 } else { 1 }, delay }
    }

    fn delivered(&self, copies: usize) {
        self.lock().counts.delivered += copies as u64;
    }

    fn lost(&self) {
        self.lock().counts.dropped += 1;
    }
}

/// Starts the proxy of link `from → to`: accepts on `listener`, forwards to `upstream`.
pub fn spawn_link(
    net: Net,
    listener: TcpListener,
    from: u32,
    to: u32,
    upstream: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((downstream, _)) = listener.accept().await {
            let net = net.clone();
            tokio::spawn(async move {
                if let Ok(up) = TcpStream::connect(upstream).await {
                    let _ = up.set_nodelay(true);
                    let _ = downstream.set_nodelay(true);
                    forward(net, downstream, up, from, to).await;
                }
                // Upstream down (crashed node): dropping `downstream` closes it; the node redials.
            });
        }
    })
}

/// One proxied connection: hello back, ident forward, then frame by frame.
async fn forward(net: Net, downstream: TcpStream, upstream: TcpStream, from: u32, to: u32) {
    let (mut down_r, mut down_w) = downstream.into_split();
    let (mut up_r, mut up_w) = upstream.into_split();
    // The acceptor's hello (and anything else it ever writes) goes back unchanged.
    // The acceptor never writes after its hello, so the end of this copy means it is gone.
    let mut back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
    });
    let mut ident = [0u8; IDENT_BYTES];
    if down_r.read_exact(&mut ident).await.is_err() || up_w.write_all(&ident).await.is_err() {
        back.abort();
        return;
    }
    let (tx, rx) = mpsc::channel::<(Instant, usize, Vec<u8>)>(HELD_FRAMES);
    let writer = tokio::spawn(write_frames(net.clone(), rx, up_w, from, to));
    let mut last_due = Instant::now();
    loop {
        let mut header = [0u8; wire::HEADER_BYTES];
        let read = tokio::select! {
            biased;
            // The upstream node closed (crashed): close the dialer's connection too, so that
            // it notices and redials, as it would without the proxy.
            _ = &mut back => break,
            r = down_r.read_exact(&mut header) => r,
        };
        if read.is_err() {
            break;
        }
        let body = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        if body > wire::MAX_BODY_BYTES {
            break; // the acceptor would close it too
        }
        let mut frame = vec![0u8; wire::HEADER_BYTES + body];
        frame[..wire::HEADER_BYTES].copy_from_slice(&header);
        if down_r.read_exact(&mut frame[wire::HEADER_BYTES..]).await.is_err() {
            break;
        }
        if let Fate::Deliver { copies, delay } = net.fate(from, to, frame.len()) {
            // Never earlier than the frame before: one TCP connection does not reorder.
            last_due = last_due.max(Instant::now() + delay);
            match tx.try_send((last_due, copies, frame)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => net.lost(),
                Err(mpsc::error::TrySendError::Closed(_)) => break, // upstream write failed
            }
        }
    }
    drop(down_r);
    drop(tx);
    back.abort();
    let _ = writer.await;
}

/// Writes frames when due, holding them while the link is clogged.
async fn write_frames(
    net: Net,
    mut rx: mpsc::Receiver<(Instant, usize, Vec<u8>)>,
    mut up: tokio::net::tcp::OwnedWriteHalf,
    from: u32,
    to: u32,
) {
    while let Some((due, copies, frame)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        while net.clogged(from, to) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..copies {
            if up.write_all(&frame).await.is_err() {
                return;
            }
        }
        net.delivered(copies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Net {
        Net::new(Network { drop: 0.0, latency_ms: [0, 0], tail: None, duplicate: 0.0 }, 1)
    }

    #[test]
    fn a_partition_cuts_links_between_groups_only_and_one_way_only_from_the_first() {
        let n = net();
        n.partition(vec![vec![0, 1], vec![2, 3]], false);
        let state = n.lock();
        assert!(Net::cut(&state, 0, 2) && Net::cut(&state, 3, 1));
        assert!(!Net::cut(&state, 0, 1) && !Net::cut(&state, 2, 3) && !Net::cut(&state, 4, 0));
        drop(state);
        n.partition(vec![vec![0], vec![1, 2]], true);
        let state = n.lock();
        assert!(Net::cut(&state, 0, 1) && !Net::cut(&state, 1, 0));
    }

    #[test]
    fn clogs_hold_an_agents_links_both_ways_until_unclogged() {
        let n = net();
        n.clog(ClogTarget::Agent(2));
        n.clog(ClogTarget::Link([0, 1]));
        assert!(n.clogged(2, 0) && n.clogged(4, 2) && n.clogged(1, 0) && !n.clogged(3, 4));
        n.unclog(ClogTarget::Agent(2));
        assert!(!n.clogged(2, 0));
    }

    #[test]
    fn drops_are_counted_and_drawn_from_the_seed() {
        let lossy = Network { drop: 0.5, latency_ms: [0, 0], tail: None, duplicate: 0.0 };
        let fates = |seed| {
            let n = Net::new(lossy, seed);
            (0..200).map(|_| matches!(n.fate(0, 1, 10), Fate::Discard)).collect::<Vec<bool>>()
        };
        assert_eq!(fates(7), fates(7));
        let lost = fates(7).iter().filter(|d| **d).count();
        assert!((50..150).contains(&lost), "{lost} of 200 lost at p = 0.5");
    }
}
