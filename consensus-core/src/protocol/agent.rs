//! One agent: every session's agreement state, the replicated registry and its epochs
//! (docs/protocol.md, "Replicated reputation").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::registry::{Registry, RegistryEvent, SessionRecord};
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};
use crate::wire;

use super::coverage::{Coverage, Point};
use super::messages::Message;
use super::session::{Committee, Ctx, SessionMachine};
use super::{Input, Node, Output, ProtocolConfig, Rejection, TimerKind};

mod snapshot;
mod sync;

pub use snapshot::SnapshotError;
pub use sync::SYNC_BATCHES_PER_INTERVAL;
use sync::{Chase, Served};

/// Sessions ahead of the last applied one that an agent accepts messages for.
const MAX_SESSIONS_AHEAD: u64 = 1_024;
/// Messages buffered per session while its registry epoch is not ready.
pub const MAX_BUFFERED_PER_SESSION: usize = 4_096;
/// Registry changes kept in [`AgentStats::registry_events`] (the most recent).
const MAX_REGISTRY_EVENTS: usize = 1_024;

/// What an agent counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Inputs rejected, by reason.
    pub rejected: BTreeMap<Rejection, u64>,
    /// Evidence of Byzantine behaviour produced.
    pub evidence: u64,
    /// Sessions decided.
    pub decided: u64,
    /// The most recent registry changes applied from decided sessions (at most 1,024; not
    /// kept in a snapshot: they are a record, not state).
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
    /// What each peer's `Sync` was answered with lately (L72–L73, L78).
    served: BTreeMap<AgentId, Served>,
    /// The peer this agent is catching up from, when it is behind (L80).
    chase: Option<Chase>,
    /// Whether the status tick (L76) is scheduled; timers are lost in a crash.
    status_armed: bool,
    /// Peers asked so far: picks the next one in turn (L71, L74, L76).
    status_turn: u64,
    stats: AgentStats,
    /// Which rules, checks, rejections and states this agent reached (docs/coverage.md).
    coverage: Coverage,
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
            served: BTreeMap::new(),
            chase: None,
            status_armed: false,
            status_turn: 0,
            stats: AgentStats::default(),
            coverage: Coverage::default(),
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

    /// The protocol configuration.
    pub fn protocol(&self) -> &ProtocolConfig {
        &self.protocol
    }

    /// The engine configuration.
    pub fn engine(&self) -> &EngineConfig {
        &self.engine
    }

    /// Counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The protocol rules, checks, rejections and states this agent reached so far.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Whether this agent decided `session`.
    pub fn has_decided(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|m| m.decided().is_some()) || session.0 < self.applied
    }

    /// The round `session` is in here, if its state is held.
    pub fn round_of(&self, session: SessionId) -> Option<u32> {
        self.sessions.get(&session).map(SessionMachine::round)
    }

    /// The state of `session`, for the session's table tests.
    #[cfg(test)]
    pub(crate) fn session_state(&self, session: SessionId) -> Option<&SessionMachine> {
        self.sessions.get(&session)
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
            // L81: for the host (the node's health report); nothing for the protocol.
            Input::Receive { message: Message::Pruned { .. }, .. } => return,
            Input::Receive { from, message } => (message.session(), *from),
            Input::Recover => {
                self.recover(now, out);
                return;
            }
            Input::Timeout(t) if t.kind == TimerKind::Status => {
                self.status_armed = false;
                self.status_tick(now, out);
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
            coverage: &self.coverage,
        };
        let decided_before = machine.decided().is_some();
        match input {
            Input::Receive { from, message } if decided_before => {
                if !matches!(message, Message::Commit(_)) {
                    machine.help_lagging(from, &ctx, out); // L66–L67
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
                Message::Sync { .. } | Message::Pruned { .. } => {}
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

    /// L74–L75: after a restart, re-arm every undecided session's timers.
    fn recover(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        self.status_armed = false; // the crash lost the pending tick
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
                coverage: &self.coverage,
            };
            machine.recover(&ctx, out);
        }
        if let Some(peer) = self.next_peer() {
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
                let excess = self.stats.registry_events.len().saturating_sub(MAX_REGISTRY_EVENTS);
                self.stats.registry_events.drain(..excess);
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

    fn coverage(&self) -> Option<&Coverage> {
        Some(&self.coverage)
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let start = out.len();
        self.route(now_ms, input, out);
        self.advance_epochs(now_ms, out);
        self.chase(now_ms, out);
        self.arm_status(now_ms, out);
        for o in &out[start..] {
            match o {
                Output::Reject { reason, .. } => {
                    self.coverage.record(Point::rejection(reason));
                    *self.stats.rejected.entry(reason.clone()).or_default() += 1;
                }
                Output::Evidence(_) => self.stats.evidence += 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::fixed::Ppm;
    use crate::protocol::messages::{
        Proposal, Round, RoundVote, SessionSpec, SignedSpec, SignedVote, ValueId, VoteKind,
    };
    use crate::protocol::{Mutation, Timer, TimerKind};
    use crate::sign::{sim_committee, Keys, SimKeyring, SimSigner};
    use crate::types::{AgentSpecialization, AgentVote, CandidateId};

    /// n = 4: f = 1, q = 3. Session 1: agent 1 proposes round 0, agent 2 round 1, agent 0 round 3.
    const N: u32 = 4;
    const S: SessionId = SessionId(1);
    type Keyset = Keys<SimSigner, SimKeyring>;
    type Honest = Agent<SimSigner, SimKeyring>;

    fn agent(keys: &Keyset, i: u32, mutation: Mutation) -> Honest {
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(N, &engine);
        let protocol = ProtocolConfig { pipeline: 64, mutation, ..ProtocolConfig::default() };
        Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, protocol)
    }

    fn open(keys: &Keyset) -> Input {
        let spec = SessionSpec {
            session: S,
            query: "query".into(),
            candidates: vec![CandidateId(0), CandidateId(1)],
            opened_ms: 0,
        };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        Input::Receive { from: AgentId::CLIENT, message: Message::Open(SignedSpec { spec, signature }) }
    }

    fn vote(agent: u32) -> AgentVote {
        let mut v = AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            S,
            CandidateId(0),
            Ppm::saturating(900_000),
            Ppm::saturating(950_000),
        );
        v.scores = [(CandidateId(0), Ppm::saturating(900_000)), (CandidateId(1), Ppm::saturating(300_000))]
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        v
    }

    fn signed_vote(keys: &Keyset, agent: u32) -> Input {
        let v = vote(agent);
        let signature = keys.agents[agent as usize].sign(&wire::vote_signing_bytes(&v));
        Input::Receive { from: AgentId(agent), message: Message::Vote(SignedVote { vote: v, signature }) }
    }

    fn round_vote(keys: &Keyset, kind: VoteKind, round: Round, agent: u32, value: Option<ValueId>) -> RoundVote {
        let signature = keys.agents[agent as usize].sign(&wire::round_vote_signing_bytes(kind, S, round, value));
        RoundVote { kind, session: S, round, value, agent: AgentId(agent), signature }
    }

    fn receive(from: u32, message: Message) -> Input {
        Input::Receive { from: AgentId(from), message }
    }

    fn timeout(round: Round, kind: TimerKind) -> Input {
        Input::Timeout(Timer { session: S, round, kind })
    }

    fn feed(node: &mut Honest, now: TimeMs, inputs: Vec<Input>) -> Vec<Output> {
        let mut out = Vec::new();
        for input in inputs {
            node.handle(now, input, &mut out);
        }
        out
    }

    /// Agent 1's round-0 proposal of session 1, as an honest proposer makes it.
    fn round_zero_proposal(keys: &Keyset) -> Proposal {
        let mut proposer = agent(keys, 1, Mutation::None);
        let mut inputs = vec![open(keys), Input::LocalVote(vote(1))];
        inputs.extend([0, 2, 3].map(|a| signed_vote(keys, a)));
        let out = feed(&mut proposer, 10, inputs);
        let proposal = out.into_iter().find_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some(*p),
            _ => None,
        });
        proposal.unwrap_or_else(|| panic!("agent 1 proposes once it holds all votes"))
    }

    fn prevotes_of(out: &[Output], round: Round) -> Vec<Option<ValueId>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast(Message::RoundVote(v)) if v.kind == VoteKind::Prevote && v.round == round => {
                    Some(v.value)
                }
                _ => None,
            })
            .collect()
    }

    /// Agent 0 in session 1: its round-0 propose timeout fired first (it prevoted nil), agent 3
    /// (Byzantine) sent it a nil prevote for round 0; agents 1 and 2 prevoted the value.
    fn nil_in_round_zero(keys: &Keyset, p0: &Proposal, mutation: Mutation) -> Honest {
        let id = ValueId::of(&p0.value);
        let mut a0 = agent(keys, 0, mutation);
        let mut inputs = vec![open(keys), Input::LocalVote(vote(0))];
        inputs.extend([1, 2, 3].map(|a| signed_vote(keys, a)));
        inputs.push(timeout(0, TimerKind::Propose));
        inputs.push(receive(3, Message::RoundVote(round_vote(keys, VoteKind::Prevote, 0, 3, None))));
        inputs.push(receive(1, Message::Proposal(Box::new(p0.clone()))));
        for a in [1, 2] {
            inputs.push(receive(a, Message::RoundVote(round_vote(keys, VoteKind::Prevote, 0, a, Some(id)))));
        }
        let out = feed(&mut a0, 20, inputs);
        assert_eq!(prevotes_of(&out, 0), [None], "agent 0 prevoted nil at its propose timeout");
        a0
    }

    /// Issue 9, the hidden lock: agent 0 holds agent 3's nil prevote of round 0; the round-1
    /// re-proposal's polka certificate carries agent 3's prevote for the value. The keeper counts
    /// both, so agent 0 sees q prevotes for the value in round 0 and prevotes the re-proposal
    /// (L26–L28). Keeping only the first prevote, it waited for a polka it could never count.
    #[test]
    fn a_certificate_counts_an_equivocators_prevote_held_as_nil() {
        let keys = sim_committee(41, N);
        let p0 = round_zero_proposal(&keys);
        let id = ValueId::of(&p0.value);
        let mut a0 = nil_in_round_zero(&keys, &p0, Mutation::None);
        feed(&mut a0, 300, vec![timeout(0, TimerKind::Precommit)]);
        assert_eq!(a0.round_of(S), Some(1));
        let polka: Vec<RoundVote> = [1, 2, 3].map(|a| round_vote(&keys, VoteKind::Prevote, 0, a, Some(id))).into();
        let signature = keys.agents[2].sign(&wire::proposal_signing_bytes(&p0.value, 1, Some(0)));
        let p1 = Proposal {
            round: 1,
            valid_round: Some(0),
            value: p0.value.clone(),
            proposer: AgentId(2),
            signature,
            polka,
        };
        let out = feed(&mut a0, 310, vec![receive(2, Message::Proposal(Box::new(p1)))]);
        assert_eq!(prevotes_of(&out, 1), [Some(id)]);
        let evidence = out.iter().filter(|o| matches!(o, Output::Evidence(e) if e.culprit() == AgentId(3))).count();
        assert_eq!(evidence, 1, "agent 3's two prevotes are evidence");
    }

    /// L42–L43 and L15: a polka of round 0 gossiped to agent 0 in round 2 (L64–L65) becomes its
    /// valid value, and as proposer of round 3 it re-proposes that value with its certificate
    /// instead of a fresh value the locked agents would refuse.
    #[test]
    fn a_late_polka_becomes_the_valid_value_and_is_reproposed() {
        let keys = sim_committee(42, N);
        let p0 = round_zero_proposal(&keys);
        let id = ValueId::of(&p0.value);
        let mut a0 = nil_in_round_zero(&keys, &p0, Mutation::None);
        feed(&mut a0, 300, vec![timeout(0, TimerKind::Precommit), timeout(1, TimerKind::Precommit)]);
        assert_eq!(a0.round_of(S), Some(2));
        // The gossip of a locked peer: agent 3's prevote for the value (it equivocated).
        let gossip = round_vote(&keys, VoteKind::Prevote, 0, 3, Some(id));
        feed(&mut a0, 400, vec![receive(1, Message::RoundVote(gossip))]);
        let out = feed(&mut a0, 500, vec![timeout(2, TimerKind::Precommit)]);
        let proposal = out.iter().find_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some(p.clone()),
            _ => None,
        });
        let proposal = proposal.unwrap_or_else(|| panic!("agent 0 proposes round 3"));
        assert_eq!((proposal.round, proposal.valid_round), (3, Some(0)));
        assert_eq!(ValueId::of(&proposal.value), id);
        let signers: Vec<AgentId> = proposal.polka.iter().map(|v| v.agent).collect();
        assert_eq!(signers, [1, 2, 3].map(AgentId));
    }

    /// L62–L65: an agent whose round moved past its valid round re-sends, on its retransmit
    /// tick, that round's proposal as received and the q prevotes of its polka; not under
    /// `polka-not-relayed`, and not while the valid round is the current one.
    #[test]
    fn retransmit_gossips_the_polka_of_the_valid_round() {
        for mutation in [Mutation::None, Mutation::PolkaNotRelayed] {
            let keys = sim_committee(43, N);
            let p0 = round_zero_proposal(&keys);
            let id = ValueId::of(&p0.value);
            let mut a0 = agent(&keys, 0, mutation);
            let mut inputs = vec![open(&keys), Input::LocalVote(vote(0))];
            inputs.extend([1, 2, 3].map(|a| signed_vote(&keys, a)));
            inputs.push(receive(1, Message::Proposal(Box::new(p0.clone()))));
            for a in [1, 2] {
                inputs.push(receive(a, Message::RoundVote(round_vote(&keys, VoteKind::Prevote, 0, a, Some(id)))));
            }
            let out = feed(&mut a0, 20, inputs);
            assert_eq!(prevotes_of(&out, 0), [Some(id)], "{mutation:?}");
            let tick = feed(&mut a0, 100, vec![timeout(0, TimerKind::Retransmit)]);
            assert!(!tick.iter().any(|o| matches!(o, Output::Broadcast(Message::Proposal(_)))), "{mutation:?}");
            feed(&mut a0, 150, vec![timeout(0, TimerKind::Precommit)]);
            let tick = feed(&mut a0, 200, vec![timeout(0, TimerKind::Retransmit)]);
            let proposals: Vec<&Proposal> = tick
                .iter()
                .filter_map(|o| match o {
                    Output::Broadcast(Message::Proposal(p)) => Some(&**p),
                    _ => None,
                })
                .collect();
            let mut polka = prevotes_of(&tick, 0);
            polka.retain(Option::is_some);
            if mutation == Mutation::None {
                assert_eq!(proposals, [&p0]);
                assert_eq!(polka, [Some(id); 3]);
            } else {
                assert!(proposals.is_empty() && polka.is_empty());
            }
        }
    }

    fn scheduled(out: &[Output], kind: TimerKind) -> bool {
        out.iter().any(|o| matches!(o, Output::Schedule { timer, .. } if timer.kind == kind))
    }

    fn syncs(out: &[Output]) -> Vec<(AgentId, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, message: Message::Sync { next } } => Some((*to, next.0)),
                _ => None,
            })
            .collect()
    }

    fn status_timers(out: &[Output]) -> Vec<TimeMs> {
        out.iter()
            .filter_map(|o| match o {
                Output::Schedule { timer, at_ms } if timer.kind == TimerKind::Status => Some(*at_ms),
                _ => None,
            })
            .collect()
    }

    /// L76 (explore finding: an agent partitioned away while the others decided a session was
    /// never told of it): the first input arms the status tick; each tick sends
    /// `Sync(applied)` to the next peer in turn, never to itself, and re-arms once.
    #[test]
    fn the_status_tick_asks_every_peer_in_turn() {
        let keys = sim_committee(45, N);
        let mut a0 = agent(&keys, 0, Mutation::None);
        let out = feed(&mut a0, 7, vec![open(&keys)]);
        assert_eq!(status_timers(&out), [507]);
        assert!(status_timers(&feed(&mut a0, 8, vec![signed_vote(&keys, 1)])).is_empty(), "armed once");
        let mut asked = Vec::new();
        let mut at = 507;
        for _ in 0..4 {
            let tick = Input::Timeout(Timer { session: SessionId(0), round: 0, kind: TimerKind::Status });
            let out = feed(&mut a0, at, vec![tick]);
            assert_eq!(status_timers(&out), [at + 500]);
            let sent = syncs(&out);
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].1, 0, "nothing applied yet");
            asked.push(sent[0].0 .0);
            at += 500;
        }
        assert_eq!(asked, [1, 2, 3, 1]);
        // A crash loses the pending tick: recovery arms a new one.
        let out = feed(&mut a0, at, vec![Input::Recover]);
        assert_eq!(status_timers(&out), [at + 500]);
    }

    /// L77: a `Sync` from a peer that applied more sessions than this agent makes it ask that
    /// peer back; one from a peer behind it does not.
    #[test]
    fn a_sync_from_a_peer_ahead_is_answered_with_a_sync() {
        let keys = sim_committee(46, N);
        let mut a0 = agent(&keys, 0, Mutation::None);
        let out = feed(&mut a0, 10, vec![receive(2, Message::Sync { next: SessionId(0) })]);
        assert!(syncs(&out).is_empty(), "agent 2 is not ahead");
        let out = feed(&mut a0, 20, vec![receive(3, Message::Sync { next: SessionId(5) })]);
        assert_eq!(syncs(&out), [(AgentId(3), 0)]);
    }

    /// L74–L75 (explore finding liveness-swarm-92): after a restart the precommit timeout is
    /// re-armed only once q precommits of the round were seen, the propose timeout only in the
    /// propose step.
    #[test]
    fn recover_rearms_only_the_timeouts_the_state_justifies() {
        let keys = sim_committee(44, N);
        let mut a0 = agent(&keys, 0, Mutation::None);
        feed(&mut a0, 0, vec![open(&keys), Input::LocalVote(vote(0))]);
        let out = feed(&mut a0, 50, vec![Input::Recover]);
        assert!(scheduled(&out, TimerKind::Retransmit) && scheduled(&out, TimerKind::Propose));
        assert!(!scheduled(&out, TimerKind::Precommit) && !scheduled(&out, TimerKind::Prevote));
        // Prevoted nil at the timeout; q nil prevotes: precommitted nil. Nothing is pending.
        let mut inputs = vec![timeout(0, TimerKind::Propose)];
        inputs.extend([1, 2].map(|a| receive(a, Message::RoundVote(round_vote(&keys, VoteKind::Prevote, 0, a, None)))));
        let out = feed(&mut a0, 250, inputs);
        assert_eq!(prevotes_of(&out, 0), [None]);
        let out = feed(&mut a0, 260, vec![Input::Recover]);
        assert!(!scheduled(&out, TimerKind::Propose) && !scheduled(&out, TimerKind::Precommit));
        // q nil prevotes made it precommit nil; with q precommits the precommit timeout is too.
        let inputs = [1, 2].map(|a| receive(a, Message::RoundVote(round_vote(&keys, VoteKind::Precommit, 0, a, None))));
        feed(&mut a0, 270, inputs.into());
        let out = feed(&mut a0, 280, vec![Input::Recover]);
        assert!(scheduled(&out, TimerKind::Precommit) && !scheduled(&out, TimerKind::Propose));
    }
}
