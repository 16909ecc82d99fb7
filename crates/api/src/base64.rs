//! Standard base64 (RFC 4648, with padding): how protobuf's JSON mapping writes `bytes`
//! fields such as a status update's `uuid` or a framework message's `data`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; padding is optional (protobuf accepts both), and the URL-safe
/// alphabet (`-`, `_`) is accepted too, as protobuf's JSON parser does.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, c) in trimmed.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => {
                return Err(format!(
                    "'{}' at position {i} is not a base64 character",
                    char::from(c).escape_default()
                ))
            }
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if trimmed.len() % 4 == 1 {
        return Err("truncated base64 (its length leaves a lone character)".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_known_values() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        for s in ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYmFy"] {
            assert_eq!(encode(&decode(s).expect("decode")), s);
        }
        // A status update uuid from Mesos: 16 bytes.
        let uuid = decode("knnFONfHRvGmQM8etzVMRQ==").expect("uuid");
        assert_eq!(uuid.len(), 16);
        assert_eq!(encode(&uuid), "knnFONfHRvGmQM8etzVMRQ==");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).expect("all bytes"), all);
    }

    #[test]
    fn unpadded_and_url_safe_forms_decode() {
        assert_eq!(decode("Zm8").expect("unpadded"), b"fo");
        assert_eq!(
            decode("-_8=").expect("url safe"),
            decode("+/8=").expect("std")
        );
    }

    #[test]
    fn bad_input_says_what() {
        assert!(decode("Zm9v!").unwrap_err().contains("'!' at position 4"));
        assert!(decode("Z").unwrap_err().contains("truncated"));
    }
}
