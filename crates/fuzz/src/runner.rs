//! The fuzzing loop: run the seeds, then mutants until the time is up; catch panics;
//! print, save and count findings.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::rng::{fnv1a, Rng};
use crate::{Finding, Target};

/// Inputs kept for mutation at most; new ones then replace random non-seed ones.
const POOL_CAP: usize = 4096;
/// Inputs saved per kind of finding: the first few are enough to debug it.
const SAVED_PER_KIND: usize = 3;
/// Bytes of an input printed with its finding; the saved file has all of it.
const PRINTED_BYTES: usize = 4096;

pub struct Config {
    /// Time for this target.
    pub duration: Duration,
    /// Stop after this many runs even if time is left: tests bound work, not wall time,
    /// so that a loaded machine changes how long they take, never what they see.
    pub max_runs: Option<u64>,
    pub seed: u64,
    /// Findings go to `<save>/<target>/`.
    pub save: PathBuf,
}

#[derive(Debug, Default)]
pub struct Report {
    pub target: String,
    pub runs: u64,
    pub elapsed: Duration,
    pub pool: usize,
    /// How many inputs hit each kind of finding.
    pub findings: BTreeMap<String, usize>,
}

impl Report {
    pub fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Panic {
    location: String,
    message: String,
    backtrace: String,
}

thread_local! {
    /// Set while a target runs: its panics are recorded instead of printed.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(Cell::get) {
                return previous(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            let location = info
                .location()
                .map_or_else(|| "unknown place".to_owned(), |l| l.to_string());
            let backtrace = std::backtrace::Backtrace::force_capture().to_string();
            LAST_PANIC.with(|p| {
                *p.borrow_mut() = Some(Panic {
                    location,
                    message,
                    backtrace,
                })
            });
        }));
    });
}

/// Runs `f` on the target; a panic becomes a finding named after where it happened.
fn guarded<T>(f: impl FnOnce() -> Result<T, Finding>) -> Result<T, Finding> {
    install_panic_hook();
    IN_TARGET.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_TARGET.with(|c| c.set(false));
    match result {
        Ok(r) => r,
        Err(_) => {
            let p = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or(Panic {
                location: "unknown place".to_owned(),
                message: "(no panic message recorded)".to_owned(),
                backtrace: String::new(),
            });
            Err(Finding::new(
                format!("panic at {}", p.location),
                format!("{}\n{}", p.message, p.backtrace),
            ))
        }
    }
}

pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<String, Finding> {
    guarded(|| target.run(input))
}

/// Replays a saved input, as the regression test does.
pub fn replay_one(target: &mut dyn Target, input: &[u8]) -> Result<(), Finding> {
    guarded(|| target.replay(input))
}

pub fn fuzz(target: &mut dyn Target, config: &Config) -> Report {
    let name = target.name();
    let mut rng = Rng::new(config.seed ^ fnv1a(name.as_bytes()));
    let seeds = target.seeds();
    let fixed = seeds.len();
    let mut pool = seeds.clone();
    let mut seen: HashSet<String> = HashSet::new();
    let mut report = Report {
        target: name.to_owned(),
        ..Report::default()
    };
    let start = Instant::now();
    let deadline = start + config.duration;
    // The seeds run first as they are: known-good calls must not fail either.
    let mut seeds = seeds.into_iter();
    loop {
        let input = match seeds.next() {
            Some(s) => s,
            None if Instant::now() >= deadline
                || pool.is_empty()
                || config.max_runs.is_some_and(|max| report.runs >= max) =>
            {
                break
            }
            None => {
                let parent = rng.pick(&pool).clone();
                target.mutate(&mut rng, &parent, &pool)
            }
        };
        report.runs += 1;
        match run_one(target, &input) {
            Ok(signature) => {
                if seen.insert(signature) {
                    if pool.len() < POOL_CAP {
                        pool.push(input);
                    } else if pool.len() > fixed {
                        let i = fixed + rng.below(pool.len() - fixed);
                        pool[i] = input;
                    }
                }
            }
            Err(finding) => record(&mut report, &config.save, finding, &input),
        }
    }
    if let Err(finding) = guarded(|| target.finish()) {
        record(&mut report, &config.save, finding, b"");
    }
    report.elapsed = start.elapsed();
    report.pool = pool.len();
    report
}

fn record(report: &mut Report, save: &Path, finding: Finding, input: &[u8]) {
    let count = report.findings.entry(finding.kind.clone()).or_default();
    *count += 1;
    if *count > SAVED_PER_KIND {
        return;
    }
    let data = finding.artifact.as_deref().unwrap_or(input);
    let dir = save.join(&report.target);
    let path = dir.join(format!("crash-{:016x}", fnv1a(data)));
    // Checks made after the last input have no input of their own.
    let saved = if data.is_empty() {
        "no input to save".to_owned()
    } else {
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, data))
            .map_or_else(
                |e| format!("not saved: cannot write {}: {e}", path.display()),
                |()| format!("saved: {}", path.display()),
            )
    };
    if *count > 1 {
        println!(
            "{}: another input for \"{}\"; {saved}",
            report.target, finding.kind
        );
        return;
    }
    let known = if crate::is_known(&report.target, &finding.kind) {
        " (known: listed in crates/fuzz/known-findings.txt, does not fail the run)"
    } else {
        ""
    };
    println!("== {}: {}{known}", report.target, finding.kind);
    println!("{}", finding.detail.trim_end());
    let shown = &data[..data.len().min(PRINTED_BYTES)];
    let more = if data.len() > shown.len() {
        format!(" ... ({} bytes in all)", data.len())
    } else {
        String::new()
    };
    println!(
        "input ({} bytes): {}{more}",
        data.len(),
        shown.escape_ascii()
    );
    println!("{saved}");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fragile;

    impl Target for Fragile {
        fn name(&self) -> &'static str {
            "fragile"
        }
        fn seeds(&self) -> Vec<Vec<u8>> {
            vec![b"{\"a\":1}".to_vec()]
        }
        fn run(&mut self, input: &[u8]) -> Result<String, Finding> {
            if input.contains(&b'!') {
                panic!("an exclamation mark");
            }
            if input.len() > 20 {
                return Err(Finding::new("too long", format!("{} bytes", input.len())));
            }
            Ok(format!("{}", input.len()))
        }
    }

    #[test]
    fn panics_and_findings_are_counted_saved_and_the_loop_goes_on() {
        let dir = std::env::temp_dir().join(format!("holdfast-fuzz-test-{}", std::process::id()));
        let mut target = Fragile;
        let report = fuzz(
            &mut target,
            &Config {
                duration: Duration::from_secs(600),
                max_runs: Some(5000),
                seed: 1,
                save: dir.clone(),
            },
        );
        assert_eq!(report.runs, 5000, "{report:?}");
        let panic_kind = report
            .findings
            .keys()
            .find(|k| k.starts_with("panic at ") && k.contains("runner.rs"))
            .unwrap_or_else(|| panic!("no panic recorded: {report:?}"));
        assert!(report.findings[panic_kind] >= 1);
        assert!(report.findings.contains_key("too long"), "{report:?}");
        let saved = std::fs::read_dir(dir.join("fragile"))
            .expect("saved")
            .count();
        assert!((2..=2 * SAVED_PER_KIND).contains(&saved), "{saved}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_replayed_panic_names_its_message() {
        let err = replay_one(&mut Fragile, b"!").expect_err("panics");
        assert!(
            err.detail.starts_with("an exclamation mark"),
            "{}",
            err.detail
        );
    }
}
