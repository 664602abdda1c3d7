//! Where a configuration problem is and what it says: shared by [`crate::config`] (range checks
//! while parsing) and [`crate::checks`] (what `check` and `run` verify beyond syntax), which
//! turns each into a `file:line:col` error. Its own module so that neither of the two imports
//! the other both ways.

/// The key a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The first line assigning this key (for keys that occur once).
    Key(&'static str),
    /// `id`.
    Id,
    /// `listen`.
    Listen,
    /// `http`.
    Http,
    /// `key_file`.
    KeyFile,
    /// `public_key` (this agent's).
    PublicKey,
    /// `[client] public_key`.
    ClientPublicKey,
    /// `[client] key_file`.
    ClientKeyFile,
    /// `id` of the k-th `[[peers]]` entry.
    PeerId(usize),
    /// `address` of the k-th `[[peers]]` entry.
    PeerAddress(usize),
    /// `http` of the k-th `[[peers]]` entry.
    PeerHttp(usize),
    /// `public_key` of the k-th `[[peers]]` entry.
    PeerPublicKey(usize),
}

/// A problem with a configuration: where, and what is wrong with the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key.
    pub at: Field,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
