//! Policy for changing a running container's limits.

use crate::limits::LimitError;
use crate::units::format_bytes;

/// What to do with `memory.max` on an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryMaxDecision {
    /// Write this value; None = "max".
    Write(Option<u64>),
    /// Leave `memory.max` as it is, for the reason given (for the log and the caller).
    Keep {
        /// Why the limit stays.
        reason: String,
    },
}

/// Decides whether an update may change `memory.max`.
///
/// `current_max` is what `memory.max` holds now and `new_max` what the update asks (None =
/// "max"); `usage` is `memory.current`; `lower_explicitly` says the caller asked for a
/// lower limit. Raising (including to unlimited) is always safe and is written. Lowering
/// is not: the kernel reclaims down to the new limit and OOM-kills the container when it
/// cannot, so a limit is lowered only when asked, and never below what the container
/// uses now (that would be an OOM kill on request).
pub fn decide_memory_max(
    current_max: Option<u64>,
    new_max: Option<u64>,
    usage: u64,
    lower_explicitly: bool,
) -> Result<MemoryMaxDecision, LimitError> {
    if new_max == current_max {
        return Ok(MemoryMaxDecision::Keep {
            reason: format!("the memory limit is already {}", show(current_max)),
        });
    }
    let Some(new) = new_max else {
        return Ok(MemoryMaxDecision::Write(None));
    };
    // Any finite limit is lower than "max".
    let lowering = current_max.is_none_or(|current| new < current);
    if !lowering {
        return Ok(MemoryMaxDecision::Write(Some(new)));
    }
    if !lower_explicitly {
        return Ok(MemoryMaxDecision::Keep {
            reason: format!(
                "the memory limit stays at {} rather than {}: limits are only lowered when \
                 asked explicitly",
                show(current_max),
                format_bytes(new)
            ),
        });
    }
    if new < usage {
        return Err(LimitError::Invalid(format!(
            "cannot lower the memory limit to {}: the container uses {} now; free memory in \
             the container first or ask for a limit of at least {}",
            format_bytes(new),
            format_bytes(usage),
            format_bytes(usage)
        )));
    }
    Ok(MemoryMaxDecision::Write(Some(new)))
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), format_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    fn keep_reason(d: Result<MemoryMaxDecision, LimitError>) -> String {
        match d {
            Ok(MemoryMaxDecision::Keep { reason }) => reason,
            other => panic!("expected Keep, got {other:?}"),
        }
    }

    #[test]
    fn raising_is_written() {
        assert_eq!(
            decide_memory_max(Some(64 * MIB), Some(128 * MIB), 60 * MIB, false),
            Ok(MemoryMaxDecision::Write(Some(128 * MIB)))
        );
        assert_eq!(
            decide_memory_max(Some(64 * MIB), Some(128 * MIB), 60 * MIB, true),
            Ok(MemoryMaxDecision::Write(Some(128 * MIB)))
        );
    }

    #[test]
    fn setting_unlimited_is_written() {
        assert_eq!(
            decide_memory_max(Some(64 * MIB), None, 60 * MIB, false),
            Ok(MemoryMaxDecision::Write(None))
        );
    }

    #[test]
    fn equal_is_kept() {
        assert_eq!(
            keep_reason(decide_memory_max(Some(64 * MIB), Some(64 * MIB), 0, true)),
            "the memory limit is already 64 MiB"
        );
        assert_eq!(
            keep_reason(decide_memory_max(None, None, 0, false)),
            "the memory limit is already unlimited"
        );
    }

    #[test]
    fn lowering_without_asking_is_kept() {
        assert_eq!(
            keep_reason(decide_memory_max(
                Some(128 * MIB),
                Some(64 * MIB),
                10 * MIB,
                false
            )),
            "the memory limit stays at 128 MiB rather than 64 MiB: limits are only lowered \
             when asked explicitly"
        );
        // From unlimited to a limit is lowering too.
        assert_eq!(
            keep_reason(decide_memory_max(None, Some(64 * MIB), 10 * MIB, false)),
            "the memory limit stays at unlimited rather than 64 MiB: limits are only lowered \
             when asked explicitly"
        );
    }

    #[test]
    fn lowering_when_asked() {
        assert_eq!(
            decide_memory_max(Some(128 * MIB), Some(64 * MIB), 10 * MIB, true),
            Ok(MemoryMaxDecision::Write(Some(64 * MIB)))
        );
        assert_eq!(
            decide_memory_max(None, Some(64 * MIB), 10 * MIB, true),
            Ok(MemoryMaxDecision::Write(Some(64 * MIB)))
        );
        // Exactly the usage is allowed.
        assert_eq!(
            decide_memory_max(Some(128 * MIB), Some(64 * MIB), 64 * MIB, true),
            Ok(MemoryMaxDecision::Write(Some(64 * MIB)))
        );
    }

    #[test]
    fn lowering_below_usage_is_refused() {
        assert_eq!(
            decide_memory_max(Some(128 * MIB), Some(64 * MIB), 80 * MIB, true)
                .expect_err("below usage")
                .to_string(),
            "cannot lower the memory limit to 64 MiB: the container uses 80 MiB now; free \
             memory in the container first or ask for a limit of at least 80 MiB"
        );
    }
}
