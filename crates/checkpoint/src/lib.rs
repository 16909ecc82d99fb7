//! Durable state: what the agent must remember about each container, and how it is written
//! so that a crash at any instant leaves either the old or the new file, never a torn one.
//!
//! Layout under `<work_dir>/meta`:
//!
//! ```text
//! meta/boot_id                                   boot id of the host when last written
//! meta/containers/<id>/container.json            ContainerRecord (written before launch)
//! meta/containers/<id>/supervisor.json           SupervisorRecord (after the workload started)
//! meta/containers/<id>/termination.json          TerminationRecord (once it ended)
//! meta/containers/<id>/containers/<child>/...    nested containers, same files
//! ```
//!
//! Under `<runtime_dir>` (volatile, gone at reboot), per container, the supervisor's own
//! files: `spec.json` (what to run), `supervisor.json` (pids) and `exit.json` (wait status).
//!
//! Every record carries `version`; readers refuse versions they do not know.

pub mod fs;
pub mod records;
pub mod store;

pub use records::{ContainerRecord, ExitRecord, SupervisorRecord, TerminationRecord};
pub use store::{CheckpointError, LoadReport, LoadedContainer, MetaStore, RuntimeStore};
