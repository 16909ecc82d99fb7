//! Pure parsers for the text formats of cgroup2 interface files.
//!
//! The formats are described in the kernel's `Documentation/admin-guide/cgroup-v2.rst`
//! ("Interface Files" / "Format"): flat keyed (`key value` per line), nested keyed
//! (`key sub=value sub=value` per line), single values, and the PSI pressure format.
//! Nothing here touches the filesystem, so every parser is testable on fixture text.

use std::collections::BTreeMap;

/// Why the text of a cgroup interface file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line does not have the shape the format requires.
    #[error("malformed line {line}: '{text}'")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A value is not a number of the expected kind.
    #[error("invalid value '{value}' for '{key}' on line {line}")]
    InvalidNumber {
        /// 1-based line number.
        line: usize,
        /// The key whose value is invalid.
        key: String,
        /// The value as found.
        value: String,
    },
    /// A key the format always contains is absent.
    #[error("missing key '{key}'")]
    MissingKey {
        /// The absent key.
        key: String,
    },
}

/// Cumulative CPU usage from `cpu.stat`.
///
/// The throttling fields are only reported once the `cpu` controller is enabled for the
/// cgroup; they are 0 otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuStat {
    /// Total CPU time consumed, in microseconds.
    pub usage_usec: u64,
    /// CPU time spent in user mode, in microseconds.
    pub user_usec: u64,
    /// CPU time spent in kernel mode, in microseconds.
    pub system_usec: u64,
    /// Number of enforcement periods that have elapsed.
    pub nr_periods: u64,
    /// Number of periods in which the cgroup was throttled.
    pub nr_throttled: u64,
    /// Total time the cgroup was throttled, in microseconds.
    pub throttled_usec: u64,
}

/// Which pressure stall information file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressureResource {
    /// `cpu.pressure`
    Cpu,
    /// `memory.pressure`
    Memory,
    /// `io.pressure`
    Io,
}

impl PressureResource {
    /// The interface file holding this resource's pressure.
    pub fn file_name(self) -> &'static str {
        match self {
            PressureResource::Cpu => "cpu.pressure",
            PressureResource::Memory => "memory.pressure",
            PressureResource::Io => "io.pressure",
        }
    }
}

/// One line (`some` or `full`) of a PSI file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Percentage of wall time stalled over the last 10 seconds.
    pub avg10: f64,
    /// Percentage of wall time stalled over the last 60 seconds.
    pub avg60: f64,
    /// Percentage of wall time stalled over the last 300 seconds.
    pub avg300: f64,
    /// Total stall time, in microseconds.
    pub total: u64,
}

/// Contents of a PSI file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Share of time in which at least one task was stalled.
    pub some: PressureLine,
    /// Share of time in which all non-idle tasks were stalled; absent from `cpu.pressure`
    /// on kernels before 5.13.
    pub full: Option<PressureLine>,
}

/// Parses a flat keyed file such as `memory.stat`, `memory.events`, `cpu.stat` or
/// `cgroup.events`: one `key value` pair per line, values unsigned integers.
///
/// Blank lines are ignored; if a key repeats, the last value wins.
pub fn parse_flat_keyed(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut map = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        let (Some(value), None) = (fields.next(), fields.next()) else {
            return Err(ParseError::Malformed {
                line: index + 1,
                text: line.to_owned(),
            });
        };
        map.insert(key.to_owned(), parse_u64(index + 1, key, value)?);
    }
    Ok(map)
}

/// Parses a nested keyed file such as `io.stat` or `memory.numa_stat`: per line a key
/// followed by `sub=value` pairs.
///
/// Values are kept as text because some files use non-numeric values (`max`, decimal
/// fractions). Blank lines are ignored; a repeated key replaces the earlier line.
pub fn parse_nested_keyed(
    text: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ParseError> {
    let mut map = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        let mut pairs = BTreeMap::new();
        for field in fields {
            let Some((sub, value)) = field.split_once('=') else {
                return Err(ParseError::Malformed {
                    line: index + 1,
                    text: line.to_owned(),
                });
            };
            if sub.is_empty() {
                return Err(ParseError::Malformed {
                    line: index + 1,
                    text: line.to_owned(),
                });
            }
            pairs.insert(sub.to_owned(), value.to_owned());
        }
        map.insert(key.to_owned(), pairs);
    }
    Ok(map)
}

/// Parses `cpu.stat`. `usage_usec`, `user_usec` and `system_usec` are required; the
/// throttling counters default to 0 because they exist only with the `cpu` controller.
pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    let map = parse_flat_keyed(text)?;
    let required = |key: &str| {
        map.get(key).copied().ok_or_else(|| ParseError::MissingKey {
            key: key.to_owned(),
        })
    };
    let optional = |key: &str| map.get(key).copied().unwrap_or(0);
    Ok(CpuStat {
        usage_usec: required("usage_usec")?,
        user_usec: required("user_usec")?,
        system_usec: required("system_usec")?,
        nr_periods: optional("nr_periods"),
        nr_throttled: optional("nr_throttled"),
        throttled_usec: optional("throttled_usec"),
    })
}

/// Parses a PSI file: a required `some` line and an optional `full` line, each with
/// `avg10=`, `avg60=`, `avg300=` and `total=`.
pub fn parse_pressure(text: &str) -> Result<Pressure, ParseError> {
    let mut some = None;
    let mut full = None;
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(kind) = fields.next() else {
            continue;
        };
        let slot = match kind {
            "some" => &mut some,
            "full" => &mut full,
            // Unknown kinds would be a future kernel extension; skipping them keeps
            // older agents working.
            _ => continue,
        };
        *slot = Some(parse_pressure_line(index + 1, line, fields)?);
    }
    let some = some.ok_or_else(|| ParseError::MissingKey {
        key: "some".to_owned(),
    })?;
    Ok(Pressure { some, full })
}

fn parse_pressure_line<'a>(
    line_number: usize,
    line: &str,
    fields: impl Iterator<Item = &'a str>,
) -> Result<PressureLine, ParseError> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            return Err(ParseError::Malformed {
                line: line_number,
                text: line.to_owned(),
            });
        };
        match key {
            "avg10" => avg10 = Some(parse_f64(line_number, key, value)?),
            "avg60" => avg60 = Some(parse_f64(line_number, key, value)?),
            "avg300" => avg300 = Some(parse_f64(line_number, key, value)?),
            "total" => total = Some(parse_u64(line_number, key, value)?),
            _ => {}
        }
    }
    let missing = |key: &str| ParseError::MissingKey {
        key: key.to_owned(),
    };
    Ok(PressureLine {
        avg10: avg10.ok_or_else(|| missing("avg10"))?,
        avg60: avg60.ok_or_else(|| missing("avg60"))?,
        avg300: avg300.ok_or_else(|| missing("avg300"))?,
        total: total.ok_or_else(|| missing("total"))?,
    })
}

/// Parses a single-value file holding one unsigned integer (`memory.current`,
/// `memory.peak`, `pids.current`).
pub fn parse_single_u64(text: &str, key: &str) -> Result<u64, ParseError> {
    parse_u64(1, key, text.trim())
}

/// Parses a whitespace-separated list of names (`cgroup.controllers`,
/// `cgroup.subtree_control`).
pub fn parse_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Parses `cgroup.procs` / `cgroup.threads` into a sorted list without duplicates.
///
/// The kernel may list a pid twice when it moved out and back or was recycled during
/// the read, and lists 0 for processes outside the reader's pid namespace; neither is
/// useful to a caller, so duplicates and zeros are dropped.
pub fn parse_pids(text: &str) -> Result<Vec<i32>, ParseError> {
    let mut pids = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let pid: i32 = line.parse().map_err(|_| ParseError::InvalidNumber {
            line: index + 1,
            key: "pid".to_owned(),
            value: line.to_owned(),
        })?;
        if pid > 0 {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn parse_u64(line: usize, key: &str, value: &str) -> Result<u64, ParseError> {
    value.parse().map_err(|_| ParseError::InvalidNumber {
        line,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn parse_f64(line: usize, key: &str, value: &str) -> Result<f64, ParseError> {
    value.parse().map_err(|_| ParseError::InvalidNumber {
        line,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a cgroup with the cpu controller enabled (kernel 6.x).
    const CPU_STAT_FULL: &str = "usage_usec 51558595
user_usec 44480660
system_usec 7077935
core_sched.force_idle_usec 0
nr_periods 120
nr_throttled 7
throttled_usec 35012
nr_bursts 0
burst_usec 0
";

    // Captured from the controller-less cgroup2 mount of a hybrid host.
    const CPU_STAT_CORE: &str = "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n";

    const MEMORY_STAT: &str = "anon 1122304
file 4096000
kernel 532480
kernel_stack 16384
pagetables 61440
sock 0
shmem 0
file_mapped 2048000
file_dirty 0
file_writeback 0
anon_thp 0
inactive_anon 1118208
active_anon 4096
inactive_file 2048000
active_file 2048000
unevictable 0
slab_reclaimable 208896
slab_unreclaimable 163840
slab 372736
pgfault 1337
pgmajfault 2
workingset_refault_anon 0
";

    const MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";

    const PSI_WITH_FULL: &str = "some avg10=0.09 avg60=0.33 avg300=0.15 total=805622
full avg10=0.09 avg60=0.31 avg300=0.13 total=756341
";

    const PSI_SOME_ONLY: &str = "some avg10=12.50 avg60=1.98 avg300=0.74 total=2946625\n";

    #[test]
    fn cpu_stat_with_throttling() {
        let stat = parse_cpu_stat(CPU_STAT_FULL).expect("parse");
        assert_eq!(
            stat,
            CpuStat {
                usage_usec: 51_558_595,
                user_usec: 44_480_660,
                system_usec: 7_077_935,
                nr_periods: 120,
                nr_throttled: 7,
                throttled_usec: 35_012,
            }
        );
    }

    #[test]
    fn cpu_stat_without_cpu_controller() {
        let stat = parse_cpu_stat(CPU_STAT_CORE).expect("parse");
        assert_eq!(stat, CpuStat::default());
    }

    #[test]
    fn cpu_stat_missing_required_key() {
        let err = parse_cpu_stat("user_usec 1\nsystem_usec 2\n").expect_err("must fail");
        assert_eq!(
            err,
            ParseError::MissingKey {
                key: "usage_usec".into()
            }
        );
    }

    #[test]
    fn flat_keyed_memory_stat() {
        let map = parse_flat_keyed(MEMORY_STAT).expect("parse");
        assert_eq!(map.len(), 22);
        assert_eq!(map["anon"], 1_122_304);
        assert_eq!(map["file_mapped"], 2_048_000);
        assert_eq!(map["pgmajfault"], 2);
    }

    #[test]
    fn flat_keyed_memory_events() {
        let map = parse_flat_keyed(MEMORY_EVENTS).expect("parse");
        assert_eq!(map["max"], 3);
        assert_eq!(map["oom_kill"], 1);
        assert_eq!(map["oom_group_kill"], 0);
    }

    #[test]
    fn flat_keyed_tolerates_blank_lines_and_no_trailing_newline() {
        let map = parse_flat_keyed("\npopulated 1\n\nfrozen 0").expect("parse");
        assert_eq!(map["populated"], 1);
        assert_eq!(map["frozen"], 0);
    }

    #[test]
    fn flat_keyed_rejects_bad_lines() {
        assert_eq!(
            parse_flat_keyed("anon 1\nfile\n").expect_err("missing value"),
            ParseError::Malformed {
                line: 2,
                text: "file".into()
            }
        );
        assert!(matches!(
            parse_flat_keyed("anon 1 2\n"),
            Err(ParseError::Malformed { line: 1, .. })
        ));
        assert_eq!(
            parse_flat_keyed("anon -1\n").expect_err("negative"),
            ParseError::InvalidNumber {
                line: 1,
                key: "anon".into(),
                value: "-1".into()
            }
        );
    }

    #[test]
    fn nested_keyed_io_stat() {
        let text = "8:0 rbytes=90112 wbytes=0 rios=22 wios=0 dbytes=0 dios=0\n\
                    253:1 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n";
        let map = parse_nested_keyed(text).expect("parse");
        assert_eq!(map.len(), 2);
        assert_eq!(map["8:0"]["rbytes"], "90112");
        assert_eq!(map["253:1"]["wios"], "2");
    }

    #[test]
    fn nested_keyed_keeps_non_numeric_values() {
        let map =
            parse_nested_keyed("8:16 rbps=max wbps=1048576 riops=max wiops=max\n").expect("parse");
        assert_eq!(map["8:16"]["rbps"], "max");
        assert_eq!(map["8:16"]["wbps"], "1048576");
    }

    #[test]
    fn nested_keyed_rejects_pairs_without_equals() {
        assert!(matches!(
            parse_nested_keyed("8:0 rbytes 12\n"),
            Err(ParseError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn pressure_with_full() {
        let pressure = parse_pressure(PSI_WITH_FULL).expect("parse");
        assert_eq!(
            pressure,
            Pressure {
                some: PressureLine {
                    avg10: 0.09,
                    avg60: 0.33,
                    avg300: 0.15,
                    total: 805_622
                },
                full: Some(PressureLine {
                    avg10: 0.09,
                    avg60: 0.31,
                    avg300: 0.13,
                    total: 756_341
                }),
            }
        );
    }

    #[test]
    fn pressure_without_full() {
        let pressure = parse_pressure(PSI_SOME_ONLY).expect("parse");
        assert_eq!(pressure.some.avg10, 12.5);
        assert_eq!(pressure.some.total, 2_946_625);
        assert_eq!(pressure.full, None);
    }

    #[test]
    fn pressure_errors() {
        assert_eq!(
            parse_pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
                .expect_err("no some line"),
            ParseError::MissingKey { key: "some".into() }
        );
        assert_eq!(
            parse_pressure("some avg10=0.00 avg60=0.00 total=0\n").expect_err("no avg300"),
            ParseError::MissingKey {
                key: "avg300".into()
            }
        );
        assert!(matches!(
            parse_pressure("some avg10=x avg60=0.00 avg300=0.00 total=0\n"),
            Err(ParseError::InvalidNumber { line: 1, .. })
        ));
    }

    #[test]
    fn single_value() {
        assert_eq!(
            parse_single_u64("1122304\n", "memory.current"),
            Ok(1_122_304)
        );
        assert!(matches!(
            parse_single_u64("max\n", "memory.peak"),
            Err(ParseError::InvalidNumber { .. })
        ));
    }

    #[test]
    fn pids_sorted_deduplicated_without_zero() {
        assert_eq!(parse_pids("42\n7\n0\n42\n\n"), Ok(vec![7, 42]));
        // Never hand kill(2) a pid that addresses a group or every process.
        assert_eq!(parse_pids("-1\n9\n"), Ok(vec![9]));
        assert_eq!(parse_pids(""), Ok(vec![]));
        assert!(parse_pids("12\nabc\n").is_err());
    }

    #[test]
    fn list() {
        assert_eq!(
            parse_list("cpu io memory pids\n"),
            ["cpu", "io", "memory", "pids"]
        );
        assert!(parse_list("\n").is_empty());
    }
}
