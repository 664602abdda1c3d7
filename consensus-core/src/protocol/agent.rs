//! One agent: every session's agreement state, the replicated registry and its epochs
//! (docs/protocol.md, "Replicated reputation").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::registry::{Registry, RegistryEvent, SessionRecord};
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};
use crate::wire;

use super::messages::Message;
use super::session::{Committee, Ctx, SessionMachine};
use super::{Input, Node, Output, ProtocolConfig, Rejection};

/// Sessions ahead of the last applied one that an agent accepts messages for.
const MAX_SESSIONS_AHEAD: u64 = 1_024;
/// Messages buffered per session while its registry epoch is not ready.
const MAX_BUFFERED_PER_SESSION: usize = 4_096;

/// What an agent counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Inputs rejected, by reason.
    pub rejected: BTreeMap<Rejection, u64>,
    /// Evidence of Byzantine behaviour produced.
    pub evidence: u64,
    /// Sessions decided.
    pub decided: u64,
    /// Registry changes applied from decided sessions.
    pub registry_events: Vec<RegistryEvent>,
}

/// An honest agent: the protocol state machine of docs/protocol.md for every session.
pub struct Agent<S, V> {
    id: AgentId,
    signer: S,
    verifier: V,
    engine: EngineConfig,
    protocol: ProtocolConfig,
    registry: Registry,
    applied: u64,
    epochs: BTreeMap<u64, Registry>,
    sessions: BTreeMap<SessionId, SessionMachine>,
    buffered: BTreeMap<SessionId, Vec<Input>>,
    records: BTreeMap<SessionId, SessionRecord>,
    sync_sent_at: Option<TimeMs>,
    sync_served_at: BTreeMap<AgentId, TimeMs>,
    stats: AgentStats,
}

impl<S: Signer, V: Verifier> Agent<S, V> {
    /// An agent with its signer, the committee's verifier, and the registry at session 0.
    pub fn new(signer: S, verifier: V, registry: Registry, engine: EngineConfig, protocol: ProtocolConfig) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(0, registry.clone());
        Agent {
            id: signer.agent(),
            signer,
            verifier,
            engine,
            protocol,
            registry,
            applied: 0,
            epochs,
            sessions: BTreeMap::new(),
            buffered: BTreeMap::new(),
            records: BTreeMap::new(),
            sync_sent_at: None,
            sync_served_at: BTreeMap::new(),
            stats: AgentStats::default(),
        }
    }

    /// The registry after every session applied so far.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sessions applied to the registry (all of `0..applied` are decided here).
    pub fn applied_sessions(&self) -> u64 {
        self.applied
    }

    /// Counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// Whether this agent decided `session`.
    pub fn has_decided(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|m| m.decided().is_some()) || session.0 < self.applied
    }

    /// The round `session` is in here, if its state is held.
    pub fn round_of(&self, session: SessionId) -> Option<u32> {
        self.sessions.get(&session).map(SessionMachine::round)
    }

    /// The registry version session `s` is validated against: sessions `0 .. s + 1 − pipeline`.
    fn epoch_of(&self, session: SessionId) -> u64 {
        session.0.saturating_add(1).saturating_sub(self.protocol.pipeline.max(1))
    }

    fn reject(&mut self, from: AgentId, reason: Rejection, out: &mut Vec<Output>) {
        out.push(Output::Reject { from, reason });
    }

    /// Routes one input to its session, creating the session when its epoch is ready and
    /// buffering it otherwise.
    fn route(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
        let (session, from) = match &input {
            Input::Receive { from, message: Message::Sync { next } } => {
                self.serve_sync(now, *from, *next, out);
                return;
            }
            Input::Receive { from, message } => (message.session(), *from),
            Input::Recover => {
                self.recover(now, out);
                return;
            }
            Input::LocalVote(v) => (v.session, self.id),
            Input::Timeout(t) => (t.session, self.id),
            Input::Malformed { from } => {
                self.reject(*from, Rejection::Malformed, out);
                return;
            }
        };
        if session.0 > self.applied.saturating_add(self.protocol.pipeline).saturating_add(MAX_SESSIONS_AHEAD) {
            self.reject(from, Rejection::WrongSession, out);
            return;
        }
        if !self.sessions.contains_key(&session) {
            if session.0 < self.applied {
                // Decided and pruned long ago: nothing to add.
                return;
            }
            let epoch = self.epoch_of(session);
            let Some(registry) = self.epochs.get(&epoch) else {
                let buffer = self.buffered.entry(session).or_default();
                if buffer.len() >= MAX_BUFFERED_PER_SESSION {
                    self.reject(from, Rejection::BufferFull, out);
                } else {
                    buffer.push(input);
                }
                self.request_sync(now, from, out);
                return;
            };
            let committee = Committee::of(registry, self.protocol.mutation);
            self.sessions.insert(session, SessionMachine::new(session, committee));
            // Until the session's spec is known, this timer asks peers for it.
            let timer = super::Timer { session, round: 0, kind: super::TimerKind::Retransmit };
            out.push(Output::Schedule { timer, at_ms: now.saturating_add(self.protocol.retransmit_ms) });
        }
        self.dispatch(now, session, input, out);
    }

    fn dispatch(&mut self, now: TimeMs, session: SessionId, input: Input, out: &mut Vec<Output>) {
        let epoch = self.epoch_of(session);
        let Some(machine) = self.sessions.get_mut(&session) else { return };
        // A decided session needs no registry any more (its epoch may have been dropped).
        let registry = match (machine.decided().is_some(), self.epochs.get(&epoch)) {
            (_, Some(registry)) => registry,
            (true, None) => &self.registry,
            (false, None) => return,
        };
        let ctx = Ctx {
            me: self.id,
            now,
            signer: &self.signer,
            verifier: &self.verifier,
            registry,
            engine: &self.engine,
            protocol: &self.protocol,
        };
        let decided_before = machine.decided().is_some();
        match input {
            Input::Receive { from, message } if decided_before => {
                if !matches!(message, Message::Commit(_)) {
                    machine.help_lagging(from, &ctx, out); // L59–L60
                }
            }
            Input::Receive { from, message } => match message {
                Message::Open(open) => {
                    let authentic = ctx.verifier.verify(
                        self.protocol.client,
                        &wire::spec_signing_bytes(&open.spec),
                        &open.signature,
                    );
                    if authentic {
                        machine.learn_spec(open, &ctx, out);
                    } else {
                        out.push(Output::Reject { from, reason: Rejection::NotTheClient });
                    }
                }
                Message::Vote(v) => machine.on_vote(from, v, &ctx, out),
                Message::Proposal(p) => machine.on_proposal(from, *p, &ctx, out),
                Message::RoundVote(v) => machine.on_round_vote(from, v, &ctx, out),
                Message::Commit(c) => machine.on_commit(from, *c, &ctx, out),
                Message::Sync { .. } => {}
            },
            Input::LocalVote(vote) => machine.local_vote(vote, &ctx, out),
            Input::Timeout(timer) => machine.on_timeout(timer, &ctx, out),
            Input::Malformed { .. } | Input::Recover => {}
        }
        if !decided_before {
            if let Some(decided) = machine.decided() {
                self.records.insert(session, decided.registry_record.clone());
                self.stats.decided += 1;
            }
        }
    }

    /// A peer is ahead of us: ask it for the certificates of the sessions we have not applied
    /// (at most once per retransmit interval).
    fn request_sync(&mut self, now: TimeMs, peer: AgentId, out: &mut Vec<Output>) {
        if peer == self.id || peer == self.protocol.client {
            return;
        }
        if self.sync_sent_at.is_some_and(|t| now < t.saturating_add(self.protocol.retransmit_ms)) {
            return;
        }
        self.sync_sent_at = Some(now);
        out.push(Output::Send { to: peer, message: Message::Sync { next: SessionId(self.applied) } });
    }

    /// L65–L66: answers a [`Message::Sync`] with up to `sync_batch` certificates.
    fn serve_sync(&mut self, now: TimeMs, peer: AgentId, next: SessionId, out: &mut Vec<Output>) {
        let last = self.sync_served_at.get(&peer).copied();
        if peer == self.id || last.is_some_and(|t| now < t.saturating_add(self.protocol.retransmit_ms)) {
            return;
        }
        self.sync_served_at.insert(peer, now);
        let end = SessionId(next.0.saturating_add(self.protocol.sync_batch));
        for machine in self.sessions.range(next..end).map(|(_, m)| m) {
            if let Some(commit) = machine.commit() {
                out.push(Output::Send { to: peer, message: Message::Commit(Box::new(commit.clone())) });
            }
        }
    }

    /// L67–L68: after a restart, re-arm every undecided session's timers.
    fn recover(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        let sessions: Vec<SessionId> = self.sessions.keys().copied().collect();
        for session in sessions {
            let epoch = self.epoch_of(session);
            let (Some(machine), Some(registry)) = (self.sessions.get_mut(&session), self.epochs.get(&epoch)) else {
                continue;
            };
            let ctx = Ctx {
                me: self.id,
                now,
                signer: &self.signer,
                verifier: &self.verifier,
                registry,
                engine: &self.engine,
                protocol: &self.protocol,
            };
            machine.recover(&ctx, out);
        }
        let me = self.id;
        let peer = self.epochs.values().next_back().and_then(|r| r.active().map(|a| a.id).find(|id| *id != me));
        if let Some(peer) = peer {
            self.request_sync(now, peer, out);
        }
    }

    /// Applies decided sessions to the registry in session order, opening the epochs that
    /// waiting sessions need, then replays their buffered inputs.
    fn advance_epochs(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        loop {
            while let Some(record) = self.records.remove(&SessionId(self.applied)) {
                let events = self.registry.apply(&record, &self.engine);
                self.stats.registry_events.extend(events);
                self.applied += 1;
                self.epochs.insert(self.applied, self.registry.clone());
                let keep_from = self.applied.saturating_sub(self.protocol.pipeline.max(1));
                self.epochs = self.epochs.split_off(&keep_from);
                let prune_below = self.applied.saturating_sub(self.protocol.keep_decided as u64);
                self.sessions = self.sessions.split_off(&SessionId(prune_below));
            }
            let ready: Vec<SessionId> =
                self.buffered.keys().copied().filter(|s| self.epochs.contains_key(&self.epoch_of(*s))).collect();
            if ready.is_empty() {
                return;
            }
            for session in ready {
                for input in self.buffered.remove(&session).unwrap_or_default() {
                    self.route(now, input, out);
                }
            }
        }
    }
}

impl<S: Signer, V: Verifier> Node for Agent<S, V> {
    fn id(&self) -> AgentId {
        self.id
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let start = out.len();
        self.route(now_ms, input, out);
        self.advance_epochs(now_ms, out);
        for o in &out[start..] {
            match o {
                Output::Reject { reason, .. } => *self.stats.rejected.entry(reason.clone()).or_default() += 1,
                Output::Evidence(_) => self.stats.evidence += 1,
                _ => {}
            }
        }
    }
}
