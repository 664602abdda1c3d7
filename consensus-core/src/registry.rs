//! The agent registry: who votes, with what weight, in what standing, with what history
//! (design §3.2 `handle_byzantine_agents`, 4.2 `get_agent_accuracy_multiplier`).
//!
//! The registry changes only through [`Registry::apply`], fed with the [`SessionRecord`] of a
//! session that was decided (or escalated) by agreement, so every honest agent that applies the
//! same sessions in the same order holds the same registry.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::fixed::Ppm;
use crate::types::{AgentId, AgentSpecialization, AgentStatus, CandidateId};

/// A bounded first-in, first-out window of the most recent values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window<T> {
    capacity: usize,
    values: VecDeque<T>,
}

impl<T: Copy> Window<T> {
    /// An empty window keeping at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Window<T> {
        let capacity = capacity.max(1);
        Window { capacity, values: VecDeque::with_capacity(capacity.min(1_024)) }
    }

    /// Appends a value, dropping the oldest when full.
    pub fn push(&mut self, value: T) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
        debug_assert!(self.values.len() <= self.capacity);
    }

    /// Values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.values.iter().copied()
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One agent's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Identity.
    pub id: AgentId,
    /// Specialisation.
    pub specialization: AgentSpecialization,
    /// Base voting weight in thousandths.
    pub weight_milli: u32,
    /// Accept votes below this confidence count as abstentions.
    pub confidence_threshold: Ppm,
    /// Standing.
    pub status: AgentStatus,
    /// Times flagged as Byzantine.
    pub offences: u32,
    /// While quarantined: the decided-session count at which the agent is released.
    pub quarantined_until: u64,
    /// Per-session deviations measured by the detector, most recent last.
    pub deviations: Window<Ppm>,
    /// Per decided session: whether the agent's vote matched the decision.
    pub agreements: Window<bool>,
}

impl AgentRecord {
    /// A fresh active agent with the design's defaults for its specialisation.
    pub fn new(id: AgentId, specialization: AgentSpecialization, config: &EngineConfig) -> AgentRecord {
        AgentRecord {
            id,
            specialization,
            weight_milli: specialization.default_weight_milli(),
            confidence_threshold: specialization.default_confidence_threshold(),
            status: AgentStatus::Active,
            offences: 0,
            quarantined_until: 0,
            deviations: Window::new(config.detector.window),
            agreements: Window::new(config.accuracy_window),
        }
    }

    /// Design §4.2 `get_agent_accuracy_multiplier`: `0.5 + 0.5 × accuracy` over the agent's
    /// recent decided sessions, 1.0 without history.
    pub fn accuracy_multiplier(&self) -> Ppm {
        if self.agreements.is_empty() {
            return Ppm::ONE;
        }
        let agreed = self.agreements.iter().filter(|a| *a).count() as u128;
        let accuracy = Ppm::ratio(agreed, self.agreements.len() as u128);
        Ppm::saturating(u64::from(Ppm::HALF.raw()) + u64::from(accuracy.raw()) / 2)
    }

    /// Whether the agent's votes count.
    pub fn is_active(&self) -> bool {
        self.status == AgentStatus::Active
    }
}

/// What one agreed session teaches the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The detector's deviation of each counted voter in this session.
    pub deviations: BTreeMap<AgentId, Ppm>,
    /// Agents the detector flagged in this session.
    pub flagged: Vec<AgentId>,
    /// The candidate each counted honest voter accepted (`None`: rejected or abstained).
    pub accepted: BTreeMap<AgentId, Option<CandidateId>>,
    /// The decided candidate, if any.
    pub chosen: Option<CandidateId>,
}

/// A change of standing, reported so callers can log, alert and count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum RegistryEvent {
    /// Flagged: votes ignored for a while.
    Quarantined {
        /// Who.
        agent: AgentId,
        /// Offences so far.
        offences: u32,
    },
    /// Flagged too often: excluded for good (seed: "permanently excluded").
    Excluded {
        /// Who.
        agent: AgentId,
    },
    /// Quarantine over.
    Released {
        /// Who.
        agent: AgentId,
    },
    /// A replacement joined to keep the minimum of active agents (seed: spawn replacements).
    Spawned {
        /// New identity.
        agent: AgentId,
        /// Its specialisation: that of the agent it replaces.
        specialization: AgentSpecialization,
    },
}

/// Errors building a registry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two records with one identity.
    #[error("{0} is registered twice")]
    Duplicate(AgentId),
    /// No agent at all.
    #[error("a registry needs at least one agent")]
    Empty,
}

/// All agents known to a committee, ordered by identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    agents: BTreeMap<AgentId, AgentRecord>,
    next_id: u32,
    applied_sessions: u64,
}

impl Registry {
    /// `n` agents `0..n` whose specialisations cycle retriever, analyzer, validator, reranker,
    /// monitor, with the design's weights and confidence thresholds.
    pub fn seed_committee(n: u32, config: &EngineConfig) -> Registry {
        let agents = (0..n)
            .map(|i| {
                let id = AgentId(i);
                (id, AgentRecord::new(id, AgentSpecialization::cycled(i as usize), config))
            })
            .collect();
        Registry { agents, next_id: n, applied_sessions: 0 }
    }

    /// A registry from explicit records.
    pub fn from_records(records: Vec<AgentRecord>) -> Result<Registry, RegistryError> {
        if records.is_empty() {
            return Err(RegistryError::Empty);
        }
        let mut agents = BTreeMap::new();
        for r in records {
            let id = r.id;
            if agents.insert(id, r).is_some() {
                return Err(RegistryError::Duplicate(id));
            }
        }
        let next_id = agents.keys().next_back().map_or(0, |id| id.0.saturating_add(1));
        Ok(Registry { agents, next_id, applied_sessions: 0 })
    }

    /// One agent's record.
    pub fn get(&self, id: AgentId) -> Option<&AgentRecord> {
        self.agents.get(&id)
    }

    /// Mutable access, for tests and operator overrides.
    pub fn get_mut(&mut self, id: AgentId) -> Option<&mut AgentRecord> {
        self.agents.get_mut(&id)
    }

    /// All records, ascending by identity.
    pub fn agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents.values()
    }

    /// Active records, ascending by identity.
    pub fn active(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents.values().filter(|a| a.is_active())
    }

    /// Agents in a given standing.
    pub fn count(&self, status: AgentStatus) -> usize {
        self.agents.values().filter(|a| a.status == status).count()
    }

    /// Agents ever registered.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether no agent is registered.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Sessions applied so far.
    pub fn applied_sessions(&self) -> u64 {
        self.applied_sessions
    }

    /// Learns from one agreed session: releases finished quarantines, records deviations and
    /// accuracy, quarantines or excludes flagged agents, and spawns replacements (design §3.2
    /// `handle_byzantine_agents`). Returns the changes in a deterministic order.
    pub fn apply(&mut self, session: &SessionRecord, config: &EngineConfig) -> Vec<RegistryEvent> {
        let mut events = Vec::new();
        self.applied_sessions += 1;
        let now = self.applied_sessions;
        for record in self.agents.values_mut() {
            if record.status == AgentStatus::Quarantined && record.quarantined_until <= now {
                record.status = AgentStatus::Active;
                events.push(RegistryEvent::Released { agent: record.id });
            }
        }
        for (agent, deviation) in &session.deviations {
            if let Some(record) = self.agents.get_mut(agent) {
                record.deviations.push(*deviation);
            }
        }
        if let Some(chosen) = session.chosen {
            for (agent, accepted) in &session.accepted {
                if let Some(record) = self.agents.get_mut(agent) {
                    record.agreements.push(*accepted == Some(chosen));
                }
            }
        }
        let mut replaced = Vec::new();
        for agent in &session.flagged {
            let Some(record) = self.agents.get_mut(agent) else { continue };
            if record.status == AgentStatus::Excluded {
                continue;
            }
            record.offences = record.offences.saturating_add(1);
            if record.offences >= config.quarantine.exclude_after {
                record.status = AgentStatus::Excluded;
                events.push(RegistryEvent::Excluded { agent: *agent });
            } else {
                record.status = AgentStatus::Quarantined;
                record.quarantined_until = now.saturating_add(config.quarantine.sessions.max(1));
                events.push(RegistryEvent::Quarantined { agent: *agent, offences: record.offences });
            }
            replaced.push(record.specialization);
        }
        // Design §3.2: replacements are spawned while handling detected agents, not otherwise.
        if !replaced.is_empty() {
            self.spawn_replacements(&replaced, config, &mut events);
        }
        events
    }

    fn spawn_replacements(
        &mut self,
        replaced: &[AgentSpecialization],
        config: &EngineConfig,
        events: &mut Vec<RegistryEvent>,
    ) {
        if !config.quarantine.replace {
            return;
        }
        let mut specs = replaced.iter().copied();
        while self.count(AgentStatus::Active) < config.quarantine.min_active {
            let id = AgentId(self.next_id);
            let specialization = specs.next().unwrap_or(AgentSpecialization::cycled(self.next_id as usize));
            self.next_id = self.next_id.saturating_add(1);
            self.agents.insert(id, AgentRecord::new(id, specialization, config));
            events.push(RegistryEvent::Spawned { agent: id, specialization });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(agent: u32) -> SessionRecord {
        SessionRecord { flagged: vec![AgentId(agent)], ..SessionRecord::default() }
    }

    #[test]
    fn window_keeps_the_most_recent() {
        let mut w = Window::new(3);
        for v in 1..=5 {
            w.push(v);
        }
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn seed_committee_cycles_specialisations_with_seed_weights() {
        let r = Registry::seed_committee(7, &EngineConfig::default());
        let specs: Vec<_> = r.agents().map(|a| a.specialization).collect();
        assert_eq!(specs[0], AgentSpecialization::Retriever);
        assert_eq!(specs[5], AgentSpecialization::Retriever);
        assert_eq!(r.get(AgentId(1)).map(|a| a.weight_milli), Some(1_200));
        assert_eq!(r.count(AgentStatus::Active), 7);
    }

    #[test]
    fn quarantine_then_exclusion_after_three_offences() {
        let mut config = EngineConfig::default();
        config.quarantine.sessions = 1;
        config.quarantine.replace = false;
        let mut r = Registry::seed_committee(5, &config);
        let events = r.apply(&flagged(4), &config);
        assert_eq!(events, vec![RegistryEvent::Quarantined { agent: AgentId(4), offences: 1 }]);
        assert_eq!(r.get(AgentId(4)).map(|a| a.status), Some(AgentStatus::Quarantined));
        // Released one session later, flagged again.
        let events = r.apply(&flagged(4), &config);
        assert_eq!(
            events,
            vec![
                RegistryEvent::Released { agent: AgentId(4) },
                RegistryEvent::Quarantined { agent: AgentId(4), offences: 2 }
            ]
        );
        r.apply(&SessionRecord::default(), &config);
        let events = r.apply(&flagged(4), &config);
        assert_eq!(events, vec![RegistryEvent::Excluded { agent: AgentId(4) }]);
        assert_eq!(r.count(AgentStatus::Excluded), 1);
        // Excluded agents are never released.
        r.apply(&SessionRecord::default(), &config);
        assert_eq!(r.get(AgentId(4)).map(|a| a.status), Some(AgentStatus::Excluded));
    }

    #[test]
    fn replacements_keep_the_minimum_active() {
        let config = EngineConfig::default();
        let mut r = Registry::seed_committee(5, &config);
        let events = r.apply(&flagged(1), &config);
        assert_eq!(
            events,
            vec![
                RegistryEvent::Quarantined { agent: AgentId(1), offences: 1 },
                RegistryEvent::Spawned { agent: AgentId(5), specialization: AgentSpecialization::Analyzer }
            ]
        );
        assert_eq!(r.count(AgentStatus::Active), 5);
    }

    #[test]
    fn accuracy_multiplier_tracks_agreement_with_decisions() {
        let config = EngineConfig::default();
        let mut r = Registry::seed_committee(5, &config);
        assert_eq!(r.get(AgentId(0)).map(|a| a.accuracy_multiplier()), Some(Ppm::ONE));
        let mut s = SessionRecord { chosen: Some(CandidateId(1)), ..SessionRecord::default() };
        s.accepted.insert(AgentId(0), Some(CandidateId(1)));
        s.accepted.insert(AgentId(1), Some(CandidateId(2)));
        r.apply(&s, &config);
        assert_eq!(r.get(AgentId(0)).map(|a| a.accuracy_multiplier()), Some(Ppm::ONE));
        assert_eq!(r.get(AgentId(1)).map(|a| a.accuracy_multiplier()), Some(Ppm::HALF));
    }

    #[test]
    fn duplicate_records_are_rejected() {
        let config = EngineConfig::default();
        let a = AgentRecord::new(AgentId(3), AgentSpecialization::Monitor, &config);
        assert_eq!(Registry::from_records(vec![a.clone(), a]), Err(RegistryError::Duplicate(AgentId(3))));
        assert_eq!(Registry::from_records(vec![]), Err(RegistryError::Empty));
    }
}
