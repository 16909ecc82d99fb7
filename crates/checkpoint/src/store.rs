//! Where records live on disk, and loading them back at recovery.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use holdfast_api::v1::{validate_id_component, ContainerId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fs::{
    create_dir_durable, create_dir_with_file, read_optional, remove_dir_atomic, write_atomic,
    write_atomic_volatile, REMOVING_PREFIX, STAGING_PREFIX,
};
use crate::records::{ContainerRecord, ExitRecord, SupervisorRecord, TerminationRecord, VERSION};

const CONTAINERS: &str = "containers";
const CONTAINER_FILE: &str = "container.json";
const SUPERVISOR_FILE: &str = "supervisor.json";
const TERMINATION_FILE: &str = "termination.json";
const EXIT_FILE: &str = "exit.json";
const SPEC_FILE: &str = "spec.json";
const BOOT_ID_FILE: &str = "boot_id";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file exists but its content cannot be trusted.
    #[error("corrupt checkpoint {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Directory of a container below `base`: `<base>/containers/<a>/containers/<b>/...`.
fn container_dir(base: &Path, id: &ContainerId) -> PathBuf {
    let mut dir = base.to_path_buf();
    for part in id.path() {
        dir.push(CONTAINERS);
        dir.push(part);
    }
    dir
}

fn encode<T: Serialize>(path: &Path, record: &T) -> Result<Vec<u8>, CheckpointError> {
    serde_json::to_vec(record).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot encode record: {e}"),
    })
}

fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<(), CheckpointError> {
    let data = encode(path, record)?;
    if let Some(dir) = path.parent() {
        create_dir_durable(dir).map_err(io_err("create directory", dir))?;
    }
    write_atomic(path, &data).map_err(io_err("write", path))
}

/// Reads a versioned record; `Ok(None)` when missing or empty.
fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, CheckpointError> {
    let Some(data) = read_optional(path).map_err(io_err("read", path))? else {
        return Ok(None);
    };
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(&data).map_err(|e| {
        if e.is_eof() {
            corrupt(format!("truncated ({} bytes): {e}", data.len()))
        } else {
            corrupt(format!("not valid JSON: {e}"))
        }
    })?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(corrupt(format!(
                "record version {v} is not supported (this agent reads version {VERSION})"
            )))
        }
        None => return Err(corrupt("record has no 'version'".into())),
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| corrupt(format!("unexpected content: {e}")))
}

/// A container found in the checkpoints, with whatever else was recorded for it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedContainer {
    pub record: ContainerRecord,
    pub supervisor: Option<SupervisorRecord>,
    pub termination: Option<TerminationRecord>,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub containers: Vec<LoadedContainer>,
    /// Checkpoint directories that could not be used: skipped (non-strict) with the reason.
    pub skipped: Vec<CheckpointError>,
    /// Directories without a `container.json`: the agent stopped before the launch was
    /// recorded, so nothing of them can be trusted.
    pub incomplete: Vec<ContainerId>,
    /// Hidden directories a crash left half built or half removed: nothing to load, only
    /// to delete.
    pub stale: Vec<PathBuf>,
    /// Copies of supervisor records that could not be read; recovery uses the runtime
    /// record instead.
    pub unreadable_copies: Vec<CheckpointError>,
}

/// The agent's durable checkpoints under `<work_dir>/meta`.
#[derive(Debug, Clone)]
pub struct MetaStore {
    root: PathBuf,
}

impl MetaStore {
    pub fn new(work_dir: &Path) -> Self {
        MetaStore {
            root: work_dir.join("meta"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        container_dir(&self.root, id)
    }

    /// Records a new container: its directory appears with its `container.json` complete,
    /// or not at all. Fails if the container has a checkpoint already.
    pub fn create_container(&self, record: &ContainerRecord) -> Result<(), CheckpointError> {
        let dir = self.container_dir(&record.container_id);
        let data = encode(&dir.join(CONTAINER_FILE), record)?;
        create_dir_with_file(&dir, CONTAINER_FILE, &data).map_err(io_err("create", &dir))
    }

    /// Rewrites the record of a container that has a checkpoint (UPDATE_CONTAINER).
    pub fn save_container(&self, record: &ContainerRecord) -> Result<(), CheckpointError> {
        let dir = self.container_dir(&record.container_id);
        write_record(&dir.join(CONTAINER_FILE), record)
    }

    /// Copies the supervisor's record from the runtime dir. The copy is not synced: the
    /// runtime record is the one the supervisor made durable, and a crash of the host that
    /// could lose the copy also ends the supervisor, so the copy only matters while the
    /// host stays up (say, the runtime dir was wiped between two runs of the agent).
    pub fn save_supervisor(
        &self,
        id: &ContainerId,
        record: &SupervisorRecord,
    ) -> Result<(), CheckpointError> {
        let path = self.container_dir(id).join(SUPERVISOR_FILE);
        let data = encode(&path, record)?;
        write_atomic_volatile(&path, &data).map_err(io_err("write", &path))
    }

    pub fn save_termination(
        &self,
        id: &ContainerId,
        record: &TerminationRecord,
    ) -> Result<(), CheckpointError> {
        write_record(&self.container_dir(id).join(TERMINATION_FILE), record)
    }

    /// Forgets a container and its nested containers.
    pub fn remove_container(&self, id: &ContainerId) -> Result<(), CheckpointError> {
        let dir = self.container_dir(id);
        remove_dir_atomic(&dir).map_err(io_err("remove", &dir))
    }

    pub fn boot_id(&self) -> Result<Option<String>, CheckpointError> {
        let path = self.root.join(BOOT_ID_FILE);
        let data = read_optional(&path).map_err(io_err("read", &path))?;
        Ok(data.map(|d| String::from_utf8_lossy(&d).trim().to_string()))
    }

    pub fn save_boot_id(&self, boot_id: &str) -> Result<(), CheckpointError> {
        create_dir_durable(&self.root).map_err(io_err("create directory", &self.root))?;
        let path = self.root.join(BOOT_ID_FILE);
        write_atomic(&path, boot_id.as_bytes()).map_err(io_err("write", &path))
    }

    /// Loads every checkpointed container, parents before their children.
    ///
    /// With `strict`, the first corrupt file is an error naming it; otherwise the corrupt
    /// container (and what is nested in it) is skipped and reported in `skipped`.
    pub fn load(&self, strict: bool) -> Result<LoadReport, CheckpointError> {
        let mut report = LoadReport::default();
        self.load_dir(&self.root, &[], strict, &mut report)?;
        Ok(report)
    }

    fn load_dir(
        &self,
        base: &Path,
        parents: &[String],
        strict: bool,
        report: &mut LoadReport,
    ) -> Result<(), CheckpointError> {
        let dir = base.join(CONTAINERS);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Hidden entries are temp files and directories being built or removed.
            if name.starts_with(STAGING_PREFIX) || name.starts_with(REMOVING_PREFIX) {
                report.stale.push(dir.join(&name));
            }
            if name.starts_with('.') {
                continue;
            }
            names.push(name);
        }
        names.sort();
        for name in names {
            let cdir = dir.join(&name);
            let mut path: Vec<String> = parents.to_vec();
            path.push(name.clone());
            if let Err(reason) = validate_id_component(&name) {
                let err = CheckpointError::Corrupt {
                    path: cdir.clone(),
                    reason: format!("directory name is not a container id: {reason}"),
                };
                if strict {
                    return Err(err);
                }
                report.skipped.push(err);
                continue;
            }
            let id = ContainerId::from_path(&path).expect("path has at least one component");
            match self.load_one(&cdir, &id, report) {
                Ok(Some(loaded)) => report.containers.push(loaded),
                Ok(None) => {
                    report.incomplete.push(id);
                    continue;
                }
                Err(err) if !strict => {
                    report.skipped.push(err);
                    continue;
                }
                Err(err) => return Err(err),
            }
            self.load_dir(&cdir, &path, strict, report)?;
        }
        Ok(())
    }

    fn load_one(
        &self,
        dir: &Path,
        id: &ContainerId,
        report: &mut LoadReport,
    ) -> Result<Option<LoadedContainer>, CheckpointError> {
        let Some(record) = read_record::<ContainerRecord>(&dir.join(CONTAINER_FILE))? else {
            return Ok(None);
        };
        if &record.container_id != id {
            return Err(CheckpointError::Corrupt {
                path: dir.join(CONTAINER_FILE),
                reason: format!(
                    "records container '{}' but is stored as '{id}'",
                    record.container_id
                ),
            });
        }
        // Only a copy (see `save_supervisor`): unreadable, it is as good as missing.
        let supervisor = read_record(&dir.join(SUPERVISOR_FILE)).unwrap_or_else(|e| {
            report.unreadable_copies.push(e);
            None
        });
        Ok(Some(LoadedContainer {
            record,
            supervisor,
            termination: read_record(&dir.join(TERMINATION_FILE))?,
        }))
    }
}

/// The volatile per-container files under `<runtime_dir>`, shared with the supervisor.
#[derive(Debug, Clone)]
pub struct RuntimeStore {
    root: PathBuf,
}

impl RuntimeStore {
    pub fn new(runtime_dir: &Path) -> Self {
        RuntimeStore {
            root: runtime_dir.to_path_buf(),
        }
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        container_dir(&self.root, id)
    }

    pub fn spec_path(dir: &Path) -> PathBuf {
        dir.join(SPEC_FILE)
    }

    pub fn create_container_dir(&self, id: &ContainerId) -> Result<PathBuf, CheckpointError> {
        let dir = self.container_dir(id);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        Ok(dir)
    }

    pub fn save_supervisor(dir: &Path, record: &SupervisorRecord) -> Result<(), CheckpointError> {
        write_record(&dir.join(SUPERVISOR_FILE), record)
    }

    pub fn supervisor(
        &self,
        id: &ContainerId,
    ) -> Result<Option<SupervisorRecord>, CheckpointError> {
        read_record(&self.container_dir(id).join(SUPERVISOR_FILE))
    }

    pub fn save_exit(dir: &Path, record: &ExitRecord) -> Result<(), CheckpointError> {
        write_record(&dir.join(EXIT_FILE), record)
    }

    pub fn exit(&self, id: &ContainerId) -> Result<Option<ExitRecord>, CheckpointError> {
        read_record(&self.container_dir(id).join(EXIT_FILE))
    }

    pub fn remove_container(&self, id: &ContainerId) -> Result<(), CheckpointError> {
        let dir = self.container_dir(id);
        remove_dir_atomic(&dir).map_err(io_err("remove", &dir))
    }

    /// Top-level container directories present, for cleaning up entries the agent forgot.
    pub fn top_level_ids(&self) -> Result<Vec<String>, CheckpointError> {
        let dir = self.root.join(CONTAINERS);
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("list", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::now_secs;

    fn record(id: ContainerId) -> ContainerRecord {
        ContainerRecord {
            version: VERSION,
            container_id: id,
            command: None,
            resources: Vec::new(),
            container: None,
            limits: Default::default(),
            sandbox: PathBuf::from("/tmp/sandbox"),
            launched_at: now_secs(),
            cgroup: None,
            unit: None,
        }
    }

    #[test]
    fn roundtrip_with_nested_containers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        let top = ContainerId::new("top");
        let child = top.child("child");
        store
            .create_container(&record(top.clone()))
            .expect("create top");
        store
            .create_container(&record(child.clone()))
            .expect("create child");
        // Recording a container twice is a mistake, not a silent overwrite.
        assert!(store.create_container(&record(top.clone())).is_err());
        let sup = SupervisorRecord {
            version: VERSION,
            pid: 10,
            start_time: 20,
            workload_pid: 11,
            workload_start_time: 21,
        };
        store.save_supervisor(&top, &sup).expect("save sup");
        let term = TerminationRecord {
            version: VERSION,
            wait_status: Some(1792),
            finished_at: 1.0,
            message: None,
            reason: None,
            limitation: Vec::new(),
        };
        store.save_termination(&child, &term).expect("save term");

        let report = store.load(true).expect("load");
        assert!(report.skipped.is_empty() && report.incomplete.is_empty());
        let ids: Vec<_> = report
            .containers
            .iter()
            .map(|c| c.record.container_id.clone())
            .collect();
        assert_eq!(ids, vec![top.clone(), child.clone()], "parents come first");
        assert_eq!(report.containers[0].supervisor, Some(sup));
        assert_eq!(report.containers[1].termination, Some(term));

        store.remove_container(&top).expect("remove");
        assert!(store.load(true).expect("load").containers.is_empty());
    }

    #[test]
    fn truncated_checkpoint_fails_strict_and_is_skipped_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        store
            .create_container(&record(ContainerId::new("good")))
            .expect("good");
        store
            .create_container(&record(ContainerId::new("bad")))
            .expect("bad");
        let bad = store
            .container_dir(&ContainerId::new("bad"))
            .join(CONTAINER_FILE);
        let data = fs::read(&bad).expect("read");
        fs::write(&bad, &data[..data.len() / 2]).expect("truncate");

        let err = store.load(true).expect_err("strict must fail");
        let msg = err.to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");

        let report = store.load(false).expect("lenient");
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.containers.len(), 1);
        assert_eq!(
            report.containers[0].record.container_id,
            ContainerId::new("good")
        );
    }

    #[test]
    fn unknown_version_and_foreign_names_are_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        let p = store
            .container_dir(&ContainerId::new("v9"))
            .join(CONTAINER_FILE);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, br#"{"version":9}"#).expect("write");
        assert!(store
            .load(true)
            .expect_err("v9")
            .to_string()
            .contains("version 9"));
        fs::remove_file(&p).expect("rm");
        // An empty dir is an unrecorded launch, not corruption.
        let report = store.load(true).expect("empty dir");
        assert_eq!(report.incomplete, vec![ContainerId::new("v9")]);
        fs::create_dir_all(store.root().join("containers/bad name")).expect("mkdir");
        assert!(store.load(true).is_err());
    }

    #[test]
    fn leftovers_of_a_crash_are_reported_stale_and_a_new_launch_replaces_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        let id = ContainerId::new("c1");
        // A crash while creating c1 (before the rename) and one while removing c0.
        let containers = store.root().join(CONTAINERS);
        fs::create_dir_all(containers.join(".new.c1")).expect("mkdir");
        fs::write(containers.join(".new.c1").join(CONTAINER_FILE), b"{\"vers").expect("write");
        fs::create_dir_all(containers.join(".removing.c0")).expect("mkdir");
        let report = store.load(true).expect("hidden dirs are not corruption");
        assert!(report.containers.is_empty() && report.incomplete.is_empty());
        let mut stale = report.stale.clone();
        stale.sort();
        assert_eq!(
            stale,
            vec![containers.join(".new.c1"), containers.join(".removing.c0")]
        );
        // Launching c1 again starts from a clean staging directory.
        store.create_container(&record(id.clone())).expect("create");
        let report = store.load(true).expect("load");
        assert_eq!(report.containers.len(), 1);
        assert_eq!(report.stale, vec![containers.join(".removing.c0")]);
    }

    #[test]
    fn an_unreadable_supervisor_copy_is_reported_and_treated_as_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        let id = ContainerId::new("c");
        store.create_container(&record(id.clone())).expect("create");
        let copy = store.container_dir(&id).join(SUPERVISOR_FILE);
        fs::write(&copy, b"{\"version\":1,\"pi").expect("write");
        let report = store
            .load(true)
            .expect("a bad copy does not fail strict loading");
        assert_eq!(report.containers.len(), 1);
        assert_eq!(report.containers[0].supervisor, None);
        assert_eq!(report.unreadable_copies.len(), 1);
        assert!(report.unreadable_copies[0]
            .to_string()
            .contains(&copy.display().to_string()));
    }

    #[test]
    fn boot_id_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::new(dir.path());
        assert_eq!(store.boot_id().expect("none"), None);
        store.save_boot_id("abc").expect("save");
        assert_eq!(store.boot_id().expect("some"), Some("abc".into()));
    }
}
