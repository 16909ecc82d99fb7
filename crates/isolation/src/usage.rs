//! From what a container's cgroup reports to Mesos `ResourceStatistics`.

use std::collections::BTreeMap;

use holdfast_api::v1::ResourceStatistics;
use holdfast_cgroups::CpuStat;

use crate::limits::ContainerLimits;

/// What the containerizer read from the container's cgroup. Every field is optional
/// because a controller may be missing or a file unreadable; statistics then leave the
/// matching fields out rather than report zeros that look real.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupUsage {
    /// `cpu.stat`.
    pub cpu: Option<CpuStat>,
    /// `memory.current`.
    pub memory_current: Option<u64>,
    /// `memory.stat`.
    pub memory_stat: Option<BTreeMap<String, u64>>,
    /// `memory.swap.current`.
    pub swap_current: Option<u64>,
    /// Processes in the cgroup tree.
    pub processes: Option<u32>,
    /// Threads in the cgroup tree.
    pub threads: Option<u32>,
}

const MICROS_PER_SEC: f64 = 1e6;

/// Mesos `ResourceStatistics` from a container's usage and its limits.
///
/// cgroup2 has no rss/cache split; `anon` and `file` of `memory.stat` are what Mesos's
/// cgroup v1 rss and cache meant, so each fills both the old and the new field.
pub fn statistics(
    timestamp: f64,
    usage: &CgroupUsage,
    limits: &ContainerLimits,
) -> ResourceStatistics {
    let stat = |key: &str| usage.memory_stat.as_ref().and_then(|m| m.get(key).copied());
    let saturate = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let cpu = usage.cpu.as_ref();
    let memory = limits.memory.as_ref();
    ResourceStatistics {
        timestamp,
        processes: usage.processes,
        threads: usage.threads,
        cpus_user_time_secs: cpu.map(|c| c.user_usec as f64 / MICROS_PER_SEC),
        cpus_system_time_secs: cpu.map(|c| c.system_usec as f64 / MICROS_PER_SEC),
        cpus_limit: limits.cpu.and_then(|c| c.max.cpus()),
        cpus_soft_limit: limits.cpu.map(|c| c.request),
        cpus_nr_periods: cpu.map(|c| saturate(c.nr_periods)),
        cpus_nr_throttled: cpu.map(|c| saturate(c.nr_throttled)),
        cpus_throttled_time_secs: cpu.map(|c| c.throttled_usec as f64 / MICROS_PER_SEC),
        mem_total_bytes: usage.memory_current,
        mem_total_memsw_bytes: usage
            .memory_current
            .zip(usage.swap_current)
            .map(|(m, s)| m.saturating_add(s)),
        mem_kmem_usage_bytes: stat("kernel"),
        mem_kmem_tcp_usage_bytes: stat("sock"),
        mem_limit_bytes: memory.and_then(|m| m.max),
        mem_soft_limit_bytes: memory.map(|m| m.low).filter(|&low| low > 0),
        mem_file_bytes: stat("file"),
        mem_anon_bytes: stat("anon"),
        mem_cache_bytes: stat("file"),
        mem_rss_bytes: stat("anon"),
        mem_mapped_file_bytes: stat("file_mapped"),
        mem_swap_bytes: usage.swap_current,
        mem_unevictable_bytes: stat("unevictable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{CpuLimits, CpuMax, MemoryLimits};
    use crate::units::MIB;

    fn memory_stat() -> BTreeMap<String, u64> {
        [
            ("anon", 1_122_304),
            ("file", 4_096_000),
            ("kernel", 532_480),
            ("sock", 8192),
            ("file_mapped", 2_048_000),
            ("unevictable", 4096),
            ("pgfault", 1337),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn limits() -> ContainerLimits {
        ContainerLimits {
            cpu: Some(CpuLimits {
                request: 0.5,
                weight: 50,
                max: CpuMax::Quota {
                    quota_us: 150_000,
                    period_us: 100_000,
                },
            }),
            memory: Some(MemoryLimits {
                request_bytes: 64 * MIB,
                max: Some(128 * MIB),
                low: 64 * MIB,
                high: Some(120 * MIB),
                swap_max: None,
            }),
            ..ContainerLimits::default()
        }
    }

    #[test]
    fn full_mapping() {
        let usage = CgroupUsage {
            cpu: Some(CpuStat {
                usage_usec: 51_558_595,
                user_usec: 44_480_660,
                system_usec: 7_077_935,
                nr_periods: 120,
                nr_throttled: 7,
                throttled_usec: 35_012,
            }),
            memory_current: Some(10_000_000),
            memory_stat: Some(memory_stat()),
            swap_current: Some(4096),
            processes: Some(3),
            threads: Some(9),
        };
        let s = statistics(1_700_000_000.5, &usage, &limits());
        assert_eq!(
            s,
            ResourceStatistics {
                timestamp: 1_700_000_000.5,
                processes: Some(3),
                threads: Some(9),
                cpus_user_time_secs: Some(44.48066),
                cpus_system_time_secs: Some(7.077935),
                cpus_limit: Some(1.5),
                cpus_soft_limit: Some(0.5),
                cpus_nr_periods: Some(120),
                cpus_nr_throttled: Some(7),
                cpus_throttled_time_secs: Some(0.035012),
                mem_total_bytes: Some(10_000_000),
                mem_total_memsw_bytes: Some(10_004_096),
                mem_kmem_usage_bytes: Some(532_480),
                mem_kmem_tcp_usage_bytes: Some(8192),
                mem_limit_bytes: Some(134_217_728),
                mem_soft_limit_bytes: Some(67_108_864),
                mem_file_bytes: Some(4_096_000),
                mem_anon_bytes: Some(1_122_304),
                mem_cache_bytes: Some(4_096_000),
                mem_rss_bytes: Some(1_122_304),
                mem_mapped_file_bytes: Some(2_048_000),
                mem_swap_bytes: Some(4096),
                mem_unevictable_bytes: Some(4096),
            }
        );
    }

    #[test]
    fn nothing_known() {
        let s = statistics(5.0, &CgroupUsage::default(), &ContainerLimits::default());
        assert_eq!(
            s,
            ResourceStatistics {
                timestamp: 5.0,
                ..ResourceStatistics::default()
            }
        );
    }

    #[test]
    fn limits_shapes() {
        let mut l = limits();
        l.cpu = Some(CpuLimits {
            request: 2.0,
            weight: 200,
            max: CpuMax::Unlimited,
        });
        l.memory = Some(MemoryLimits {
            request_bytes: 0,
            max: None,
            low: 0,
            high: None,
            swap_max: None,
        });
        let s = statistics(0.0, &CgroupUsage::default(), &l);
        // Unlimited cpu: a soft limit but no cpus_limit.
        assert_eq!(s.cpus_soft_limit, Some(2.0));
        assert_eq!(s.cpus_limit, None);
        // Unlimited memory and no request: neither limit is reported.
        assert_eq!(s.mem_limit_bytes, None);
        assert_eq!(s.mem_soft_limit_bytes, None);
    }

    #[test]
    fn counters_saturate_and_memsw_needs_both() {
        let usage = CgroupUsage {
            cpu: Some(CpuStat {
                nr_periods: u64::from(u32::MAX) + 10,
                nr_throttled: 5,
                ..CpuStat::default()
            }),
            memory_current: Some(1000),
            swap_current: None,
            ..CgroupUsage::default()
        };
        let s = statistics(0.0, &usage, &ContainerLimits::default());
        assert_eq!(s.cpus_nr_periods, Some(u32::MAX));
        assert_eq!(s.cpus_nr_throttled, Some(5));
        assert_eq!(s.cpus_user_time_secs, Some(0.0));
        assert_eq!(s.mem_total_bytes, Some(1000));
        assert_eq!(s.mem_total_memsw_bytes, None);
        assert_eq!(s.mem_swap_bytes, None);
        // memory.stat missing: its fields stay out.
        assert_eq!(s.mem_anon_bytes, None);
        assert_eq!(s.mem_file_bytes, None);
        // memory.stat without a key leaves that field out only.
        let usage = CgroupUsage {
            memory_stat: Some([("anon".to_owned(), 7)].into_iter().collect()),
            ..CgroupUsage::default()
        };
        let s = statistics(0.0, &usage, &ContainerLimits::default());
        assert_eq!((s.mem_anon_bytes, s.mem_rss_bytes), (Some(7), Some(7)));
        assert_eq!(s.mem_kmem_usage_bytes, None);
    }
}
