//! A minimal HTTP/1.1 client over tokio (plain `http://` only): enough to forward a session to
//! the opener, call an `http` evaluator and drive a node from tests and benchmarks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http://host:port/path`.
    #[error("unsupported URL {0} (expected http://host:port/path)")]
    BadUrl(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Not an HTTP response.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// A response: status and body.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Splits `http://host:port/path` into the address and the path.
pub fn split_url(url: &str) -> Result<(String, String), HttpError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| HttpError::BadUrl(url.to_owned()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(HttpError::BadUrl(url.to_owned()));
    }
    Ok((host.to_owned(), path.to_owned()))
}

/// Sends one request (`Connection: close`) and reads the whole response, within `timeout`.
pub async fn request(method: &str, url: &str, body: Option<&[u8]>, timeout: Duration) -> Result<Response, HttpError> {
    let (host, path) = split_url(url)?;
    tokio::time::timeout(timeout, exchange(method, &host, &path, body)).await.map_err(|_| HttpError::Timeout)?
}

async fn exchange(method: &str, host: &str, path: &str, body: Option<&[u8]>) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect(host).await?;
    stream.set_nodelay(true)?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.take(16 << 20).read_to_end(&mut raw).await?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| HttpError::Malformed("no header end".into()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[end + 4..];
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line_end =
            rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| HttpError::Malformed("chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size {
            return Err(HttpError::Malformed("truncated chunk".into()));
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi").map_err(|e| e.to_string());
        assert_eq!(plain.map(|r| (r.status, r.body)), Ok((200, b"hi".to_vec())));
        let chunked =
            parse_response(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
                .map_err(|e| e.to_string());
        assert_eq!(chunked.map(|r| (r.status, r.body)), Ok((201, b"abc".to_vec())));
        assert!(parse_response(b"garbage").is_err());
        assert!(split_url("https://x/").is_err());
        assert_eq!(split_url("http://a:1/b").map_err(|e| e.to_string()), Ok(("a:1".into(), "/b".into())));
    }
}
