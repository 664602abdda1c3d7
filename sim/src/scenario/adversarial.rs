//! What Byzantine agents do beyond consensus-core's strategies, as scenario data:
//!
//! - [`Behaviour`]: a consensus-core [`Strategy`], or `twin` (Twins, Bano et al.: the agent runs
//!   as two honest copies under one identity and key, so equivocation and lost locks come from
//!   unmodified code), or `honest` (the unmodified agent, counted as faulty: the target of
//!   `[[tamper]]` rules);
//! - [`RoundPartition`] (`[[round_partitions]]`): a partition that cuts only the messages of one
//!   round of one session (ByzzFuzz's round-targeted network faults; Twins' per-round
//!   partitions, where a twin's copies may sit in different groups);
//! - [`Tamper`] (`[[tamper]]`): a small-scope mutation of one faulty agent's messages of one
//!   round of one session, to some receivers (ByzzFuzz's message mutations: round ± 1, another
//!   valid value, nil, omitted, an old message replayed). The simulator re-signs with the
//!   agent's own key, so a tampered message is what a Byzantine agent could really send.
//!
//! A message's round is its proposal's or round vote's round; the agents' session votes belong
//! to round 0. `Open`, `Commit` and `Sync` belong to no round and are never affected.

use std::fmt;

use consensus_core::adversary::{Family, FullPowerConfig, Strategy};
use consensus_core::Ppm;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// How one Byzantine agent behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    /// A consensus-core strategy.
    Core(Strategy),
    /// Two honest copies sharing the agent's identity and key.
    Twin,
    /// The unmodified agent; its messages may be tampered with by `[[tamper]]` rules.
    #[default]
    Honest,
}

impl Behaviour {
    /// Every behaviour: the strategies in consensus-core's order, then `twin` and `honest`.
    pub fn all() -> Vec<Behaviour> {
        let mut all: Vec<Behaviour> = Strategy::ALL.iter().copied().map(Behaviour::Core).collect();
        all.extend([Behaviour::Twin, Behaviour::Honest]);
        all
    }

    /// The kebab-case name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Core(s) => s.name(),
            Behaviour::Twin => "twin",
            Behaviour::Honest => "honest",
        }
    }

    /// The behaviour named `name`.
    pub fn from_name(name: &str) -> Option<Behaviour> {
        Behaviour::all().into_iter().find(|b| b.name() == name)
    }
}

impl From<Strategy> for Behaviour {
    fn from(s: Strategy) -> Self {
        Behaviour::Core(s)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Behaviour {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Behaviour {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl Visitor<'_> for Names {
            type Value = Behaviour;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Byzantine behaviour name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Behaviour, E> {
                Behaviour::from_name(name).ok_or_else(|| {
                    let names: Vec<String> = Behaviour::all().into_iter().map(|b| format!("`{b}`")).collect();
                    E::custom(format!("unknown variant `{name}`, expected one of {}", names.join(", ")))
                })
            }
        }
        deserializer.deserialize_str(Names)
    }
}

/// `[byzantine.full_power]`: the knobs of the `full-power` behaviour (consensus-core's
/// `adversary::full_power`). `families = []` or `rate = 0` leaves only the honest agent inside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a [byzantine.full_power] table with rate, actions_per_input and families"
)]
pub struct FullPowerKnobs {
    /// Per input handled and per family: the probability that the family acts (for `deviate`:
    /// that each of the inner agent's messages is deviated), `[0, 1]` (default 0.1).
    pub rate: f64,
    /// Most actions of one family at one input, `1..=16` (default 2).
    pub actions_per_input: u32,
    /// The families that are on, each at most once (default all seven).
    pub families: Vec<Family>,
}

impl Default for FullPowerKnobs {
    fn default() -> Self {
        let c = FullPowerConfig::default();
        FullPowerKnobs { rate: c.rate.as_f64(), actions_per_input: c.actions_per_input, families: c.families }
    }
}

impl FullPowerKnobs {
    /// Whether every knob has its default (then the table is not written out).
    pub fn is_default(&self) -> bool {
        *self == FullPowerKnobs::default()
    }

    /// The consensus-core configuration (the rate to parts per million; checked when parsed).
    pub fn config(&self) -> FullPowerConfig {
        FullPowerConfig {
            rate: Ppm::from_f64(self.rate).unwrap_or(FullPowerConfig::default().rate),
            actions_per_input: self.actions_per_input.max(1),
            families: self.families.clone(),
        }
    }
}

/// One simulated node: an agent, or the second copy of a twin (`"2'"` in a file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef {
    /// The agent index.
    pub agent: u32,
    /// 0: the agent (or a twin's first copy); 1: a twin's second copy.
    pub copy: u8,
}

impl NodeRef {
    /// The agent itself (a twin's first copy).
    pub fn agent(agent: u32) -> NodeRef {
        NodeRef { agent, copy: 0 }
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.copy == 0 {
            write!(f, "{}", self.agent)
        } else {
            write!(f, "{}'", self.agent)
        }
    }
}

impl Serialize for NodeRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.copy == 0 {
            serializer.serialize_u32(self.agent)
        } else {
            serializer.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for NodeRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Refs;
        impl Visitor<'_> for Refs {
            type Value = NodeRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an agent index, or \"i'\" for the second copy of twin agent i")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeRef, E> {
                u32::try_from(v).map(NodeRef::agent).map_err(|_| E::custom(format!("agent index {v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeRef, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("agent index {v} is negative: expected 0 or more")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeRef, E> {
                let bad = || {
                    E::custom(format!(
                        "\"{v}\" is not a node: expected an agent index, or \"i'\" for the second copy of twin agent i"
                    ))
                };
                let digits = v.strip_suffix('\'').ok_or_else(bad)?;
                let agent = digits.parse::<u32>().map_err(|_| bad())?;
                Ok(NodeRef { agent, copy: 1 })
            }
        }
        deserializer.deserialize_any(Refs)
    }
}

/// `[[round_partitions]]`: the messages of `round` of `session` between different groups are
/// lost (those sent before `until_ms`, when given). Nodes in no group keep their links.
///
/// Without `until_ms` the cut lasts for ever, retransmissions included, so the scenario does
/// not promise liveness by default; generated scenarios end every cut by their GST.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[round_partitions]] table with session, round, groups and until_ms")]
pub struct RoundPartition {
    /// The session.
    pub session: u64,
    /// The round (session votes are round 0).
    pub round: u32,
    /// At least two disjoint, non-empty groups of nodes.
    pub groups: Vec<Vec<NodeRef>>,
    /// Messages sent from this simulated time on pass (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl RoundPartition {
    /// Whether this rule cuts a message of (`session`, `round`) from `from` to `to` sent at
    /// `now_ms`.
    pub fn cuts(&self, session: u64, round: u32, from: NodeRef, to: NodeRef, now_ms: u64) -> bool {
        if self.session != session || self.round != round || self.until_ms.is_some_and(|u| now_ms >= u) {
            return false;
        }
        let group = |n: NodeRef| self.groups.iter().position(|g| g.contains(&n));
        matches!((group(from), group(to)), (Some(a), Some(b)) if a != b)
    }
}

/// A small-scope mutation of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TamperAction {
    /// Not sent.
    #[serde(rename = "omit")]
    Omit,
    /// The round plus one, re-signed.
    #[serde(rename = "round+1")]
    RoundUp,
    /// The round minus one (round 0 stays 0), re-signed.
    #[serde(rename = "round-1")]
    RoundDown,
    /// A round vote for another value this agent has seen proposed in the session (nil when
    /// it saw none); a proposal of another value it has seen. Re-signed.
    #[serde(rename = "other-value")]
    OtherValue,
    /// A round vote for nil, re-signed.
    #[serde(rename = "nil")]
    Nil,
    /// The agent's previous message of the same kind in the session instead (omitted when it
    /// sent none).
    #[serde(rename = "replay")]
    Replay,
}

impl TamperAction {
    /// Every action.
    pub const ALL: [TamperAction; 6] = [
        TamperAction::Omit,
        TamperAction::RoundUp,
        TamperAction::RoundDown,
        TamperAction::OtherValue,
        TamperAction::Nil,
        TamperAction::Replay,
    ];

    /// The name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            TamperAction::Omit => "omit",
            TamperAction::RoundUp => "round+1",
            TamperAction::RoundDown => "round-1",
            TamperAction::OtherValue => "other-value",
            TamperAction::Nil => "nil",
            TamperAction::Replay => "replay",
        }
    }
}

/// `[[tamper]]`: what happens to the messages of a faulty `agent` in `round` of `session` sent
/// to the agents in `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[tamper]] table with agent, session, round, to and action")]
pub struct Tamper {
    /// A Byzantine agent.
    pub agent: u32,
    /// The session.
    pub session: u64,
    /// The round (session votes are round 0).
    pub round: u32,
    /// The receivers whose copies are tampered with (non-empty).
    pub to: Vec<u32>,
    /// What is done.
    pub action: TamperAction,
}

impl super::Scenario {
    /// Drops what of the round rules no longer fits the scenario (after a shrink removed
    /// agents, sessions or Byzantine agents): nodes that do not exist or twin copies of agents
    /// that are not twins, partitions left with fewer than two groups, tamper rules of agents
    /// that are not Byzantine, receivers that do not exist.
    pub fn prune_rules(&mut self) {
        let (count, sessions) = (self.agents.count, self.workload.sessions);
        let mut named: Vec<u32> = self.byzantine.agents.clone().unwrap_or_default();
        named.sort_unstable();
        let behaviours: Vec<(u32, Behaviour)> =
            named.iter().enumerate().map(|(rank, a)| (*a, self.byzantine.behaviour(rank))).collect();
        let twin = |a: u32| behaviours.iter().any(|(b, x)| *b == a && *x == Behaviour::Twin);
        let exists = |n: &NodeRef| n.agent < count && (n.copy == 0 || twin(n.agent));
        self.round_partitions.retain_mut(|p| {
            for g in &mut p.groups {
                g.retain(exists);
            }
            p.groups.retain(|g| !g.is_empty());
            p.session < sessions && p.groups.len() >= 2
        });
        self.tamper.retain_mut(|t| {
            t.to.retain(|a| *a < count);
            t.session < sessions && !t.to.is_empty() && named.contains(&t.agent)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Holder {
        b: Behaviour,
        n: Vec<NodeRef>,
        a: TamperAction,
    }

    #[test]
    fn names_round_trip() {
        for b in Behaviour::all() {
            assert_eq!(Behaviour::from_name(b.name()), Some(b));
        }
        let h: Holder = toml::from_str("b = \"twin\"\nn = [1, \"2'\"]\na = \"round+1\"").unwrap();
        assert_eq!(h.b, Behaviour::Twin);
        assert_eq!(h.n, vec![NodeRef::agent(1), NodeRef { agent: 2, copy: 1 }]);
        assert_eq!(h.a, TamperAction::RoundUp);
        let text = toml::to_string(&h).unwrap();
        let back: Holder = toml::from_str(&text).unwrap();
        assert_eq!((back.b, back.n, back.a), (h.b, h.n, h.a));
    }

    #[test]
    fn bad_names_are_errors_not_panics() {
        for text in [
            "b = \"twins\"\nn = []\na = \"omit\"",
            "b = \"twin\"\nn = [\"x'\"]\na = \"omit\"",
            "b = \"twin\"\nn = [-1]\na = \"omit\"",
        ] {
            let err = toml::from_str::<Holder>(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!err.is_empty(), "{text}");
        }
    }

    #[test]
    fn a_round_partition_cuts_only_its_round() {
        let p = RoundPartition {
            session: 0,
            round: 1,
            groups: vec![vec![NodeRef::agent(0), NodeRef::agent(1)], vec![NodeRef { agent: 1, copy: 1 }]],
            until_ms: Some(500),
        };
        let twin = NodeRef { agent: 1, copy: 1 };
        assert!(p.cuts(0, 1, NodeRef::agent(0), twin, 0));
        assert!(!p.cuts(0, 1, NodeRef::agent(0), twin, 500), "the cut ends at until_ms");
        assert!(!p.cuts(0, 1, NodeRef::agent(0), NodeRef::agent(1), 0));
        assert!(!p.cuts(0, 2, NodeRef::agent(0), twin, 0));
        assert!(!p.cuts(1, 1, NodeRef::agent(0), twin, 0));
        assert!(!p.cuts(0, 1, NodeRef::agent(0), NodeRef::agent(3), 0));
    }
}
