//! `holdfast-fuzz`: a bounded, coverage-free mutation fuzzer for the JSON call parsers
//! and the master.
//!
//! Stable Rust has no libFuzzer, so this is our own: inputs start from the recorded
//! Mesos requests ([`corpus`]), change by byte-level and JSON-aware [`mutate`]ions, and
//! run against a [`Target`] under `catch_unwind` ([`runner`]). Without coverage, an
//! input joins the pool when its outcome (the call it parsed to, the reason it was
//! refused, the events it caused) was not seen before. A panic, a broken invariant, or
//! a server error is a finding: printed, saved, and the run fails, unless
//! `known-findings.txt` lists it as waiting for a fix in another crate.

pub mod corpus;
pub mod master;
pub mod master_http;
pub mod mutate;
pub mod parsers;
pub mod rng;
pub mod runner;

use corpus::Corpus;

/// Every target, in the order `--target all` runs them.
pub const TARGETS: &[&str] = &[
    "scheduler",
    "agent",
    "executor",
    "internal",
    "master",
    "master-http",
];

/// Something a run found that is not a panic: a broken invariant, a 5xx, a dead master.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The cause, stable across inputs: findings are printed and saved once per kind.
    pub kind: String,
    pub detail: String,
    /// What to save in place of the input (the master-http target saves the raw
    /// request, which says more than the body it was built from).
    pub artifact: Option<Vec<u8>>,
}

impl Finding {
    pub fn new(kind: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            kind: kind.into(),
            detail: detail.into(),
            artifact: None,
        }
    }
}

/// Something to fuzz.
pub trait Target {
    fn name(&self) -> &'static str;

    /// Inputs to start from; each is also run once as it is.
    fn seeds(&self) -> Vec<Vec<u8>>;

    /// A new input from `input`; `pool` holds the inputs kept so far.
    fn mutate(&mut self, rng: &mut rng::Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate(rng, input, pool)
    }

    /// Runs one input. `Ok` carries a short description of what happened; an input
    /// whose description is new joins the pool.
    fn run(&mut self, input: &[u8]) -> Result<String, Finding>;

    /// Replays a saved input (what [`Finding::artifact`] or the input was).
    fn replay(&mut self, input: &[u8]) -> Result<(), Finding> {
        self.run(input).map(|_| ())
    }

    /// Checks made once, after the last input.
    fn finish(&mut self) -> Result<(), Finding> {
        Ok(())
    }
}

/// Findings that are reported but do not fail a run (`known-findings.txt`).
const KNOWN_FINDINGS: &str = include_str!("../known-findings.txt");

/// Whether `kind` on `target` is a known finding that waits for a fix elsewhere.
pub fn is_known(target: &str, kind: &str) -> bool {
    listed(KNOWN_FINDINGS, target, kind)
}

fn listed(list: &str, target: &str, kind: &str) -> bool {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .any(|(t, k)| t == target && k == kind)
}

/// The targets that run inside this process, by name.
pub fn in_process_target(name: &str, corpus: &Corpus) -> Option<Box<dyn Target>> {
    Some(match name {
        "scheduler" => Box::new(parsers::SchedulerParser::new(corpus)),
        "agent" => Box::new(parsers::AgentParser::new(corpus)),
        "internal" => Box::new(parsers::InternalParser::new(corpus)),
        "executor" => Box::new(parsers::ExecutorParser::new(corpus)),
        "master" => Box::new(master::MasterTarget::new(corpus)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_findings_are_matched_by_target_and_whole_kind() {
        let list = "# a comment\nmaster: agent's used resources exceed its total\n";
        assert!(listed(
            list,
            "master",
            "agent's used resources exceed its total"
        ));
        assert!(!listed(
            list,
            "master-http",
            "agent's used resources exceed its total"
        ));
        assert!(!listed(list, "master", "agent's used resources"));
        // Every entry names a target and a kind.
        for line in KNOWN_FINDINGS
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (target, kind) = line.split_once(": ").unwrap_or_else(|| panic!("{line}"));
            assert!(TARGETS.contains(&target), "{line}");
            assert!(!kind.trim().is_empty(), "{line}");
        }
    }
}
