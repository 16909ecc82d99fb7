//! The simulated cluster's HTTP/1.1 client, async so that one process can hold a thousand
//! agents: a SUBSCRIBE stream read record by record (chunked transfer encoding carrying
//! RecordIO), and a keep-alive connection for every other call of that stream.
//!
//! Hand-written for the same reason as `crate::http`: a few hundred lines, no HTTP stack
//! whose own work would blur what the master costs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest header block or chunk-size line accepted from the master.
const MAX_HEAD: usize = 64 * 1024;
/// Largest record accepted; an OFFERS event for a thousand agents is about 1 MiB.
const MAX_RECORD: usize = 256 << 20;

/// The parts of a response head the client needs.
#[derive(Debug, Default, PartialEq)]
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    /// `Connection: close`, or HTTP/1.0: the connection cannot carry another request.
    close: bool,
    stream_id: Option<String>,
}

fn request(addr: SocketAddr, path: &str, stream_id: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(id) = stream_id {
        out.push_str("Mesos-Stream-Id: ");
        out.push_str(id);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one line (without its CRLF) of at most [`MAX_HEAD`] bytes; `None` at the end of
/// the connection before any byte.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> anyhow::Result<Option<String>> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_HEAD as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if n >= MAX_HEAD {
            bail!("a line of the response exceeds {MAX_HEAD} bytes");
        }
        bail!("connection closed in the middle of a line");
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .context("the response is not UTF-8 where text was expected")
}

/// Reads a response head; `None` when the connection ended before its first byte (a
/// kept-alive connection the server had closed).
async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> anyhow::Result<Option<Head>> {
    let Some(status_line) = read_line(r).await? else {
        return Ok(None);
    };
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: {status_line:?}");
    }
    let mut head = Head {
        status: parts
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line: {status_line:?}"))?,
        close: version == "HTTP/1.0",
        ..Head::default()
    };
    let mut size = status_line.len();
    loop {
        let line = read_line(r)
            .await?
            .context("connection closed in the response headers")?;
        if line.is_empty() {
            return Ok(Some(head));
        }
        size += line.len();
        if size > MAX_HEAD {
            bail!("response headers exceed {MAX_HEAD} bytes");
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("bad header line: {line:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                head.content_length = Some(
                    value
                        .parse()
                        .with_context(|| format!("bad Content-Length: {value:?}"))?,
                );
            }
            "transfer-encoding" => {
                head.chunked = value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
            }
            "connection" => head.close = value.eq_ignore_ascii_case("close"),
            "mesos-stream-id" => head.stream_id = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// Reads the body a head announces, when it is delimited (`Content-Length` or chunked).
async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, head: &Head) -> anyhow::Result<Vec<u8>> {
    if head.chunked {
        let mut body = Vec::new();
        while read_chunk(r, &mut body).await? {}
        return Ok(body);
    }
    let len = head.content_length.unwrap_or(0);
    if len > MAX_RECORD {
        bail!("response body of {len} bytes is too large");
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .context("connection closed in the response body")?;
    Ok(body)
}

/// Appends the next chunk to `out`; false after the last (empty) chunk.
async fn read_chunk<R: AsyncBufRead + Unpin>(r: &mut R, out: &mut Vec<u8>) -> anyhow::Result<bool> {
    let line = read_line(r)
        .await?
        .context("the stream broke: connection closed without its last chunk")?;
    let size_text = line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(size_text, 16)
        .with_context(|| format!("bad chunk size {size_text:?}"))?;
    if size == 0 {
        // Trailers, if any, up to the empty line.
        while read_line(r).await?.is_some_and(|l| !l.is_empty()) {}
        return Ok(false);
    }
    if out.len() + size > MAX_RECORD {
        bail!("a chunk of {size} bytes makes the pending data too large");
    }
    let start = out.len();
    out.resize(start + size + 2, 0);
    r.read_exact(&mut out[start..])
        .await
        .context("the stream broke: connection closed in the middle of a chunk")?;
    if &out[start + size..] != b"\r\n" {
        bail!("a chunk does not end with CRLF");
    }
    out.truncate(start + size);
    Ok(true)
}

/// Splits one RecordIO record (`<decimal length>\n<bytes>`) off the front of `data`, if
/// it is all there.
fn take_record(data: &mut Vec<u8>) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        if data.len() > 20 {
            bail!("a RecordIO length runs over 20 bytes without a newline");
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&data[..newline])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| {
            format!(
                "bad RecordIO length {:?}",
                String::from_utf8_lossy(&data[..newline])
            )
        })?;
    if len > MAX_RECORD {
        bail!("a RecordIO record of {len} bytes is too large");
    }
    let end = newline + 1 + len;
    if data.len() < end {
        return Ok(None);
    }
    let record = data[newline + 1..end].to_vec();
    data.drain(..end);
    Ok(Some(record))
}

/// An open SUBSCRIBE stream.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    pub stream_id: String,
    /// De-chunked bytes not yet returned as records.
    pending: Vec<u8>,
    ended: bool,
}

impl EventStream {
    /// POSTs a SUBSCRIBE and reads the response head. Anything but a `200` with a
    /// chunked body and a `Mesos-Stream-Id` is an error that quotes the answer.
    pub async fn open(addr: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<EventStream> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut reader = BufReader::new(stream);
        reader
            .get_mut()
            .write_all(&request(addr, path, None, body))
            .await
            .with_context(|| format!("cannot send SUBSCRIBE to {addr}{path}"))?;
        let head = read_head(&mut reader)
            .await?
            .context("connection closed before the SUBSCRIBE response")?;
        if head.status != 200 {
            let body = read_body(&mut reader, &head).await.unwrap_or_default();
            bail!(
                "SUBSCRIBE on {path} answered {}: {}",
                head.status,
                String::from_utf8_lossy(&body).trim()
            );
        }
        if !head.chunked {
            bail!("the SUBSCRIBE response on {path} is not chunked");
        }
        let stream_id = head
            .stream_id
            .context("the SUBSCRIBE response has no Mesos-Stream-Id header")?;
        Ok(EventStream {
            reader,
            stream_id,
            pending: Vec::new(),
            ended: false,
        })
    }

    /// The next record; `None` once the master ended the stream cleanly. A connection
    /// that breaks without the last chunk is an error.
    pub async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(record) = take_record(&mut self.pending)? {
                return Ok(Some(record));
            }
            if self.ended {
                if !self.pending.is_empty() {
                    bail!("the stream ended in the middle of a record");
                }
                return Ok(None);
            }
            self.ended = !read_chunk(&mut self.reader, &mut self.pending).await?;
        }
    }
}

/// What a call got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// The calls of one stream (`Mesos-Stream-Id`) over one kept-alive connection, opened
/// on first use and again after the server closed it.
pub struct Caller {
    addr: SocketAddr,
    path: &'static str,
    stream_id: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

/// Why an exchange failed: `Stale` when a reused connection turned out to be closed
/// before the server read the request, which is safe to send again.
enum Failed {
    Stale,
    Other(anyhow::Error),
}

impl Caller {
    pub fn new(
        addr: SocketAddr,
        path: &'static str,
        stream_id: String,
        timeout: Duration,
    ) -> Caller {
        Caller {
            addr,
            path,
            stream_id,
            timeout,
            conn: None,
        }
    }

    /// POSTs `body` and reads the whole answer, within the caller's timeout.
    pub async fn post(&mut self, body: &[u8]) -> anyhow::Result<Reply> {
        let request = request(self.addr, self.path, Some(&self.stream_id), body);
        match tokio::time::timeout(self.timeout, self.post_request(&request)).await {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                bail!(
                    "no answer from {}{} within {} s",
                    self.addr,
                    self.path,
                    self.timeout.as_secs()
                )
            }
        }
    }

    async fn post_request(&mut self, request: &[u8]) -> anyhow::Result<Reply> {
        for _ in 0..2 {
            let reused = self.conn.is_some();
            let conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let s = TcpStream::connect(self.addr)
                        .await
                        .with_context(|| format!("cannot connect to {}", self.addr))?;
                    s.set_nodelay(true)?;
                    BufReader::new(s)
                }
            };
            match exchange(conn, request, reused).await {
                Ok((reply, conn)) => {
                    self.conn = conn;
                    return Ok(reply);
                }
                Err(Failed::Stale) => continue,
                Err(Failed::Other(e)) => return Err(e),
            }
        }
        // Only a reused connection is stale, and the second attempt is on a new one.
        bail!(
            "{}{} closed the connection without answering, twice",
            self.addr,
            self.path
        )
    }
}

/// One request and its response; gives the connection back when it can carry another.
async fn exchange(
    mut conn: BufReader<TcpStream>,
    request: &[u8],
    reused: bool,
) -> Result<(Reply, Option<BufReader<TcpStream>>), Failed> {
    let stale_or = |e: anyhow::Error| {
        if reused {
            Failed::Stale
        } else {
            Failed::Other(e)
        }
    };
    if let Err(e) = conn.get_mut().write_all(request).await {
        return Err(stale_or(
            anyhow::Error::new(e).context("cannot send the request"),
        ));
    }
    let head = match read_head(&mut conn).await {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Err(stale_or(anyhow::anyhow!(
                "connection closed before the answer"
            )))
        }
        Err(e) => return Err(Failed::Other(e.context("bad answer"))),
    };
    let delimited = head.chunked || head.content_length.is_some();
    let body = if delimited {
        read_body(&mut conn, &head).await.map_err(Failed::Other)?
    } else {
        // Neither a length nor chunks: the body runs to the end of the connection.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)
            .await
            .map_err(|e| Failed::Other(e.into()))?;
        rest
    };
    let keep = (delimited && !head.close).then_some(conn);
    Ok((
        Reply {
            status: head.status,
            body,
        },
        keep,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn records_split_across_and_within_chunks() {
        // Two records, the first cut across two chunks, the second sharing one.
        let raw = b"4\r\n7\n{\"\r\n9\r\na\":1}2\n{}\r\n0\r\n\r\n";
        let mut reader = &raw[..];
        let mut data = Vec::new();
        let mut records = Vec::new();
        block_on(async {
            while read_chunk(&mut reader, &mut data).await.expect("chunk") {
                while let Some(r) = take_record(&mut data).expect("record") {
                    records.push(String::from_utf8(r).expect("utf8"));
                }
            }
        });
        assert_eq!(records, vec![r#"{"a":1}"#, "{}"]);
        assert!(data.is_empty());
    }

    #[test]
    fn a_broken_stream_is_an_error_not_an_end() {
        let raw = b"4\r\n2\n{}\r\n";
        let mut reader = &raw[..];
        let mut data = Vec::new();
        block_on(async {
            assert!(read_chunk(&mut reader, &mut data).await.expect("first"));
            let e = read_chunk(&mut reader, &mut data)
                .await
                .expect_err("no last chunk");
            assert!(format!("{e:#}").contains("the stream broke"), "{e:#}");
        });
    }

    /// Reads one request head and its body (by Content-Length) from `conn`.
    async fn read_request(conn: &mut BufReader<TcpStream>) -> String {
        let mut head = String::new();
        let mut len = 0;
        loop {
            let line = read_line(conn).await.expect("read").expect("a request");
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
            head.push_str(&line);
            head.push('\n');
        }
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await.expect("body");
        head
    }

    #[test]
    fn a_connection_the_server_closed_is_replaced() {
        block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                let mut heads = Vec::new();
                // First connection: two requests kept alive, then closed without notice.
                let (s, _) = listener.accept().await.expect("accept");
                let mut conn = BufReader::new(s);
                for _ in 0..2 {
                    heads.push(read_request(&mut conn).await);
                    conn.get_mut()
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .expect("answer");
                }
                drop(conn);
                // The next request comes on a new connection.
                let (s, _) = listener.accept().await.expect("accept");
                let mut conn = BufReader::new(s);
                heads.push(read_request(&mut conn).await);
                conn.get_mut()
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 4\r\n\r\nnope")
                    .await
                    .expect("answer");
                heads
            });
            let mut caller = Caller::new(addr, "/p", "s-1".into(), Duration::from_secs(10));
            for _ in 0..2 {
                assert_eq!(caller.post(b"{}").await.expect("kept alive").status, 202);
            }
            // Let the server's close arrive, so the next write goes to a closed peer.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let reply = caller.post(b"{}").await.expect("on a new connection");
            assert_eq!((reply.status, reply.text().as_str()), (400, "nope"));
            let heads = server.await.expect("server");
            assert_eq!(heads.len(), 3);
            assert!(
                heads.iter().all(|h| h.contains("Mesos-Stream-Id: s-1")),
                "{heads:?}"
            );
        });
    }

    #[test]
    fn bad_record_lengths_are_refused() {
        let mut data = b"x\n{}".to_vec();
        assert!(take_record(&mut data).is_err());
        let mut data = b"123456789012345678901234".to_vec();
        assert!(take_record(&mut data).is_err());
        let mut data = b"10\n{}".to_vec();
        assert_eq!(take_record(&mut data).expect("incomplete"), None);
    }

    #[test]
    fn response_heads() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmesos-stream-id: s-1\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        let head = block_on(read_head(&mut &raw[..]))
            .expect("parse")
            .expect("head");
        assert_eq!(
            head,
            Head {
                status: 200,
                content_length: None,
                chunked: true,
                close: false,
                stream_id: Some("s-1".into()),
            }
        );
        let raw = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 4\r\n\r\nnope";
        let mut reader = &raw[..];
        let head = block_on(read_head(&mut reader))
            .expect("parse")
            .expect("head");
        assert_eq!(
            (head.status, head.close, head.content_length),
            (400, true, Some(4))
        );
        assert_eq!(
            block_on(read_body(&mut reader, &head)).expect("body"),
            b"nope"
        );
        assert!(block_on(read_head(&mut &b""[..])).expect("eof").is_none());
        assert!(block_on(read_head(&mut &b"SSH-2.0\r\n\r\n"[..])).is_err());
    }
}
