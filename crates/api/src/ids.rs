//! Random ids: version 4 UUIDs for containers, streams and status updates.

/// 16 random bytes from the kernel; if it cannot give them, bytes unique enough for ids.
pub fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    // getrandom, not /dev/urandom: ids are made several times per task, and an open,
    // read and close each time showed up in the agent's profile.
    // SAFETY: writes at most 16 bytes into our buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 16 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// A version 4 UUID in its usual text form.
pub fn uuid4() -> String {
    format_uuid(&random16())
}

pub fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A status update uuid as the wire carries it: base64 of 16 raw bytes.
pub fn update_uuid() -> String {
    crate::base64::encode(&random16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let a = uuid4();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_ne!(a, uuid4());
        assert_eq!(update_uuid().len(), 24, "base64 of 16 bytes");
    }
}
