//! Replays every input under `regressions/<target>/`: each once found something, or sits
//! at a limit of what the target accepts, and each must now run clean. (Inputs of
//! findings not fixed yet wait in `regressions-pending/`, which is not replayed.)

use std::path::{Path, PathBuf};

use holdfast_fuzz::corpus::Corpus;
use holdfast_fuzz::master_http::MasterHttp;
use holdfast_fuzz::{in_process_target, runner, Target, TARGETS};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The master-http target needs the `holdfast` binary, which a workspace build puts
/// next to this test's directory (`target/<profile>/deps/..`).
fn master_http(save: &Path) -> Result<Box<dyn Target>, String> {
    let bin = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("holdfast"))
        .ok_or("no directory above the test binary")?;
    Ok(Box::new(MasterHttp::new(
        &Corpus::default(),
        &bin,
        save,
        0,
    )?))
}

#[test]
fn saved_inputs_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let save =
        std::env::temp_dir().join(format!("holdfast-fuzz-regressions-{}", std::process::id()));
    let mut replayed = 0;
    let mut failures = Vec::new();
    for name in TARGETS {
        let dir = root.join(name);
        if !dir.is_dir() {
            continue;
        }
        let mut target = match in_process_target(name, &Corpus::default()) {
            Some(t) => t,
            None => match master_http(&save) {
                Ok(t) => t,
                Err(e) => {
                    println!("skipped: {name} regressions: {e}");
                    continue;
                }
            },
        };
        for file in files(&dir) {
            let input = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            replayed += 1;
            if let Err(f) = runner::replay_one(target.as_mut(), &input) {
                failures.push(format!("{}: {}\n{}", file.display(), f.kind, f.detail));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&save);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(replayed > 0, "no inputs under {}", root.display());
}
