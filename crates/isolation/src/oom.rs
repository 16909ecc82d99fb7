//! How an OOM kill is reported: Mesos's limitation message and resources.

use std::collections::BTreeMap;

use holdfast_api::v1::Resource;

use crate::units::{GIB, KIB, MIB};

/// Mesos's limitation message for an OOM kill, so tools that parse Mesos's text keep
/// working: `Memory limit exceeded: Requested: 64MB Maximum Used: 65MB`, then, when
/// `stat` is given, `\n\nMEMORY STATISTICS: \n` and one `key value` line per `memory.stat`
/// entry (as Mesos dumps the whole file).
///
/// `limit_bytes` is `memory.max` (None = unlimited, shown as "unlimited"); `peak_bytes` is
/// `memory.peak` when known ("Maximum Used" is left out otherwise). Sizes use Mesos's
/// `Bytes` notation (binary units, the largest that loses nothing).
pub fn memory_limitation_message(
    limit_bytes: Option<u64>,
    peak_bytes: Option<u64>,
    stat: Option<&BTreeMap<String, u64>>,
) -> String {
    let requested = limit_bytes.map_or_else(|| "unlimited".to_owned(), mesos_bytes);
    let mut message = format!("Memory limit exceeded: Requested: {requested}");
    if let Some(peak) = peak_bytes {
        message.push_str(&format!(" Maximum Used: {}", mesos_bytes(peak)));
    }
    if let Some(stat) = stat {
        message.push_str("\n\nMEMORY STATISTICS: \n");
        for (key, value) in stat {
            message.push_str(&format!("{key} {value}\n"));
        }
    }
    message
}

/// The `mem` resource Mesos names as the exceeded one: the limit in MB (MiB, as f64).
///
/// With no limit (an OOM of an unlimited container, from host memory pressure) the value
/// is +Infinity, the same way an unlimited `mem` limit is written, so schedulers still
/// see that memory was the resource that ran out.
pub fn memory_limitation_resources(limit_bytes: Option<u64>) -> Vec<Resource> {
    let value = limit_bytes.map_or(f64::INFINITY, |b| b as f64 / MIB as f64);
    vec![Resource::scalar("mem", value)]
}

/// Mesos's `Bytes` notation: the largest binary unit (B, KB, MB, GB, TB) that divides the
/// value exactly.
fn mesos_bytes(bytes: u64) -> String {
    let tib = 1024 * GIB;
    if bytes == 0 || !bytes.is_multiple_of(KIB) {
        format!("{bytes}B")
    } else if !bytes.is_multiple_of(MIB) {
        format!("{}KB", bytes / KIB)
    } else if !bytes.is_multiple_of(GIB) {
        format!("{}MB", bytes / MIB)
    } else if !bytes.is_multiple_of(tib) {
        format!("{}GB", bytes / GIB)
    } else {
        format!("{}TB", bytes / tib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_api::v1::Scalar;

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn message_with_peak_and_stats() {
        let stat = map(&[("anon", 66_060_288), ("file", 4096), ("kernel", 811_008)]);
        assert_eq!(
            memory_limitation_message(Some(64 * MIB), Some(65 * MIB), Some(&stat)),
            "Memory limit exceeded: Requested: 64MB Maximum Used: 65MB\n\n\
             MEMORY STATISTICS: \nanon 66060288\nfile 4096\nkernel 811008\n"
        );
    }

    #[test]
    fn message_without_peak_or_stats() {
        assert_eq!(
            memory_limitation_message(Some(64 * MIB), None, None),
            "Memory limit exceeded: Requested: 64MB"
        );
        assert_eq!(
            memory_limitation_message(None, Some(3 * GIB), None),
            "Memory limit exceeded: Requested: unlimited Maximum Used: 3GB"
        );
        assert_eq!(
            memory_limitation_message(Some(64 * MIB), None, Some(&map(&[("anon", 1)]))),
            "Memory limit exceeded: Requested: 64MB\n\nMEMORY STATISTICS: \nanon 1\n"
        );
    }

    #[test]
    fn mesos_byte_notation() {
        assert_eq!(mesos_bytes(0), "0B");
        assert_eq!(mesos_bytes(1000), "1000B");
        assert_eq!(mesos_bytes(4096), "4KB");
        assert_eq!(mesos_bytes(64 * MIB + 4096), "65540KB");
        assert_eq!(mesos_bytes(1536 * MIB), "1536MB");
        assert_eq!(mesos_bytes(2 * GIB), "2GB");
        assert_eq!(mesos_bytes(1024 * GIB), "1TB");
    }

    #[test]
    fn limitation_resources() {
        let r = memory_limitation_resources(Some(64 * MIB));
        assert_eq!(r, vec![Resource::scalar("mem", 64.0)]);
        // Not a whole MiB: the fraction is kept.
        let r = memory_limitation_resources(Some(MIB + MIB / 2));
        assert_eq!(r[0].scalar, Some(Scalar { value: 1.5 }));
        let r = memory_limitation_resources(None);
        assert_eq!(r[0].name, "mem");
        assert_eq!(
            r[0].scalar,
            Some(Scalar {
                value: f64::INFINITY
            })
        );
    }
}
