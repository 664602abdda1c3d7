//! ed25519 keys: hex files, the agent's signer, the committee's verifier and the peer
//! handshake's signed bytes.

use std::path::Path;
use std::sync::Arc;

use consensus_core::sign::{Ed25519Keyring, Signature, Signer};
use consensus_core::AgentId;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not 64 hex digits (32 bytes).
    #[error("{0}: expected 64 hex digits (32 bytes)")]
    BadHex(String),
    /// Not a valid ed25519 public key.
    #[error("{0}: not an ed25519 public key")]
    BadPublicKey(String),
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from 64 hex digits (surrounding whitespace ignored).
pub fn from_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A fresh secret key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Reads a secret key file (64 hex digits).
pub fn read_secret(path: &Path) -> Result<SigningKey, KeyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    let bytes = from_hex32(&text).ok_or_else(|| KeyError::BadHex(path.display().to_string()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Parses a public key written as 64 hex digits; `what` names it in errors.
pub fn parse_public(text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = from_hex32(text).ok_or_else(|| KeyError::BadHex(what.to_owned()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadPublicKey(what.to_owned()))
}

/// An agent's (or the client's) ed25519 signer. Cloneable, as the Byzantine wrapper needs.
#[derive(Clone)]
pub struct NodeSigner {
    agent: AgentId,
    key: Arc<SigningKey>,
}

impl NodeSigner {
    /// Signs as `agent` with `key`.
    pub fn new(agent: AgentId, key: SigningKey) -> NodeSigner {
        NodeSigner { agent, key: Arc::new(key) }
    }

    /// The public half.
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl Signer for NodeSigner {
    fn agent(&self) -> AgentId {
        self.agent
    }
    fn sign(&self, bytes: &[u8]) -> Signature {
        Signature(self.key.sign(bytes).to_bytes())
    }
}

/// A keyring from `(agent, public key)` pairs.
pub fn keyring(keys: impl IntoIterator<Item = (AgentId, VerifyingKey)>) -> Ed25519Keyring {
    let mut ring = Ed25519Keyring::default();
    for (agent, key) in keys {
        ring.insert(agent, key);
    }
    ring
}

/// What a dialing peer signs to authenticate: the acceptor's challenge and both identities.
pub fn handshake_bytes(challenge: &[u8; 32], dialer: AgentId, acceptor: AgentId) -> Vec<u8> {
    let mut b = b"bftsim/handshake/v1".to_vec();
    b.extend_from_slice(challenge);
    b.extend_from_slice(&dialer.0.to_be_bytes());
    b.extend_from_slice(&acceptor.0.to_be_bytes());
    b
}

/// Whether `signature` is `key`'s signature of `bytes`.
pub fn verify_with(key: &VerifyingKey, bytes: &[u8], signature: &[u8; 64]) -> bool {
    key.verify(bytes, &ed25519_dalek::Signature::from_bytes(signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let key = generate();
        let hex = to_hex(key.as_bytes());
        assert_eq!(from_hex32(&hex), Some(*key.as_bytes()));
        assert_eq!(from_hex32("zz"), None);
        assert_eq!(from_hex32(&"g".repeat(64)), None);
    }

    #[test]
    fn handshake_signatures_bind_both_identities() {
        let key = generate();
        let challenge = [7u8; 32];
        let sig = key.sign(&handshake_bytes(&challenge, AgentId(1), AgentId(2))).to_bytes();
        let public = key.verifying_key();
        assert!(verify_with(&public, &handshake_bytes(&challenge, AgentId(1), AgentId(2)), &sig));
        assert!(!verify_with(&public, &handshake_bytes(&challenge, AgentId(1), AgentId(3)), &sig));
        assert!(!verify_with(&public, &handshake_bytes(&[8u8; 32], AgentId(1), AgentId(2)), &sig));
    }
}
