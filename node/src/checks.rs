//! What a configuration must satisfy beyond its syntax, for `check` and for `run` alike:
//! distinct ids, an opener among them, public keys that parse, addresses that do not clash
//! (within the node or with a peer), and key files that exist, parse and belong to this agent.
//!
//! Every problem names the key it is about, so that the error points at that key's line: a
//! repeated id at the repeating `[[peers]]` entry, a clashing address at the address that
//! clashes, a wrong key at `key_file`.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;

use crate::config::{ConfigError, NodeConfig};
use crate::keys::{self, to_hex};
use crate::problem::{line_col, Field, Problem};

fn problem(at: Field, message: String) -> Problem {
    Problem { at, message }
}

/// Problems visible in the configuration itself (nothing is read from disk).
pub fn config_problems(c: &NodeConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    ids(c, &mut out);
    public_keys(c, &mut out);
    addresses(c, &mut out);
    out
}

/// Repeated ids (reported at the repeating entry) and the opener.
fn ids(c: &NodeConfig, out: &mut Vec<Problem>) {
    for (k, p) in c.peers.iter().enumerate() {
        if p.id == c.id {
            let message =
                format!("[[peers]] id = {} is this agent's own id; fix: give every agent a distinct id", p.id);
            out.push(problem(Field::PeerId(k), message));
        } else if let Some(first) = c.peers[..k].iter().position(|q| q.id == p.id) {
            let message = format!(
                "[[peers]] id = {} repeats the id of [[peers]] entry {} (of {}); fix: give every agent a distinct id",
                p.id,
                first + 1,
                c.peers.len()
            );
            out.push(problem(Field::PeerId(k), message));
        }
    }
    let known = c.client.opener == c.id || c.peers.iter().any(|p| p.id == c.client.opener);
    if !known {
        let mut all: Vec<u32> = c.peers.iter().map(|p| p.id).chain([c.id]).collect();
        all.sort_unstable();
        let message = format!("opener {} is not an agent of {all:?}; fix: name one of them", c.client.opener);
        out.push(problem(Field::Key("opener"), message));
    }
}

/// Every public key parses; no two agents (or an agent and the client) share one.
fn public_keys(c: &NodeConfig, out: &mut Vec<Problem>) {
    let fix = "fix: copy the 64 hex digits `bftsim-node keygen` printed for that key";
    let mut seen: Vec<(String, String)> = Vec::new(); // (key, whose)
    let mut check = |text: &str, whose: String, at: Field, out: &mut Vec<Problem>| {
        if let Err(e) = keys::parse_public(text, &format!("{whose}: public_key {text:?}")) {
            out.push(problem(at, format!("{e}; {fix}")));
            return;
        }
        let norm = text.trim().to_ascii_lowercase();
        if let Some((_, other)) = seen.iter().find(|(k, _)| *k == norm) {
            let message = format!("{whose} has the same public key as {other}; fix: every agent needs its own key");
            out.push(problem(at, message));
        }
        seen.push((norm, whose));
    };
    check(&c.client.public_key, "the cluster client".into(), Field::ClientPublicKey, out);
    if let Some(own) = &c.public_key {
        check(own, format!("agent {} (this agent)", c.id), Field::PublicKey, out);
    }
    for (k, p) in c.peers.iter().enumerate() {
        check(&p.public_key, format!("agent {}", p.id), Field::PeerPublicKey(k), out);
    }
}

/// Two sockets clash when they have one port and one address, or one of them listens on
/// every address (0.0.0.0 or ::).
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The node's two addresses differ and no peer uses either; peers' addresses are distinct.
fn addresses(c: &NodeConfig, out: &mut Vec<Problem>) {
    let fix = "fix: give every listener of every agent its own host:port";
    if clash(c.listen, c.http) {
        let message = format!("http {} is also this agent's listen address {} (peers); {fix}", c.http, c.listen);
        out.push(problem(Field::Http, message));
    }
    // Every address claimed so far: (address, whose, field).
    let mut claimed: Vec<(SocketAddr, String)> =
        vec![(c.listen, "this agent's listen address".into()), (c.http, "this agent's http address".into())];
    for (k, p) in c.peers.iter().enumerate() {
        for (address, what, at) in [(p.address, "address", Field::PeerAddress(k)), (p.http, "http", Field::PeerHttp(k))]
        {
            if let Some((_, whose)) = claimed.iter().find(|(a, _)| clash(*a, address)) {
                let message = format!("[[peers]] id = {} {what} {address} is also {whose}; {fix}", p.id);
                out.push(problem(at, message));
            }
            let whose = if what == "http" { "http address" } else { "address" };
            claimed.push((address, format!("agent {}'s {whose}", p.id)));
        }
    }
}

/// Problems with the key files the configuration at `path` names: this agent's key exists,
/// parses and is this agent's (its public half is `public_key` when the file has one, and is
/// no peer's or the client's); the opener's client key exists, parses and matches
/// `[client] public_key`.
pub fn key_problems(path: &Path, c: &NodeConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    match read_key(path, &c.key_file, Field::KeyFile, "key_file") {
        Err(p) => out.push(p),
        Ok(key) => {
            if let Some(p) = whose_key(c, &key.verifying_key()) {
                out.push(p);
            }
        }
    }
    let opener = c.client.opener == c.id;
    match (&c.client.key_file, opener) {
        (None, _) => {} // the opener without one: `NodeConfig::range_problems`
        (Some(file), _) => {
            let exists = NodeConfig::resolve(path, file).exists();
            // Only the opener signs with the client key; elsewhere a missing one is harmless.
            if opener || exists {
                match read_key(path, file, Field::ClientKeyFile, "[client] key_file") {
                    Err(p) => out.push(p),
                    Ok(key) => {
                        let public = to_hex(key.verifying_key().as_bytes());
                        if !public.eq_ignore_ascii_case(c.client.public_key.trim()) {
                            let message = format!(
                                "[client] key_file {} holds the key of public key {public}, not [client] public_key \
                                 {}; agents would reject every session it opens; fix: point key_file at the \
                                 cluster's client.key, or public_key at its public half",
                                file.display(),
                                c.client.public_key.trim()
                            );
                            out.push(problem(Field::ClientKeyFile, message));
                        }
                    }
                }
            }
        }
    }
    out
}

fn read_key(path: &Path, file: &Path, at: Field, key: &str) -> Result<SigningKey, Problem> {
    let full = NodeConfig::resolve(path, file);
    let text = std::fs::read_to_string(&full).map_err(|e| {
        let message = format!(
            "{key} {}: cannot read {}: {e}; fix: point {key} at the secret key (relative to this file), or write \
             one with `bftsim-node keygen --out FILE`",
            file.display(),
            full.display()
        );
        problem(at, message)
    })?;
    let bytes = keys::from_hex32(&text).ok_or_else(|| {
        let message = format!(
            "{key} {}: {} does not hold 64 hex digits (an ed25519 secret key); fix: point {key} at the secret key \
             `bftsim-node keygen` or `init-cluster` wrote",
            file.display(),
            full.display()
        );
        problem(at, message)
    })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// `Some` when `public` (the half of `key_file`) is not this agent's key.
fn whose_key(c: &NodeConfig, public: &VerifyingKey) -> Option<Problem> {
    let hex = to_hex(public.as_bytes());
    let same = |text: &str| text.trim().eq_ignore_ascii_case(&hex);
    let fix = format!("fix: point key_file at agent {}'s own key (init-cluster writes agent-{}.key)", c.id, c.id);
    if let Some(p) = c.peers.iter().find(|p| same(&p.public_key)) {
        let message = format!(
            "key_file {} holds agent {}'s key (the public_key of [[peers]] id = {}), not agent {}'s; peers would \
             refuse this node; {fix}",
            c.key_file.display(),
            p.id,
            p.id,
            c.id
        );
        return Some(problem(Field::KeyFile, message));
    }
    if same(&c.client.public_key) {
        let message =
            format!("key_file {} holds the cluster client's key, not agent {}'s; {fix}", c.key_file.display(), c.id);
        return Some(problem(Field::KeyFile, message));
    }
    match &c.public_key {
        Some(own) if !same(own) => {
            let message = format!(
                "key_file {} holds the key of public key {hex}, but this agent's public_key is {}; peers know agent \
                 {} by public_key and would refuse this node; {fix}",
                c.key_file.display(),
                own.trim(),
                c.id
            );
            Some(problem(Field::KeyFile, message))
        }
        _ => None,
    }
}

/// Where each key the problems name is written (toml's spans); keys the text lacks are `None`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Places {
    id: Option<toml::Spanned<toml::Value>>,
    listen: Option<toml::Spanned<toml::Value>>,
    http: Option<toml::Spanned<toml::Value>>,
    key_file: Option<toml::Spanned<toml::Value>>,
    public_key: Option<toml::Spanned<toml::Value>>,
    client: ClientPlaces,
    peers: Vec<PeerPlaces>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ClientPlaces {
    public_key: Option<toml::Spanned<toml::Value>>,
    key_file: Option<toml::Spanned<toml::Value>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeerPlaces {
    id: Option<toml::Spanned<toml::Value>>,
    address: Option<toml::Spanned<toml::Value>>,
    http: Option<toml::Spanned<toml::Value>>,
    public_key: Option<toml::Spanned<toml::Value>>,
}

impl Places {
    fn span(&self, at: Field) -> Option<Range<usize>> {
        let peer = |k: usize| self.peers.get(k);
        let spanned = match at {
            Field::Key(_) => None,
            Field::Id => self.id.as_ref(),
            Field::Listen => self.listen.as_ref(),
            Field::Http => self.http.as_ref(),
            Field::KeyFile => self.key_file.as_ref(),
            Field::PublicKey => self.public_key.as_ref(),
            Field::ClientPublicKey => self.client.public_key.as_ref(),
            Field::ClientKeyFile => self.client.key_file.as_ref(),
            Field::PeerId(k) => peer(k).and_then(|p| p.id.as_ref()),
            Field::PeerAddress(k) => peer(k).and_then(|p| p.address.as_ref()),
            Field::PeerHttp(k) => peer(k).and_then(|p| p.http.as_ref()),
            Field::PeerPublicKey(k) => peer(k).and_then(|p| p.public_key.as_ref()),
        };
        spanned.map(toml::Spanned::span)
    }
}

/// `problems` as errors at their place in `text` (the file `file`): the line and column of the
/// value they are about.
pub fn locate(file: &Path, text: &str, problems: Vec<Problem>) -> Vec<ConfigError> {
    let places: Places = toml::from_str(text).unwrap_or_default();
    problems
        .into_iter()
        .map(|p| {
            let (line, column) = match (places.span(p.at), p.at) {
                (Some(span), _) => line_col(text, span.start),
                (None, Field::Key(key)) => crate::config::find_key(text, key),
                (None, _) => (0, 0),
            };
            ConfigError { file: file.to_path_buf(), line, column, message: p.message }
        })
        .collect()
}

/// Parses `text` (from `file`), reporting errors at their position: the first of what serde
/// finds, then of [`config_problems`] and [`NodeConfig::range_problems`] (key files are not read).
pub fn parse(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
    let config = NodeConfig::parse_syntax(file, text)?;
    let mut problems = config_problems(&config);
    problems.extend(config.range_problems());
    match locate(file, text, problems).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(config),
    }
}

/// Reads and [`parse`]s a file.
pub fn load(file: &Path) -> Result<NodeConfig, ConfigError> {
    parse(file, &NodeConfig::read(file)?)
}

/// Every problem of the file at `path`, located: the configuration's, then its key files'.
/// `Err` holds the first error that stops parsing.
pub fn diagnose(path: &Path) -> Result<(NodeConfig, Vec<ConfigError>), ConfigError> {
    let (config, text) = NodeConfig::load_unchecked(path)?;
    let mut problems = config_problems(&config);
    problems.extend(config.range_problems());
    problems.extend(key_problems(path, &config));
    Ok((config, locate(path, &text, problems)))
}

/// What `run` checks before it starts: every problem [`diagnose`] finds stops the node (a
/// node with another agent's key would start, answer `/healthz` and never decide).
pub fn preflight(path: &Path) -> Result<NodeConfig, ConfigError> {
    let (config, mut errors) = diagnose(path)?;
    match errors.is_empty() {
        true => Ok(config),
        false => Err(errors.remove(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with agent 0's, agent 1's and the client's keys, and agent 0's file text.
    struct Fixture {
        dir: std::path::PathBuf,
        text: String,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir = std::env::temp_dir().join(format!("bftsim-checks-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            let mut public = Vec::new();
            for name in ["agent-0", "agent-1", "agent-2", "client"] {
                let key = keys::generate();
                let written = format!("{}\n", to_hex(key.as_bytes()));
                std::fs::write(dir.join(format!("{name}.key")), written).unwrap_or_else(|e| panic!("{e}"));
                public.push(to_hex(key.verifying_key().as_bytes()));
            }
            let text = format!(
                r#"id = 0
specialization = "retriever"
listen = "127.0.0.1:7000"
http = "127.0.0.1:8000"
key_file = "agent-0.key"
public_key = "{p0}"
data_dir = "data"

[client]
public_key = "{client}"
key_file = "client.key"
opener = 0

[[peers]]
id = 1
specialization = "analyzer"
address = "127.0.0.1:7001"
http = "127.0.0.1:8001"
public_key = "{p1}"

[[peers]]
id = 2
specialization = "validator"
address = "127.0.0.1:7002"
http = "127.0.0.1:8002"
public_key = "{p2}"
"#,
                p0 = public[0],
                p1 = public[1],
                p2 = public[2],
                client = public[3]
            );
            Fixture { dir, text }
        }

        /// The errors `diagnose` reports for the file `edit(text)`, as "line:column: message".
        fn errors(&self, edit: &dyn Fn(&str) -> String) -> Vec<String> {
            let path = self.dir.join("agent-0.toml");
            std::fs::write(&path, edit(&self.text)).unwrap_or_else(|e| panic!("{e}"));
            let prefix = format!("{}:", path.display());
            match diagnose(&path) {
                Ok((_, errors)) => errors.iter().map(|e| e.to_string().replacen(&prefix, "", 1)).collect(),
                Err(e) => vec![format!("parse: {e}")],
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `parse` (what `load` runs) reports what the committee gets wrong at its line, not only
    /// syntax: an opener that is not a member is reported at `opener`.
    #[test]
    fn parse_checks_beyond_syntax() {
        let f = Fixture::new("parse");
        let path = f.dir.join("agent-0.toml");
        assert!(parse(&path, &f.text).is_ok());
        let bad = f.text.replace("opener = 0", "opener = 7");
        let e = parse(&path, &bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with(&format!("{}:12:1: opener 7", path.display())), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_the_line_it_is_about() {
        let f = Fixture::new("table");
        let p1 = f.text.lines().find(|l| l.starts_with("public_key") && l.len() > 20).map(str::to_owned);
        let own = p1.unwrap_or_default(); // this agent's `public_key = "…"` line (line 6)
        let fresh = to_hex(keys::generate().verifying_key().as_bytes());
        let last = f.text.lines().rfind(|l| l.starts_with("public_key")).map(str::to_owned).unwrap_or_default();
        type Edit = Box<dyn Fn(&str) -> String>;
        let table: Vec<(&str, Edit, &str)> = vec![
            ("a sound file", Box::new(|t: &str| t.to_owned()), ""),
            (
                "missing key file",
                Box::new(|t: &str| t.replace("\"agent-0.key\"", "\"gone.key\"")),
                "5:12: key_file gone.key: cannot read",
            ),
            (
                "key file not hex",
                Box::new(|t: &str| t.replace("\"agent-0.key\"", "\"agent-0.toml\"")),
                "5:12: key_file agent-0.toml:",
            ),
            (
                "another agent's key",
                Box::new(|t: &str| t.replace("\"agent-0.key\"", "\"agent-2.key\"")),
                "5:12: key_file agent-2.key holds agent 2's key",
            ),
            (
                "the client's key",
                Box::new(|t: &str| t.replace("\"agent-0.key\"", "\"client.key\"")),
                "5:12: key_file client.key holds the cluster client's key",
            ),
            (
                "a key not this agent's public key",
                Box::new(move |t: &str| t.replace(&own, &format!("public_key = \"{fresh}\""))),
                "5:12: key_file agent-0.key holds the key of public key",
            ),
            (
                "a peer's key does not parse",
                Box::new(move |t: &str| t.replace(&last, "public_key = \"00\"")),
                "26:14: agent 2: public_key \"00\": expected 64 hex digits",
            ),
            (
                "http is listen",
                Box::new(|t: &str| t.replace("127.0.0.1:8000", "127.0.0.1:7000")),
                "4:8: http 127.0.0.1:7000 is also this agent's listen address",
            ),
            (
                "listen is a peer's",
                Box::new(|t: &str| t.replace("127.0.0.1:7002", "0.0.0.0:7000")),
                "24:11: [[peers]] id = 2 address 0.0.0.0:7000 is also this agent's listen address",
            ),
            (
                "a peer's http is another's address",
                Box::new(|t: &str| t.replace("127.0.0.1:8002", "127.0.0.1:7001")),
                "25:8: [[peers]] id = 2 http 127.0.0.1:7001 is also agent 1's address",
            ),
            (
                "the client key is missing",
                Box::new(|t: &str| t.replace("\"client.key\"", "\"nope.key\"")),
                "11:12: [client] key_file nope.key: cannot read",
            ),
            (
                "the client key is another",
                Box::new(|t: &str| t.replace("\"client.key\"", "\"agent-1.key\"")),
                "11:12: [client] key_file agent-1.key holds the key of public key",
            ),
            (
                "a repeated peer id",
                Box::new(|t: &str| t.replace("id = 2\n", "id = 1\n")),
                "22:6: [[peers]] id = 1 repeats the id of [[peers]] entry 1",
            ),
            (
                "a peer with this agent's id",
                Box::new(|t: &str| t.replace("id = 2\n", "id = 0\n")),
                "22:6: [[peers]] id = 0 is this agent's own id",
            ),
        ];
        for (name, edit, expected) in table {
            let errors = f.errors(&*edit);
            match expected {
                "" => assert!(errors.is_empty(), "{name}: {errors:?}"),
                _ => assert!(errors.first().is_some_and(|e| e.starts_with(expected)), "{name}: {errors:?}"),
            }
        }
    }
}
