//! Thin access to Linux cgroup v2 ("cgroup2") directly through its filesystem.
//!
//! [`Hierarchy`] finds the cgroup2 mount (pure v2 at `/sys/fs/cgroup`, or beside v1
//! controllers on hybrid hosts) and creates cgroup paths with controllers delegated
//! down to them. [`Cgroup`] is a handle on one cgroup directory: membership, freezing,
//! killing, recursive removal and statistics. [`stats`] holds the pure parsers of the
//! interface file formats.
//!
//! Writes to interface files are single `write(2)` calls because the kernel treats each
//! write as one complete command. Operations on a cgroup that has disappeared report
//! [`Error::NotFound`] (see [`Error::is_not_found`]), which removal and kill treat as
//! success.

mod cgroup;
mod error;
mod mount;
pub mod stats;

pub use cgroup::Cgroup;
pub use error::Error;
pub use mount::{parse_proc_cgroup, Hierarchy, Mode, DEFAULT_MOUNT};
pub use stats::{CpuStat, ParseError, Pressure, PressureLine, PressureResource};
