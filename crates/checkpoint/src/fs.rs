//! Atomic file replacement: temp file in the same directory, fsync, rename, fsync the
//! directory. Readers see the old content or the new, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Hidden temp name: loaders skip dot files, so a crash leaves nothing they would read.
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
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
    let Some(name) = dir.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ));
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    let hidden = parent.join(format!(".removing.{}", name.to_string_lossy()));
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
