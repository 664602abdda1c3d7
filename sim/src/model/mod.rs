//! `bftsim model`: exhaustive explicit-state model checking of the production consensus-core
//! agents for one session of a small committee (docs/model.md).
//!
//! The honest agents are the real `consensus_core::protocol::Agent`, unchanged: a model state
//! holds each agent's canonical snapshot (`Agent::canonical_snapshot`), and a transition
//! restores the agent it touches, feeds it one input and snapshots it again. The
//! nondeterminism is the network's and the clock's: which in-flight message is delivered next,
//! which agent's next timer fires, and (with `--byzantine`) what the Byzantine agents send
//! (`byzantine.rs`: a bounded enumeration of what their keys and the messages they saw allow).
//!
//! What the model abstracts, and why it keeps safety checks sound for one session:
//! - links are reliable and the in-flight messages are a set (a duplicate of a message already
//!   in flight to the same agent is the same element): retransmission (L62–L65, L70) only
//!   re-sends what is already in flight, so its timers and the status tick (L76) are not
//!   modelled; catch-up (`Sync`, `ServeArchived`) has nothing to serve in one session;
//! - each agent has its own clock, advanced only by its own timers, which fire in time order;
//!   between agents and against deliveries every order is explored (asynchrony: no bound on
//!   message delay or clock drift before GST, so no timing assumption hides a violation);
//! - `Open` reaches every honest agent first, and an agent's evaluation returns at once (its
//!   vote is fixed per agent, or enumerated over the candidates);
//! - rounds are bounded: the precommit timeout of the last checked round is never fired, so
//!   no honest agent enters a round beyond `--rounds`.

pub mod byzantine;
mod lazy;
pub mod liveness;
mod report;
pub mod schedule;
pub mod search;
mod state;
pub mod stats;

use std::collections::BTreeSet;

use consensus_core::config::EngineConfig;
use consensus_core::protocol::messages::{SessionSpec, SignedSpec};
use consensus_core::protocol::{Agent, Mutation, ProtocolConfig};
use consensus_core::registry::Registry;
use consensus_core::sign::{sim_committee, Keys, Signer, SimKeyring, SimSigner};
use consensus_core::{AgentId, AgentSpecialization, AgentVote, CandidateId, Ppm, SessionId};

pub use report::{describe_label, describe_message, describe_path, properties, report_json};
pub use search::{check, Counterexample, ModelReport, Stop};
pub use state::{Label, Msg, State};

/// The honest agent the model runs.
pub type Honest = Agent<SimSigner, SimKeyring>;

/// How the agents' evaluations are chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Votes {
    /// Every assignment of a candidate to each honest agent (one initial state each).
    Enumerate,
    /// The candidate of each agent, by agent id (Byzantine agents' entries are unused).
    Fixed(Vec<u32>),
}

/// What the Byzantine agents do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByzantineMode {
    /// Nothing (a crashed agent).
    Silent,
    /// Any message of the bounded full-power adversary (`byzantine.rs`).
    FullPower,
}

/// What the links do with a message sent to an honest agent (docs/model.md, "Links").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Delivered at most once: a delivery removes it from the in-flight set.
    ExactlyOnce,
    /// Delivered any number of times, at any moment after it was sent (duplication, as real
    /// networks and the retransmissions of L62–L65 do): the in-flight set is every message
    /// sent to the agent, and a delivery that changes nothing is a self-loop, left out.
    AtLeastOnce,
}

/// Who proposes round 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstProposer {
    /// An honest agent (session 0: agent 0 proposes round 0, agent 1 round 1, ...).
    Honest,
    /// The first Byzantine agent.
    Byzantine,
}

/// One model-checking problem.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Committee size.
    pub agents: u32,
    /// Byzantine agents (the highest ids).
    pub byzantine: u32,
    /// Rounds checked (0 .. rounds).
    pub rounds: u32,
    /// Candidates of the session.
    pub candidates: u32,
    /// The honest agents' votes.
    pub votes: Votes,
    /// What the Byzantine agents do.
    pub byzantine_mode: ByzantineMode,
    /// Who proposes round 0.
    pub first_proposer: FirstProposer,
    /// The protocol variant (a bundled mutation, or the correct protocol).
    pub mutation: Mutation,
    /// Stop after this many distinct states.
    pub max_states: u64,
    /// Stop expanding states at this depth (transitions from an initial state).
    pub max_depth: u32,
    /// Worker threads expanding states.
    pub jobs: usize,
    /// Print a progress line to stderr.
    pub progress: bool,
    /// The block reduction of silent steps (docs/model.md, "Reductions").
    pub reduce: bool,
    /// The lazy reduction on top of the block reduction (docs/model.md, "Reductions"): after a
    /// silent step, only its agent's steps that need it. Only with `reduce`.
    pub lazy: bool,
    /// The links' semantics.
    pub links: Links,
}

impl ModelConfig {
    /// `agents` honest agents (none Byzantine) with `votes`, `rounds` rounds, the rest default.
    pub fn honest(agents: u32, rounds: u32, votes: Votes) -> ModelConfig {
        ModelConfig {
            agents,
            byzantine: 0,
            rounds,
            votes,
            byzantine_mode: ByzantineMode::Silent,
            ..ModelConfig::default()
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            agents: 4,
            byzantine: 1,
            rounds: 2,
            candidates: 2,
            votes: Votes::Enumerate,
            byzantine_mode: ByzantineMode::FullPower,
            first_proposer: FirstProposer::Honest,
            mutation: Mutation::None,
            max_states: 1_000_000,
            max_depth: u32::MAX,
            jobs: 1,
            progress: false,
            reduce: true,
            lazy: true,
            links: Links::ExactlyOnce,
        }
    }
}

/// Why a configuration cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Everything fixed for one check: keys, committee, configuration, the session.
pub struct Setup {
    /// The problem.
    pub config: ModelConfig,
    /// Every agent's signer, the client's, the keyring.
    pub keys: Keys<SimSigner, SimKeyring>,
    /// The registry at session 0.
    pub registry: Registry,
    /// Engine configuration (the defaults).
    pub engine: EngineConfig,
    /// Protocol configuration (the defaults, the mutation).
    pub protocol: ProtocolConfig,
    /// The session checked.
    pub session: SessionId,
    /// Its client-signed spec.
    pub open: SignedSpec,
    /// The honest agents, ascending.
    pub honest: Vec<AgentId>,
    /// The Byzantine agents, ascending.
    pub byzantine: Vec<AgentId>,
}

/// The key seed of every model run (the simulator's keyed-SHA-256 signatures).
pub const KEY_SEED: u64 = 0x006d_6f64_656c;

impl Setup {
    /// Validates `config` and derives the fixed parts of the check.
    pub fn new(config: ModelConfig) -> Result<Setup, ConfigError> {
        let n = config.agents;
        if !(1..=16).contains(&n) {
            return Err(ConfigError::Invalid(format!("--agents {n}: the model checks committees of 1 to 16 agents")));
        }
        if config.byzantine >= n {
            return Err(ConfigError::Invalid(format!(
                "--byzantine {}: at least one of the {n} agents must be honest",
                config.byzantine
            )));
        }
        if !(1..=8).contains(&config.rounds) {
            return Err(ConfigError::Invalid(format!("--rounds {}: give 1 to 8 rounds", config.rounds)));
        }
        if !(1..=4).contains(&config.candidates) {
            return Err(ConfigError::Invalid(format!("--candidates {}: give 1 to 4", config.candidates)));
        }
        if let Votes::Fixed(v) = &config.votes {
            if v.len() != n as usize || v.iter().any(|c| *c >= config.candidates) {
                return Err(ConfigError::Invalid(format!(
                    "--votes: give one candidate below {} per agent ({n} comma-separated numbers), or `enumerate`",
                    config.candidates
                )));
            }
        }
        if config.first_proposer == FirstProposer::Byzantine && config.byzantine == 0 {
            return Err(ConfigError::Invalid("--first-proposer byzantine needs --byzantine 1 or more".into()));
        }
        let byzantine: Vec<AgentId> = (n - config.byzantine..n).map(AgentId).collect();
        let honest: Vec<AgentId> = (0..n - config.byzantine).map(AgentId).collect();
        // proposer(s, r) = (s + r) mod n: the session number chooses who proposes round 0.
        let session = match config.first_proposer {
            FirstProposer::Honest => SessionId(0),
            FirstProposer::Byzantine => SessionId(u64::from(n - config.byzantine)),
        };
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(n, &engine);
        // pipeline > session: every session is validated against the registry at session 0.
        let protocol =
            ProtocolConfig { mutation: config.mutation, pipeline: session.0 + 1, ..ProtocolConfig::default() };
        let keys = sim_committee(KEY_SEED, n);
        let spec = SessionSpec {
            session,
            query: "model".into(),
            candidates: (0..config.candidates).map(CandidateId).collect(),
            opened_ms: 0,
        };
        let signature = keys.client.sign(&consensus_core::wire::spec_signing_bytes(&spec));
        let open = SignedSpec { spec, signature };
        Ok(Setup { config, keys, registry, engine, protocol, session, open, honest, byzantine })
    }

    /// A fresh honest agent `id` (its state is replaced by a restore before use).
    pub fn agent(&self, id: AgentId) -> Honest {
        Agent::new(
            self.keys.agents[id.0 as usize].clone(),
            self.keys.keyring.clone(),
            self.registry.clone(),
            self.engine,
            self.protocol,
        )
    }

    /// Whether `id` is Byzantine.
    pub fn is_byzantine(&self, id: AgentId) -> bool {
        self.byzantine.contains(&id)
    }

    /// The vote assignments of the initial states (candidate per agent id).
    pub fn vote_assignments(&self) -> Vec<Vec<u32>> {
        let n = self.config.agents as usize;
        match &self.config.votes {
            Votes::Fixed(v) => vec![v.clone()],
            Votes::Enumerate => {
                let h = self.honest.len() as u32;
                let c = self.config.candidates;
                let total = c.checked_pow(h).unwrap_or(1);
                (0..total)
                    .map(|mut k| {
                        let mut assignment = vec![0; n];
                        for a in &self.honest {
                            assignment[a.0 as usize] = k % c;
                            k /= c;
                        }
                        assignment
                    })
                    .collect()
            }
        }
    }

    /// Agent `id`'s vote for `candidate`: accepted at confidence 0.95 with score 0.9 (0.3 for
    /// the other candidates), above every specialisation's confidence threshold.
    pub fn vote(&self, id: AgentId, candidate: u32) -> AgentVote {
        let chosen = CandidateId(candidate);
        let mut v = AgentVote::accept(
            id,
            AgentSpecialization::cycled(id.0 as usize),
            self.session,
            chosen,
            Ppm::saturating(900_000),
            Ppm::saturating(950_000),
        );
        v.scores = (0..self.config.candidates)
            .map(|c| (CandidateId(c), Ppm::saturating(if c == candidate { 900_000 } else { 300_000 })))
            .collect();
        v
    }

    /// The honest agents as a set.
    pub fn honest_set(&self) -> BTreeSet<AgentId> {
        self.honest.iter().copied().collect()
    }
}

/// Parses `--votes`: `enumerate`, or one candidate per agent (`0,0,1,0`).
pub fn parse_votes(text: &str) -> Result<Votes, String> {
    if text == "enumerate" {
        return Ok(Votes::Enumerate);
    }
    text.split(',')
        .map(|p| p.trim().parse::<u32>().map_err(|_| format!("--votes {text}: `enumerate` or numbers like 0,0,1,0")))
        .collect::<Result<Vec<u32>, String>>()
        .map(Votes::Fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_are_validated_and_votes_enumerated() {
        let bad = |c: ModelConfig| Setup::new(c).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad(ModelConfig { byzantine: 4, ..ModelConfig::default() }).contains("honest"));
        assert!(bad(ModelConfig { rounds: 0, ..ModelConfig::default() }).contains("--rounds"));
        assert!(bad(ModelConfig { votes: Votes::Fixed(vec![0, 1]), ..ModelConfig::default() }).contains("--votes"));
        let setup = Setup::new(ModelConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(setup.honest, [AgentId(0), AgentId(1), AgentId(2)]);
        assert_eq!(setup.byzantine, [AgentId(3)]);
        let all = setup.vote_assignments();
        assert_eq!(all.len(), 8, "2 candidates for 3 honest agents");
        assert!(all.iter().all(|a| a[3] == 0), "the Byzantine agent's entry is unused");
        assert_eq!(parse_votes("0,1,1,0"), Ok(Votes::Fixed(vec![0, 1, 1, 0])));
        assert!(parse_votes("x").is_err());
        let byz = Setup::new(ModelConfig { first_proposer: FirstProposer::Byzantine, ..ModelConfig::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(byz.session, SessionId(3), "proposer(3, 0) = agent 3");
    }
}
