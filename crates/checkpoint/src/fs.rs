//! Atomic file replacement: temp file in the same directory, fsync, rename, fsync the
//! directory. Readers see the old content or the new, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, true)
}

/// Writes `data` to `path` atomically but without waiting for the disk: after a crash of
/// the host the file may hold the old content, or be missing or empty. For copies of
/// records that exist elsewhere, where a journal commit per write would be wasted.
pub fn write_atomic_volatile(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, false)
}

fn replace(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Hidden temp name: loaders skip dot files, so a crash leaves nothing they would read.
    // Unique per write, not per process: two threads replacing the same file at once must
    // not rename each other's temporary file away.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsync of a directory, so a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents, syncing each parent that got a new entry.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates directory `dir` holding one file, `file` with `data`, durably, such that a crash
/// leaves either no `dir` or `dir` with the whole file. The directory is built under a
/// hidden name (`.new.<name>`, which loaders skip) and renamed into place: two journal
/// commits (the file, then the rename) where a directory made first and a file written
/// into it through a temporary name take three. `dir` must not exist yet.
pub fn create_dir_with_file(dir: &Path, file: &str, data: &[u8]) -> io::Result<()> {
    let (parent, name) = split(dir)?;
    create_dir_durable(parent)?;
    let staging = parent.join(format!("{STAGING_PREFIX}{}", name.to_string_lossy()));
    // A crash during an earlier attempt may have left the staging directory behind.
    match fs::remove_dir_all(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        fs::create_dir(&staging)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(staging.join(file))?;
        f.write_all(data)?;
        f.sync_all()?;
        sync_dir(&staging)?;
        fs::rename(&staging, dir)?;
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Prefix of a directory being built by `create_dir_with_file`.
pub const STAGING_PREFIX: &str = ".new.";
/// Prefix of a directory being removed by `remove_dir_atomic`.
pub const REMOVING_PREFIX: &str = ".removing.";

fn split(dir: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    let name = dir
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok((dir.parent().unwrap_or(Path::new(".")), name))
}

/// Reads a file; a missing or empty file is "not written yet" and gives `None`.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(data) if data.is_empty() => Ok(None),
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree so that a crash midway never leaves a half-deleted entry that
/// looks valid: rename it to a hidden name first, then delete.
pub fn remove_dir_atomic(dir: &Path) -> io::Result<()> {
    let (parent, name) = split(dir)?;
    let hidden = parent.join(format!("{REMOVING_PREFIX}{}", name.to_string_lossy()));
    match fs::rename(dir, &hidden) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent)?;
    fs::remove_dir_all(&hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn concurrent_replacements_of_one_file_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("shared.json");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic_volatile(p, &[t; 64]).expect("concurrent write");
                    }
                });
            }
        });
        let data = fs::read(&p).expect("read");
        assert_eq!(data.len(), 64);
        assert!(
            data.iter().all(|b| *b == data[0]),
            "one writer's content, whole"
        );
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn missing_and_empty_are_not_written_yet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("y");
        assert_eq!(read_optional(&p).expect("missing"), None);
        fs::write(&p, b"").expect("empty");
        assert_eq!(read_optional(&p).expect("empty"), None);
        fs::write(&p, b"z").expect("z");
        assert_eq!(read_optional(&p).expect("z"), Some(b"z".to_vec()));
    }

    #[test]
    fn remove_dir_atomic_removes_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("a/b");
        create_dir_durable(&d).expect("mkdir");
        fs::write(d.join("f"), b"1").expect("write");
        remove_dir_atomic(&dir.path().join("a")).expect("remove");
        assert!(!dir.path().join("a").exists());
        remove_dir_atomic(&dir.path().join("a")).expect("already gone is fine");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
