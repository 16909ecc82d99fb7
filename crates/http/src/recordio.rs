//! RecordIO, the framing of Mesos's event streams: `<decimal length>\n<record>`, records
//! back to back, independent of how the transport splits them.

/// The largest record accepted: a peer that announces more is broken or hostile.
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error("RecordIO length prefix is not a decimal number: {0:?}")]
    BadLength(String),
    #[error("RecordIO record of {0} bytes is larger than the {MAX_RECORD} accepted")]
    TooLarge(usize),
}

/// Turns a byte stream into records; feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record, if the bytes fed so far hold one.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordIoError> {
        let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
            // A length prefix longer than 20 digits cannot be valid.
            if self.buf.len() > 20 {
                return Err(RecordIoError::BadLength(
                    String::from_utf8_lossy(&self.buf[..20]).into_owned(),
                ));
            }
            return Ok(None);
        };
        let text = std::str::from_utf8(&self.buf[..nl]).unwrap_or("");
        let len: usize = text.trim().parse().map_err(|_| {
            RecordIoError::BadLength(String::from_utf8_lossy(&self.buf[..nl]).into_owned())
        })?;
        if len > MAX_RECORD {
            return Err(RecordIoError::TooLarge(len));
        }
        if self.buf.len() < nl + 1 + len {
            return Ok(None);
        }
        let record = self.buf[nl + 1..nl + 1 + len].to_vec();
        self.buf.drain(..nl + 1 + len);
        Ok(Some(record))
    }
}

/// One record in RecordIO framing.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\n", record.len()).into_bytes();
    out.extend_from_slice(record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_anywhere_come_out_whole() {
        let mut wire = encode(br#"{"type":"SUBSCRIBED"}"#);
        wire.extend(encode(b""));
        wire.extend(encode(br#"{"type":"HEARTBEAT"}"#));
        // Every split point, including inside the length prefix.
        for cut in 0..wire.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                d.feed(part);
                while let Some(r) = d.next_record().expect("valid") {
                    got.push(r);
                }
            }
            assert_eq!(
                got,
                vec![
                    br#"{"type":"SUBSCRIBED"}"#.to_vec(),
                    Vec::new(),
                    br#"{"type":"HEARTBEAT"}"#.to_vec()
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn garbage_prefixes_are_errors_not_hangs() {
        let mut d = Decoder::new();
        d.feed(b"12x\n{}");
        assert_eq!(d.next_record(), Err(RecordIoError::BadLength("12x".into())));
        let mut d = Decoder::new();
        d.feed(&[b'7'; 30]);
        assert!(matches!(d.next_record(), Err(RecordIoError::BadLength(_))));
        let mut d = Decoder::new();
        d.feed(b"99999999999\n");
        assert_eq!(d.next_record(), Err(RecordIoError::TooLarge(99999999999)));
    }
}
