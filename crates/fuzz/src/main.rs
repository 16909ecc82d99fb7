//! `holdfast-fuzz [--seconds N] [--seed S] [--target NAME|all] [--save DIR] [--corpus DIR]`
//! or `holdfast-fuzz [--target NAME] --replay PATH`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use holdfast_fuzz::corpus::{self, Corpus};
use holdfast_fuzz::master_http::MasterHttp;
use holdfast_fuzz::runner::{self, Report};
use holdfast_fuzz::{in_process_target, is_known, Target, TARGETS};

const USAGE: &str = "\
usage: holdfast-fuzz [--seconds N] [--seed S] [--target NAME|all] [--save DIR] [--corpus DIR]
       holdfast-fuzz [--target NAME] --replay PATH

  --seconds N    time for each target (default 10; fractions allowed)
  --seed S       seed of the mutations (default: from the clock; printed, to repeat a run)
  --target NAME  scheduler, agent, executor, internal, master, master-http, or all (the default)
  --save DIR     where inputs that found something are saved, under DIR/<target>/
                 (default: target/fuzz-crashes next to this binary's profile directory)
  --corpus DIR   fixtures to take seed requests from (default: ../shared/fixtures
                 of the checkout this was built from)
  --replay PATH  run saved inputs (a file, or every file of a directory) instead of
                 fuzzing; the target is --target, else the name of their directory

master-http runs the holdfast binary next to this one: build it with `cargo build -p holdfast`.
Exits 1 when anything was found (but findings listed in known-findings.txt, unless
replaying), 2 on bad usage.";

struct Args {
    seconds: f64,
    seed: Option<u64>,
    /// None: all of them (or, replaying, the one the inputs' directory names).
    targets: Option<Vec<&'static str>>,
    save: Option<PathBuf>,
    corpus: Option<PathBuf>,
    replay: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        seconds: 10.0,
        seed: None,
        targets: None,
        save: None,
        corpus: None,
        replay: None,
    };
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seconds" => {
                let v = value()?;
                parsed.seconds = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e7)
                    .ok_or_else(|| {
                        format!("--seconds {v}: expected a positive number of seconds, e.g. 20")
                    })?;
            }
            "--seed" => {
                let v = value()?;
                parsed.seed = Some(
                    v.parse()
                        .map_err(|_| format!("--seed {v}: expected an unsigned 64-bit number"))?,
                );
            }
            "--target" => {
                let v = value()?;
                parsed.targets = Some(if v == "all" {
                    TARGETS.to_vec()
                } else {
                    let name = TARGETS.iter().find(|t| **t == v).ok_or_else(|| {
                        format!(
                            "--target {v}: unknown target (known: {}, all)",
                            TARGETS.join(", ")
                        )
                    })?;
                    vec![*name]
                });
            }
            "--save" => parsed.save = Some(PathBuf::from(value()?)),
            "--corpus" => parsed.corpus = Some(PathBuf::from(value()?)),
            "--replay" => parsed.replay = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Some(parsed))
}

/// `target/fuzz-crashes` when this binary runs from `target/<profile>/`.
fn default_save_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("fuzz-crashes")))
        .unwrap_or_else(|| PathBuf::from("target/fuzz-crashes"))
}

fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// The target called `name`; the master-http one starts the master.
fn make_target(
    name: &str,
    corpus: &Corpus,
    save: &Path,
    seed: u64,
) -> Result<Box<dyn Target>, String> {
    if let Some(t) = in_process_target(name, corpus) {
        return Ok(t);
    }
    let bin = std::env::current_exe()
        .map(|e| e.with_file_name("holdfast"))
        .unwrap_or_else(|_| PathBuf::from("holdfast"));
    Ok(Box::new(MasterHttp::new(corpus, &bin, save, seed)?))
}

/// Runs saved inputs; any finding, known or not, fails (this is how a fix is checked).
fn replay(path: &Path, targets: Option<&[&'static str]>, corpus: &Corpus, save: &Path) -> ExitCode {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                eprintln!("holdfast-fuzz: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        // Histories are notes for a person, not inputs.
        files.retain(|f| f.is_file() && f.extension().is_none_or(|e| e != "history"));
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    let name = match targets {
        Some([one]) => *one,
        Some(_) => {
            eprintln!("holdfast-fuzz: --replay takes one --target");
            return ExitCode::from(2);
        }
        None => match dir
            .and_then(Path::file_name)
            .and_then(|n| TARGETS.iter().find(|t| n == **t))
        {
            Some(t) => *t,
            None => {
                eprintln!(
                    "holdfast-fuzz: --replay {}: name the target with --target (the directory is not named after one)",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut target = match make_target(name, corpus, save, 0) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("holdfast-fuzz: {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut found = 0;
    for file in &files {
        let input = match std::fs::read(file) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("holdfast-fuzz: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        match runner::replay_one(target.as_mut(), &input) {
            Ok(()) => println!("ok     {name} {}", file.display()),
            Err(f) => {
                found += 1;
                println!(
                    "FOUND  {name} {}: {}\n{}",
                    file.display(),
                    f.kind,
                    f.detail.trim_end()
                );
            }
        }
    }
    println!(
        "holdfast-fuzz: replayed {} inputs on {name}, {found} found something",
        files.len()
    );
    if found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("holdfast-fuzz: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let corpus_dir = args.corpus.clone().unwrap_or_else(corpus::default_dir);
    let corpus = match Corpus::load(&corpus_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("holdfast-fuzz: {e}; pass --corpus DIR to name the fixtures directory");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let save = args.save.clone().unwrap_or_else(default_save_dir);
    if let Some(path) = &args.replay {
        return replay(path, args.targets.as_deref(), &corpus, &save);
    }
    let targets = args.targets.clone().unwrap_or_else(|| TARGETS.to_vec());
    println!(
        "holdfast-fuzz: seed {seed} (repeat with --seed {seed}); {}s per target; {} seed requests from {}; findings go to {}",
        args.seconds,
        corpus.requests.len(),
        corpus_dir.display(),
        save.display()
    );
    let config = runner::Config {
        duration: Duration::from_secs_f64(args.seconds),
        max_runs: None,
        seed,
        save: save.clone(),
    };
    let mut reports: Vec<Report> = Vec::new();
    for name in &targets {
        let mut target = match make_target(name, &corpus, &save, seed) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("holdfast-fuzz: {name}: {e}");
                return ExitCode::from(2);
            }
        };
        let report = runner::fuzz(target.as_mut(), &config);
        println!(
            "{}: {} runs in {:.1}s ({:.0}/s), pool {}, {}",
            report.target,
            report.runs,
            report.elapsed.as_secs_f64(),
            report.runs_per_second(),
            report.pool,
            if report.findings.is_empty() {
                "nothing found".to_owned()
            } else {
                format!("{} kinds of finding", report.findings.len())
            }
        );
        reports.push(report);
    }
    let mut failing = Vec::new();
    let mut known = Vec::new();
    for r in &reports {
        for (kind, n) in &r.findings {
            let line = format!("  {}: {kind} ({n} inputs)", r.target);
            if is_known(&r.target, kind) {
                known.push(line);
            } else {
                failing.push(line);
            }
        }
    }
    if !known.is_empty() {
        println!(
            "holdfast-fuzz: known findings, waiting for fixes (crates/fuzz/known-findings.txt):\n{}",
            known.join("\n")
        );
    }
    if failing.is_empty() {
        println!("holdfast-fuzz: nothing new found (seed {seed})");
        ExitCode::SUCCESS
    } else {
        println!(
            "holdfast-fuzz: found (seed {seed}; inputs saved in {}):\n{}",
            save.display(),
            failing.join("\n")
        );
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_parse_in_both_forms() {
        let a = parse(&["--seconds", "2.5", "--seed=7", "--target", "master"])
            .expect("ok")
            .expect("args");
        assert_eq!(a.seconds, 2.5);
        assert_eq!(a.seed, Some(7));
        assert_eq!(a.targets, Some(vec!["master"]));
        let all = parse(&["--target=all"]).expect("ok").expect("args");
        assert_eq!(all.targets, Some(TARGETS.to_vec()));
        let replay = parse(&["--replay", "x/master"]).expect("ok").expect("args");
        assert_eq!(replay.replay, Some(PathBuf::from("x/master")));
    }

    #[test]
    fn bad_flags_say_what_to_write() {
        let err = |args: &[&str]| parse(args).err().unwrap_or_default();
        assert!(err(&["--target", "nope"]).contains("known: scheduler"));
        assert!(err(&["--seconds", "-1"]).contains("positive number"));
        assert!(err(&["--seed"]).contains("needs a value"));
        assert!(err(&["--bogus"]).contains("unknown argument '--bogus'"));
    }
}
