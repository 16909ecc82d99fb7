//! Whether systemd is the init system.

use std::path::Path;

/// sd_booted: whether this system was booted with systemd as its init system (systemd
/// creates `/run/systemd/system` early at boot; other inits and containers without
/// systemd do not have it).
pub fn booted() -> bool {
    booted_at(Path::new(RUNTIME_DIRECTORY))
}

/// systemd's runtime directory.
pub const RUNTIME_DIRECTORY: &str = "/run/systemd/system";

/// [`booted`] with systemd's runtime directory elsewhere (`--systemd_runtime_directory`).
pub fn booted_at(runtime_directory: &Path) -> bool {
    // symlink_metadata: only a real directory counts, not a symlink planted in its place.
    std::fs::symlink_metadata(runtime_directory).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_the_directory_itself() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("run/systemd/system");
        assert!(!booted_at(&dir));
        std::fs::create_dir_all(root.path().join("run/systemd")).expect("mkdir");
        std::fs::write(root.path().join("run/systemd/system"), "").expect("file");
        assert!(!booted_at(&dir), "a file is not enough");
        std::fs::remove_file(root.path().join("run/systemd/system")).expect("rm");
        std::fs::create_dir(root.path().join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(
            root.path().join("elsewhere"),
            root.path().join("run/systemd/system"),
        )
        .expect("symlink");
        assert!(!booted_at(&dir), "a symlink is not enough");
        std::fs::remove_file(root.path().join("run/systemd/system")).expect("rm");
        std::fs::create_dir(root.path().join("run/systemd/system")).expect("mkdir");
        assert!(booted_at(&dir));
    }
}
