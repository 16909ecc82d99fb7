//! Byte units shared by the limit arithmetic and the messages that show sizes.

/// One kibibyte.
pub const KIB: u64 = 1024;
/// One mebibyte. Mesos's `mem` is counted in these ("MB" in Mesos is 2^20 bytes).
pub const MIB: u64 = 1024 * KIB;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;
/// The page size memory limits are rounded to. The kernel counts memory in pages and
/// silently rounds limits down; rounding here makes the written value the enforced one.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `bytes` down to a whole page.
pub fn round_down_to_page(bytes: u64) -> u64 {
    bytes - bytes % PAGE_SIZE
}

/// A size for people: exact IEC units when the size is a whole number of them, the exact
/// byte count otherwise (with MiB alongside when large), so two sizes that differ by a
/// few bytes never print alike.
pub fn format_bytes(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) && bytes < MIB {
        format!("{} KiB", bytes / KIB)
    } else if bytes >= MIB {
        format!("{bytes} bytes ({:.1} MiB)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// A number from a request for messages: protobuf's spelling for infinities.
pub fn format_number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_rounding() {
        assert_eq!(round_down_to_page(0), 0);
        assert_eq!(round_down_to_page(4095), 0);
        assert_eq!(round_down_to_page(4096), 4096);
        assert_eq!(round_down_to_page(10_000), 8192);
    }

    #[test]
    fn byte_formatting() {
        assert_eq!(format_bytes(0), "0 bytes");
        assert_eq!(format_bytes(100), "100 bytes");
        assert_eq!(format_bytes(4096), "4 KiB");
        assert_eq!(format_bytes(64 * MIB), "64 MiB");
        assert_eq!(format_bytes(1536 * MIB), "1536 MiB");
        assert_eq!(format_bytes(2 * GIB), "2 GiB");
        assert_eq!(format_bytes(64 * MIB + 4096), "67112960 bytes (64.0 MiB)");
    }

    #[test]
    fn number_formatting() {
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(f64::INFINITY), "Infinity");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_number(f64::NAN), "NaN");
    }
}
