//! The real transport: tokio TCP carrying consensus-core's `wire` frames.
//!
//! - One outgoing connection per peer, fed by a bounded queue; a full queue drops the new frame
//!   (the protocol re-sends) and counts it. A lost connection is re-dialled with exponential
//!   backoff; frames queued meanwhile wait.
//! - Incoming connections authenticate with a challenge: the acceptor sends 32 random bytes,
//!   the dialer answers with its id and an ed25519 signature over the challenge and both ids.
//!   Frames on a connection are attributed to the authenticated peer, never to a claim.
//! - A frame header with the wrong magic or version, or a declared body above
//!   `wire::MAX_BODY_BYTES`, closes the connection and is counted; a body that does not decode
//!   reaches the runner as `Input::Malformed` and is counted as a rejection.
//!
//! Handshake bytes: acceptor → dialer `"BFHS" | 1 | acceptor id (u32 BE) | challenge (32)`;
//! dialer → acceptor `"BFHI" | dialer id (u32 BE) | signature (64)`.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus_core::runner::{Frame, TransportRx, TransportTx};
use consensus_core::{wire, AgentId};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::config::TransportConfig;
use crate::durable::Durability;
use crate::keys::{handshake_bytes, verify_with};

/// Handshake magic, acceptor side.
pub const HELLO_MAGIC: [u8; 4] = *b"BFHS";
/// Handshake magic, dialer side.
pub const IDENT_MAGIC: [u8; 4] = *b"BFHI";
/// Handshake version.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Bytes of the acceptor's hello.
pub const HELLO_BYTES: usize = 4 + 1 + 4 + 32;
/// Bytes of the dialer's answer.
pub const IDENT_BYTES: usize = 4 + 4 + 64;
/// Frames the runner's inbox holds before readers wait.
pub const INBOX_FRAMES: usize = 8_192;
/// Frames written to a socket in one go.
const WRITE_BATCH: usize = 64;
/// A frame identical to one the same peer sent less than this long ago is not delivered again.
///
/// Why: agents re-send their own messages every `retransmit_ms` until they decide, to replace
/// messages a lossy link lost. TCP loses nothing on a live connection, so a byte-identical
/// repeat tells the agent nothing new, and on a starved machine (the runner behind its inbox)
/// the repeats grow the backlog until every round times out: congestion collapse. One copy
/// per window still gets through, so the protocol's reactions to a peer's repeats (L66–L69:
/// answering a lagging peer) still happen, and the link stays fair-lossy.
pub const DUPLICATE_WINDOW: Duration = Duration::from_millis(1_000);
/// Frames remembered per connection for duplicate suppression.
const RECENT_FRAMES: usize = 8_192;

/// Recently delivered frames of one connection, by hash.
#[derive(Default)]
struct Recent {
    seen: BTreeMap<u64, Instant>,
}

impl Recent {
    /// Whether `frame` should be delivered (not a repeat within the window); remembers it.
    fn fresh(&mut self, frame: &[u8]) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        frame.hash(&mut hasher);
        let key = hasher.finish();
        let now = Instant::now();
        if self.seen.get(&key).is_some_and(|at| now.duration_since(*at) < DUPLICATE_WINDOW) {
            return false;
        }
        self.seen.insert(key, now);
        if self.seen.len() > RECENT_FRAMES {
            self.seen.retain(|_, at| now.duration_since(*at) < DUPLICATE_WINDOW);
        }
        true
    }
}

/// What the transport knows of each peer's reachability (for `/healthz`).
pub struct Links {
    start: Instant,
    peers: BTreeMap<AgentId, Link>,
}

#[derive(Default)]
struct Link {
    /// The outgoing connection is up.
    connected: AtomicBool,
    /// Milliseconds after `start` of the last frame read from the peer (0: never).
    heard_ms: AtomicU64,
}

impl Links {
    fn new(peers: &[Peer]) -> Links {
        Links { start: Instant::now(), peers: peers.iter().map(|p| (p.id, Link::default())).collect() }
    }

    fn set_connected(&self, peer: AgentId, up: bool) {
        if let Some(l) = self.peers.get(&peer) {
            l.connected.store(up, Ordering::Relaxed);
        }
    }

    fn heard(&self, peer: AgentId) {
        if let Some(l) = self.peers.get(&peer) {
            let ms = self.start.elapsed().as_millis() as u64;
            l.heard_ms.store(ms.max(1), Ordering::Relaxed);
        }
    }

    /// Peers with an outgoing connection up or a frame read from them within `window`.
    pub fn reachable(&self, window: Duration) -> Vec<AgentId> {
        let now = self.start.elapsed().as_millis() as u64;
        let window = window.as_millis() as u64;
        self.peers
            .iter()
            .filter(|(_, l)| {
                let heard = l.heard_ms.load(Ordering::Relaxed);
                l.connected.load(Ordering::Relaxed) || (heard > 0 && now.saturating_sub(heard) <= window)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many peers there are.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }
}

/// What the transport counted.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames written to sockets.
    pub frames_sent: Counter,
    /// Frames dropped because a peer's queue was full.
    pub frames_dropped: Counter,
    /// Frames read from authenticated peers.
    pub frames_received: Counter,
    /// Frames whose declared body exceeds the limit (connection closed).
    pub frames_oversized: Counter,
    /// Frames with a foreign magic or version (connection closed).
    pub frames_bad_header: Counter,
    /// Connections that failed the handshake.
    pub unauthenticated: Counter,
    /// Outgoing connections established.
    pub connects: Counter,
    /// Outgoing connections lost or refused.
    pub connect_failures: Counter,
    /// Frames identical to one the same peer sent within [`DUPLICATE_WINDOW`], not delivered.
    pub duplicates_suppressed: Counter,
}

impl TransportStats {
    /// Registers every counter.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("frames_sent", "Frames written to peer sockets", self.frames_sent.clone());
        registry.register("frames_dropped", "Frames dropped on a full peer queue", self.frames_dropped.clone());
        registry.register("frames_received", "Frames read from authenticated peers", self.frames_received.clone());
        registry.register(
            "frames_oversized",
            "Frames above the size limit (connection closed)",
            self.frames_oversized.clone(),
        );
        registry.register(
            "frames_bad_header",
            "Frames with a foreign magic or version (connection closed)",
            self.frames_bad_header.clone(),
        );
        registry.register(
            "unauthenticated_connections",
            "Connections that failed the handshake",
            self.unauthenticated.clone(),
        );
        registry.register("peer_connects", "Outgoing peer connections established", self.connects.clone());
        registry.register(
            "peer_connect_failures",
            "Outgoing peer connections refused or lost",
            self.connect_failures.clone(),
        );
        registry.register(
            "duplicate_frames_suppressed",
            "Frames identical to one the same peer sent within a second, not delivered again",
            self.duplicates_suppressed.clone(),
        );
    }
}

fn bump(counter: &Counter) {
    counter.inc();
}

/// Something that receives frames for the runner: (authenticated sender, frame).
pub type Inbox = mpsc::Sender<(AgentId, Frame)>;

/// The sending half the runner uses.
#[derive(Clone)]
pub struct TcpTx {
    queues: Arc<BTreeMap<AgentId, mpsc::Sender<(u64, Frame)>>>,
    stats: Arc<TransportStats>,
    durability: Option<Arc<Durability>>,
}

impl TcpTx {
    /// The peers frames can be sent to.
    pub fn peers(&self) -> Vec<AgentId> {
        self.queues.keys().copied().collect()
    }

    /// Queued frames per peer.
    pub fn queue_depths(&self) -> Vec<(AgentId, usize)> {
        self.queues.iter().map(|(id, q)| (*id, q.max_capacity() - q.capacity())).collect()
    }
}

impl TransportTx for TcpTx {
    fn send(&self, to: AgentId, frame: Frame) -> impl Future<Output = ()> {
        // Unknown recipients (the client, whose certificates the observer keeps) are skipped.
        if let Some(queue) = self.queues.get(&to) {
            // The frame may depend on logged inputs: it leaves once the log is durable so far.
            let mark = self.durability.as_ref().map_or(0, |d| d.required());
            if queue.try_send((mark, frame)).is_err() {
                bump(&self.stats.frames_dropped);
            }
        }
        std::future::ready(())
    }
}

/// The receiving half the runner uses.
pub struct TcpRx {
    rx: mpsc::Receiver<(AgentId, Frame)>,
}

impl TransportRx for TcpRx {
    fn recv(&mut self) -> impl Future<Output = Option<(AgentId, Frame)>> {
        // tokio's mpsc receive is cancel-safe, as the runner requires.
        self.rx.recv()
    }
}

/// A peer: where to dial it and how to recognise it.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its id.
    pub id: AgentId,
    /// Its TCP address.
    pub address: SocketAddr,
    /// Its public key.
    pub key: VerifyingKey,
}

/// A running transport's handles.
pub struct Transport {
    /// For the runner.
    pub tx: TcpTx,
    /// For the runner.
    pub rx: TcpRx,
    /// Injects local frames (the client's `Open`, the evaluator's vote).
    pub inbox: Inbox,
    /// Counters.
    pub stats: Arc<TransportStats>,
    /// Peer reachability.
    pub links: Arc<Links>,
}

/// Binds `listener`'s connections and dials every peer; returns the runner's halves.
pub fn start(
    me: AgentId,
    key: Arc<SigningKey>,
    listener: TcpListener,
    peers: &[Peer],
    config: TransportConfig,
    durability: Option<Arc<Durability>>,
) -> Transport {
    let stats = Arc::new(TransportStats::default());
    let links = Arc::new(Links::new(peers));
    let (inbox, rx) = mpsc::channel(INBOX_FRAMES);
    let known: Arc<BTreeMap<AgentId, VerifyingKey>> = Arc::new(peers.iter().map(|p| (p.id, p.key)).collect());
    let accept = Accept { me, known, inbox: inbox.clone(), stats: stats.clone(), links: links.clone(), config };
    tokio::spawn(accept_loop(listener, Arc::new(accept)));
    let mut queues = BTreeMap::new();
    for peer in peers {
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_frames.max(1));
        queues.insert(peer.id, queue_tx);
        let writer =
            Writer { me, peer: peer.clone(), key: key.clone(), durability: durability.clone(), links: links.clone() };
        tokio::spawn(writer.run(queue_rx, stats.clone(), config));
    }
    let tx = TcpTx { queues: Arc::new(queues), stats: stats.clone(), durability };
    Transport { tx, rx: TcpRx { rx }, inbox, stats, links }
}

/// What serving an incoming connection needs.
struct Accept {
    me: AgentId,
    known: Arc<BTreeMap<AgentId, VerifyingKey>>,
    inbox: Inbox,
    stats: Arc<TransportStats>,
    links: Arc<Links>,
    config: TransportConfig,
}

async fn accept_loop(listener: TcpListener, accept: Arc<Accept>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: wait and keep serving.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, accept.clone()));
    }
}

/// Authenticates an incoming connection, then forwards its frames until it closes or
/// misbehaves.
async fn serve_connection(mut stream: TcpStream, accept: Arc<Accept>) {
    let Accept { me, known, inbox, stats, links, config } = &*accept;
    let _ = stream.set_nodelay(true);
    let handshake = Duration::from_millis(config.handshake_timeout_ms);
    let peer = match tokio::time::timeout(handshake, authenticate(*me, &mut stream, known)).await {
        Ok(Some(peer)) => peer,
        _ => {
            bump(&stats.unauthenticated);
            return;
        }
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut recent = Recent::default();
    loop {
        let mut header = [0u8; wire::HEADER_BYTES];
        if reader.read_exact(&mut header).await.is_err() {
            return; // closed
        }
        if header[..2] != wire::MAGIC || header[2] != wire::VERSION {
            bump(&stats.frames_bad_header);
            return;
        }
        let declared = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        if declared > wire::MAX_BODY_BYTES {
            bump(&stats.frames_oversized);
            return;
        }
        let mut frame = vec![0u8; wire::HEADER_BYTES + declared];
        frame[..wire::HEADER_BYTES].copy_from_slice(&header);
        if reader.read_exact(&mut frame[wire::HEADER_BYTES..]).await.is_err() {
            return;
        }
        bump(&stats.frames_received);
        links.heard(peer);
        if !recent.fresh(&frame) {
            bump(&stats.duplicates_suppressed);
            continue;
        }
        if inbox.send((peer, frame.into())).await.is_err() {
            return; // the runner stopped
        }
    }
}

/// The acceptor's side of the handshake: the authenticated peer, or `None`.
async fn authenticate(me: AgentId, stream: &mut TcpStream, known: &BTreeMap<AgentId, VerifyingKey>) -> Option<AgentId> {
    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    hello.extend_from_slice(&HELLO_MAGIC);
    hello.push(HANDSHAKE_VERSION);
    hello.extend_from_slice(&me.0.to_be_bytes());
    hello.extend_from_slice(&challenge);
    stream.write_all(&hello).await.ok()?;
    let mut ident = [0u8; IDENT_BYTES];
    stream.read_exact(&mut ident).await.ok()?;
    if ident[..4] != IDENT_MAGIC {
        return None;
    }
    let dialer = AgentId(u32::from_be_bytes([ident[4], ident[5], ident[6], ident[7]]));
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&ident[8..]);
    let key = known.get(&dialer)?;
    verify_with(key, &handshake_bytes(&challenge, dialer, me), &signature).then_some(dialer)
}

/// The dialer's side: connects and proves its identity.
pub async fn dial(me: AgentId, peer: AgentId, address: SocketAddr, key: &SigningKey) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut hello = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello).await?;
    let acceptor = AgentId(u32::from_be_bytes([hello[5], hello[6], hello[7], hello[8]]));
    if hello[..4] != HELLO_MAGIC || hello[4] != HANDSHAKE_VERSION || acceptor != peer {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not the expected peer"));
    }
    let mut challenge = [0u8; 32];
    challenge.copy_from_slice(&hello[9..]);
    let signature = key.sign(&handshake_bytes(&challenge, me, peer)).to_bytes();
    let mut ident = Vec::with_capacity(IDENT_BYTES);
    ident.extend_from_slice(&IDENT_MAGIC);
    ident.extend_from_slice(&me.0.to_be_bytes());
    ident.extend_from_slice(&signature);
    stream.write_all(&ident).await?;
    Ok(stream)
}

/// Keeps one connection to a peer up and writes its queue to it.
struct Writer {
    me: AgentId,
    peer: Peer,
    key: Arc<SigningKey>,
    durability: Option<Arc<Durability>>,
    links: Arc<Links>,
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<(u64, Frame)>, stats: Arc<TransportStats>, config: TransportConfig) {
        let backoff_min = Duration::from_millis(config.backoff_min_ms.max(1));
        let backoff_max = Duration::from_millis(config.backoff_max_ms.max(config.backoff_min_ms).max(1));
        let handshake = Duration::from_millis(config.handshake_timeout_ms);
        let mut backoff = backoff_min;
        let mut batch: Vec<(u64, Frame)> = Vec::with_capacity(WRITE_BATCH);
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let connected =
                tokio::time::timeout(handshake, dial(self.me, self.peer.id, self.peer.address, &self.key)).await;
            let mut stream = match connected {
                Ok(Ok(stream)) => stream,
                _ => {
                    bump(&stats.connect_failures);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(backoff_max);
                    continue;
                }
            };
            bump(&stats.connects);
            self.links.set_connected(self.peer.id, true);
            backoff = backoff_min;
            loop {
                if batch.is_empty() {
                    let mut probe = [0u8; 1];
                    tokio::select! {
                        item = queue.recv() => match item {
                            Some(item) => batch.push(item),
                            None => return, // the node is shutting down
                        },
                        // The acceptor writes nothing after its hello, so a read ends only when
                        // the peer closed or reset the connection (it stopped): an idle link is
                        // then known down (healthz) and redialled, not believed up until the
                        // next write fails.
                        _ = stream.read(&mut probe) => {
                            bump(&stats.connect_failures);
                            self.links.set_connected(self.peer.id, false);
                            break;
                        }
                    }
                    while batch.len() < WRITE_BATCH {
                        match queue.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                }
                if let Some(d) = &self.durability {
                    let mark = batch.iter().map(|(m, _)| *m).max().unwrap_or(0);
                    d.wait_durable(mark).await;
                }
                buffer.clear();
                for (_, frame) in &batch {
                    buffer.extend_from_slice(frame);
                }
                if stream.write_all(&buffer).await.is_err() {
                    // Keep the batch for the next connection; the peer may have restarted.
                    bump(&stats.connect_failures);
                    self.links.set_connected(self.peer.id, false);
                    break;
                }
                stats.frames_sent.inc_by(batch.len() as u64);
                batch.clear();
            }
        }
    }
}
