//! Serves the client API over HTTP/1.1 with read timeouts (`[api]`): hyper closes a
//! connection whose request headers have not all arrived within `header_timeout_ms` (a client
//! that drips its headers, or opens a connection and says nothing), and [`body_within`]
//! answers `408` and closes a connection whose body has not all arrived within
//! `body_timeout_ms`. `axum::serve` sets neither (it has no timer), so a slow client held a
//! connection and its buffers for as long as it liked.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::ApiConfig;

/// Largest request body read (axum's default limit, kept: a submission is at most
/// `wire::MAX_TEXT_BYTES` of JSON anyway).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Accepts connections on `listener` and serves `app` on each until the process ends.
pub async fn serve(listener: TcpListener, app: Router, limits: ApiConfig) {
    let header_timeout = Duration::from_millis(limits.header_timeout_ms);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                eprintln!("http: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            // A connection that fails (a reset, the header timeout) concerns only its client.
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Reads the whole request body within `timeout` (from the end of the headers) before the
/// handler runs: `408` and `Connection: close` when it does not arrive in time, `413` beyond
/// [`MAX_BODY_BYTES`].
pub async fn body_within(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            match too_large {
                true => refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the body exceeds {MAX_BODY_BYTES} bytes")),
                false => refuse(StatusCode::BAD_REQUEST, format!("reading the body failed: {e}")),
            }
        }
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} ms ([api] body_timeout_ms)", timeout.as_millis()),
        ),
    }
}

/// A JSON error that also closes the connection (the rest of the body may still be coming).
fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
