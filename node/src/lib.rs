//! bftsim-node: consensus-core's `Runner`, unchanged, over a real network.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | one agent's TOML file; errors at `file:line:col` with the fix |
//! | [`checks`] | what `check` and `run` verify beyond syntax: ids, keys, addresses, each at its line |
//! | [`problem`] | a configuration problem's key and message, and `line_col` (shared by `config` and `checks`) |
//! | [`cluster`] | `init-cluster`: keys and configuration files for a local cluster |
//! | [`keys`] | ed25519 key files, the agent's signer, the handshake's signed bytes |
//! | [`transport`] | tokio TCP carrying `wire` frames: bounded queue per peer, reconnect with backoff, signed handshake, size limits |
//! | [`clock`] | the real clock (`runner::Clock`) |
//! | [`durable`] | the tokio glue of the `durable` crate: the syncer (group commit), the marks frames wait for, the runner's node |
//! | [`issued`] | whether a session id was ever issued (`404` for ids never issued) |
//! | [`opener`] | the opener's glue: `durable::Opener` behind a mutex, its syncer, the tasks that send `Open` |
//! | [`evaluate`] | `synthetic`, `command` and `http` evaluators and their JSON schema |
//! | [`state`] | decisions (served from the `durable` crate's archive), counters; the runner's observer |
//! | [`answer`] | the JSON answer of a decision; what `verify` compares with the certificate |
//! | [`api`] | the HTTP/JSON client API, `/metrics`, `/healthz` |
//! | [`verify`] | offline verification of a commit certificate |
//! | [`run`] | assembles a node |
//! | [`server`] | serves the API over HTTP/1.1 with header and body read timeouts (`[api]`) |
//! | [`http_client`] | reqwest over rustls, pooled: `http`/`https` evaluators, forwarding to the opener, tests |
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

pub mod answer;
pub mod api;
pub mod checks;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod durable;
pub mod evaluate;
pub mod http_client;
pub mod issued;
pub mod keys;
pub mod metrics;
pub mod opener;
pub mod problem;
pub mod run;
pub mod server;
pub mod state;
pub mod transport;
pub mod verify;
