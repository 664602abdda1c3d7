//! Signatures: a signer/verifier interface with two implementations.
//!
//! - **ed25519** ([`Ed25519Signer`], [`Ed25519Keyring`]) for real deployments.
//! - **simulation** ([`SimSigner`], [`SimKeyring`]): a keyed SHA-256 MAC. Each agent's signer
//!   holds only its own secret, so a Byzantine agent in the simulator cannot sign for another
//!   agent; the keyring, held by the honest infrastructure, knows every secret and verifies.
//!   It is deterministic and several times cheaper than ed25519, which keeps seeds fast.
//!
//! Both derive keys deterministically from a seed, so a simulated run is reproducible.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::types::AgentId;

/// Signature bytes (64, the size of an ed25519 signature).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// All zeroes: never valid for either scheme.
    pub const ZERO: Signature = Signature([0; 64]);
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SigVisitor;
        impl<'de> Visitor<'de> for SigVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let bytes: [u8; 64] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(bytes))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(65, &self));
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_bytes(SigVisitor)
    }
}

/// Signs on behalf of one agent.
pub trait Signer: Send {
    /// Whose signatures these are.
    fn agent(&self) -> AgentId;
    /// Signs `bytes`.
    fn sign(&self, bytes: &[u8]) -> Signature;
}

/// Checks any committee member's signatures.
pub trait Verifier: Send + Sync {
    /// Whether `signature` is `agent`'s signature of `bytes`. Unknown agents never verify.
    fn verify(&self, agent: AgentId, bytes: &[u8], signature: &Signature) -> bool;
}

fn derive_secret(domain: &[u8], seed: &[u8], agent: AgentId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(seed);
    h.update(agent.0.to_be_bytes());
    h.finalize().into()
}

/// An ed25519 signing key for one agent.
pub struct Ed25519Signer {
    agent: AgentId,
    key: SigningKey,
}

impl Signer for Ed25519Signer {
    fn agent(&self) -> AgentId {
        self.agent
    }
    fn sign(&self, bytes: &[u8]) -> Signature {
        Signature(self.key.sign(bytes).to_bytes())
    }
}

/// The verifying keys of a committee.
#[derive(Clone, Debug, Default)]
pub struct Ed25519Keyring {
    keys: BTreeMap<AgentId, VerifyingKey>,
}

impl Ed25519Keyring {
    /// Registers an agent's public key.
    pub fn insert(&mut self, agent: AgentId, key: VerifyingKey) {
        self.keys.insert(agent, key);
    }
}

impl Verifier for Ed25519Keyring {
    fn verify(&self, agent: AgentId, bytes: &[u8], signature: &Signature) -> bool {
        let Some(key) = self.keys.get(&agent) else { return false };
        key.verify(bytes, &ed25519_dalek::Signature::from_bytes(&signature.0)).is_ok()
    }
}

/// Deterministic ed25519 keys for agents `0..n` and the client, derived from `seed`.
pub fn ed25519_committee(seed: &[u8], n: u32) -> Keys<Ed25519Signer, Ed25519Keyring> {
    let mut keyring = Ed25519Keyring::default();
    let mut make = |agent: AgentId| {
        let key = SigningKey::from_bytes(&derive_secret(b"bftsim/ed25519/v1", seed, agent));
        keyring.insert(agent, key.verifying_key());
        Ed25519Signer { agent, key }
    };
    let agents = (0..n).map(|i| make(AgentId(i))).collect();
    let client = make(AgentId::CLIENT);
    Keys { agents, client, keyring }
}

/// A committee's keys: one signer per agent, the client's signer, and the verifier.
pub struct Keys<S, V> {
    /// Signers of agents `0..n`, in order.
    pub agents: Vec<S>,
    /// The client's signer.
    pub client: S,
    /// Verifies everyone.
    pub keyring: V,
}

/// The simulation signer: a SHA-256 MAC under the agent's own secret.
#[derive(Clone)]
pub struct SimSigner {
    agent: AgentId,
    secret: [u8; 32],
}

fn mac(secret: &[u8; 32], bytes: &[u8]) -> Signature {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(bytes);
    let digest: [u8; 32] = h.finalize().into();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&digest);
    // A fixed non-zero tail, so that Signature::ZERO never verifies.
    sig[32..].copy_from_slice(&[0xA5; 32]);
    Signature(sig)
}

impl Signer for SimSigner {
    fn agent(&self) -> AgentId {
        self.agent
    }
    fn sign(&self, bytes: &[u8]) -> Signature {
        mac(&self.secret, bytes)
    }
}

/// Every simulated agent's secret: the honest infrastructure's verifier.
#[derive(Clone, Debug, Default)]
pub struct SimKeyring {
    secrets: BTreeMap<AgentId, [u8; 32]>,
}

impl Verifier for SimKeyring {
    fn verify(&self, agent: AgentId, bytes: &[u8], signature: &Signature) -> bool {
        self.secrets.get(&agent).is_some_and(|s| mac(s, bytes) == *signature)
    }
}

/// Simulation signers for agents `0..n` and the client, and the keyring that verifies them,
/// from `seed`.
pub fn sim_committee(seed: u64, n: u32) -> Keys<SimSigner, SimKeyring> {
    let mut keyring = SimKeyring::default();
    let mut make = |agent: AgentId| {
        let secret = derive_secret(b"bftsim/sim-mac/v1", &seed.to_be_bytes(), agent);
        keyring.secrets.insert(agent, secret);
        SimSigner { agent, secret }
    };
    let agents = (0..n).map(|i| make(AgentId(i))).collect();
    let client = make(AgentId::CLIENT);
    Keys { agents, client, keyring }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_scheme(signers: &[&dyn Signer], verifier: &dyn Verifier) {
        let msg = b"session 7 round 2";
        let a = signers[0].sign(msg);
        assert!(verifier.verify(AgentId(0), msg, &a));
        // Another agent's key, another message, a flipped bit, an unknown agent: all fail.
        assert!(!verifier.verify(AgentId(1), msg, &a));
        assert!(!verifier.verify(AgentId(0), b"session 7 round 3", &a));
        let mut flipped = a;
        flipped.0[3] ^= 1;
        assert!(!verifier.verify(AgentId(0), msg, &flipped));
        assert!(!verifier.verify(AgentId(99), msg, &a));
        assert!(!verifier.verify(AgentId(0), msg, &Signature::ZERO));
        // Deterministic.
        assert_eq!(signers[0].sign(msg), a);
        assert_ne!(signers[1].sign(msg), a);
    }

    #[test]
    fn ed25519_signs_and_rejects_forgeries() {
        let keys = ed25519_committee(b"seed", 3);
        let dyns: Vec<&dyn Signer> = keys.agents.iter().map(|s| s as &dyn Signer).collect();
        check_scheme(&dyns, &keys.keyring);
        assert!(keys.keyring.verify(AgentId::CLIENT, b"open", &keys.client.sign(b"open")));
    }

    #[test]
    fn sim_signer_signs_and_rejects_forgeries() {
        let keys = sim_committee(42, 3);
        let dyns: Vec<&dyn Signer> = keys.agents.iter().map(|s| s as &dyn Signer).collect();
        check_scheme(&dyns, &keys.keyring);
        assert!(keys.keyring.verify(AgentId::CLIENT, b"open", &keys.client.sign(b"open")));
        // Another seed gives other keys.
        let other = sim_committee(43, 3);
        assert!(!keys.keyring.verify(AgentId(0), b"x", &other.agents[0].sign(b"x")));
    }

    #[test]
    fn signatures_round_trip_through_postcard_and_json() {
        let keys = sim_committee(1, 1);
        let sig = keys.agents[0].sign(b"abc");
        let bytes = postcard::to_allocvec(&sig).unwrap_or_default();
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).ok(), Some(sig));
        let json = serde_json::to_string(&sig).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Signature>(&json).ok(), Some(sig));
        assert!(postcard::from_bytes::<Signature>(&bytes[..10]).is_err());
    }
}
