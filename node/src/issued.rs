//! Whether a session id was ever issued, so that `GET /v1/sessions/{id}` answers `404` for an
//! id no client was given (instead of "pending" forever) and `202` only for a real session.
//!
//! The opener numbers sessions densely from 0 (docs/node.md, "the opener"), so an id is issued
//! exactly when it is below the opener's next id. A node has seen every id below the highest
//! it saw opened or decided; for a higher one it asks the opener, which may have handed it
//! out and not opened it yet (`max_in_flight`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use consensus_core::SessionId;

use crate::opener::Opener;
use crate::state::Shared;

/// How long a node waits for the opener's word on an id it has not seen.
const ASK_OPENER: Duration = Duration::from_secs(2);

/// What a node can tell about a session id.
#[derive(Debug, PartialEq, Eq)]
pub enum Issued {
    /// Handed out to a client.
    Yes,
    /// Never handed out: the opener's next id is `next`.
    No {
        /// The opener's next id.
        next: u64,
    },
    /// The opener could not be asked: treat as possibly issued.
    Unknown,
}

/// Whether `session` was issued, asking the opener at `opener_http` when this node is not it
/// and has not seen the id.
pub async fn issued(shared: &Shared, opener: Option<&Opener>, opener_http: SocketAddr, session: SessionId) -> Issued {
    if session.0 < shared.highest_opened.load(Ordering::Relaxed) {
        return Issued::Yes;
    }
    if let Some(opener) = opener {
        let next = opener.next_session().0;
        return if session.0 < next { Issued::Yes } else { Issued::No { next } };
    }
    let url = format!("http://{opener_http}/v1/sessions/{}", session.0);
    match crate::http_client::request("GET", &url, None, ASK_OPENER).await {
        Ok(r) if r.status == 404 => {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            match body.get("next").and_then(serde_json::Value::as_u64) {
                Some(next) => Issued::No { next },
                None => Issued::Unknown, // not this version's opener: no verdict
            }
        }
        Ok(_) => Issued::Yes,
        Err(_) => Issued::Unknown,
    }
}

/// The words of a `404` for a session never issued.
pub fn never_issued(session: u64, next: u64) -> String {
    match next {
        0 => format!("session {session} was never issued: the opener has issued no session yet"),
        _ => format!(
            "session {session} was never issued: the opener has issued sessions 0 to {} so far",
            next.saturating_sub(1)
        ),
    }
}
