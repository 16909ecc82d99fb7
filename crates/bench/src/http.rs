//! A minimal blocking HTTP/1.1 client: one `POST` per connection (`Connection: close`),
//! enough to drive the agent's `/api/v1` endpoint without pulling in an HTTP stack whose
//! own overhead would blur the latencies being measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// What came back: the status code and the (de-chunked) body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// Why a request got no response at all.
#[derive(Debug)]
pub enum Failure {
    /// Nothing listens yet (or any more): the connection was refused.
    Refused,
    /// Any other error.
    Other(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => write!(f, "connection refused"),
            Failure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<Failure> for anyhow::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Refused => anyhow::anyhow!("connection refused"),
            Failure::Other(e) => e,
        }
    }
}

/// Largest header block accepted from the server.
const MAX_HEAD: usize = 64 * 1024;

/// Sends `body` as `application/json` to `path` and reads the whole response. `timeout`
/// bounds the connect and each read and write.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, Failure> {
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Failure::Refused)
        }
        Err(e) => {
            return Err(Failure::Other(
                anyhow::Error::new(e).context(format!("cannot connect to {addr}")),
            ))
        }
    };
    exchange(&mut stream, addr, path, body, timeout).map_err(Failure::Other)
}

fn exchange(
    stream: &mut TcpStream,
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .with_context(|| format!("cannot send the request to {addr}"))?;
    read_response(stream).with_context(|| format!("bad or no response from {addr}"))
}

/// Reads a response: status line, headers, then a body delimited by `Content-Length`,
/// by chunked encoding, or by the end of the connection.
pub fn read_response(stream: &mut impl Read) -> anyhow::Result<Response> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            bail!("response headers exceed {MAX_HEAD} bytes");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before the end of the response headers");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line: {status_line:?}"))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line: {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse()
                    .with_context(|| format!("bad Content-Length: {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let mut rest = buf.split_off(head_end + 4);
    let body = if chunked {
        stream.read_to_end(&mut rest)?;
        dechunk(&rest)?
    } else if let Some(len) = content_length {
        if rest.len() < len {
            let mut more = vec![0u8; len - rest.len()];
            stream
                .read_exact(&mut more)
                .context("connection closed before the end of the body")?;
            rest.extend_from_slice(&more);
        }
        rest.truncate(len);
        rest
    } else {
        stream.read_to_end(&mut rest)?;
        rest
    };
    Ok(Response { status, body })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a complete chunked body (trailers are ignored).
fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").context("truncated chunk size line")?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let r = read_response(&mut &raw[..]).expect("parse");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn empty_body() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let r = read_response(&mut &raw[..]).expect("parse");
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        let r = read_response(&mut &raw[..]).expect("parse");
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "Wikipedia");
    }

    #[test]
    fn body_until_close() {
        let raw = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        let r = read_response(&mut &raw[..]).expect("parse");
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "nope");
    }

    #[test]
    fn truncated_headers_fail() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n";
        assert!(read_response(&mut &raw[..]).is_err());
    }
}
