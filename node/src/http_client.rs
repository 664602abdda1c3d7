//! The node's HTTP client: reqwest over rustls (no OpenSSL), for `http` evaluators (`http://`
//! and `https://`), forwarding submissions to the opener, and driving nodes from tests, the
//! cluster harness and benchmarks.
//!
//! What reqwest gives that the hand-written client it replaced did not: TLS (webpki roots plus a
//! PEM the configuration trusts), a connection pool with keep-alive (one judge call no longer
//! costs a TCP handshake), redirects (up to 10; 307/308 keep the POST body), chunked and
//! compressed-free bodies of any framing, and separate connect and whole-request timeouts.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest response body read; beyond it the request fails (a judge's vote is a few hundred bytes).
pub const MAX_BODY: usize = 16 << 20;

/// Time allowed to open a connection (TCP and TLS), whatever the request's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request failed. The message is complete on its own (it carries its causes): callers
/// print it once and do not chain it again.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an `http://` or `https://` URL.
    #[error("unsupported URL {0:?} (expected http://host:port/path or https://host/path)")]
    BadUrl(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The server's certificate is not trusted (or TLS failed otherwise).
    #[error(
        "TLS with {url} failed: {cause} (if the server uses a self-signed or private-CA certificate, name its PEM in \
         the evaluator's `ca_file`)"
    )]
    Tls {
        /// The URL.
        url: String,
        /// What rustls said.
        cause: String,
    },
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Transport(String),
    /// The answer is larger than [`MAX_BODY`].
    #[error("response body larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The client could not be built (a CA file that is missing or not PEM).
    #[error("{0}")]
    Setup(String),
}

/// A response: status and body.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A pooled client. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// A client trusting the webpki roots and, when given, the certificates in the PEM file
    /// `ca_file` (a self-signed server certificate or a private CA).
    pub fn new(ca_file: Option<&Path>) -> Result<HttpClient, HttpError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(10));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| HttpError::Setup(format!("cannot read the CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| HttpError::Setup(format!("{}: not a PEM certificate: {}", path.display(), chain(&e))))?;
            if certs.is_empty() {
                return Err(HttpError::Setup(format!(
                    "{}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let inner = builder.build().map_err(|e| HttpError::Setup(chain(&e)))?;
        Ok(HttpClient { inner })
    }

    /// Sends one request with a JSON body (when given) and reads the whole response, all within
    /// `timeout` (redirects included).
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| HttpError::BadUrl(url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(HttpError::BadUrl(url.to_owned()));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| HttpError::BadUrl(url.to_owned()))?;
        let mut request = self.inner.request(method, parsed).timeout(timeout);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_vec());
        }
        let mut response = request.send().await.map_err(|e| classify(url, &e))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, &e))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Response { status, body: bytes })
    }
}

/// The error and its causes on one line, each said once ("a: b: c").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

fn classify(url: &str, error: &reqwest::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let text = chain(error);
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        // Keep only the part rustls contributes: reqwest's prefix repeats the URL.
        let cause = text.rsplit_once(": ").map_or(text.as_str(), |(_, last)| last).to_owned();
        return HttpError::Tls { url: url.to_owned(), cause };
    }
    HttpError::Transport(text)
}

/// The process-wide client without extra trust (forwarding, tests, the cluster harness).
pub fn shared() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // Without a CA file the builder only fails if rustls has no crypto provider, which
        // the `rustls-tls` feature always compiles in; fall back to reqwest's defaults anyway.
        HttpClient::new(None).unwrap_or_else(|_| HttpClient { inner: reqwest::Client::new() })
    })
}

/// Sends one request through [`shared`]'s pool.
pub async fn request(method: &str, url: &str, body: Option<&[u8]>, timeout: Duration) -> Result<Response, HttpError> {
    shared().request(method, url, body, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_setup_error() {
        let missing = HttpClient::new(Some(Path::new("/nonexistent/ca.pem"))).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("cannot read the CA file /nonexistent/ca.pem")),
            "{missing:?}"
        );
        let dir = std::env::temp_dir().join(format!("bftsim-http-client-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not a certificate\n");
        let empty = HttpClient::new(Some(&empty)).map(|_| ()).map_err(|e| e.to_string());
        assert!(empty.as_ref().is_err_and(|e| e.contains("no certificate in it")), "{empty:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn urls_other_than_http_and_https_are_refused() {
        for url in ["ftp://x/", "localhost:80/", "http://", "mailto:judge@example.com"] {
            let r = request("GET", url, None, Duration::from_secs(1)).await;
            assert!(matches!(r, Err(HttpError::BadUrl(_))), "{url}: {r:?}");
        }
    }
}
