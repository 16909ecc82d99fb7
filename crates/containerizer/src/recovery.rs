//! Recovery planning: decide, from what is on disk and in the cgroup tree, what happens to
//! each container. Pure: the observations come in, a plan goes out, and
//! [`crate::Containerizer::recover`] carries it out.
//!
//! Every checkpointed container ends up in exactly one of these cases:
//!
//! | recorded termination | host rebooted | supervisor alive | exit.json | outcome |
//! |---|---|---|---|---|
//! | yes | - | - | - | stays ended; any cgroup left is destroyed |
//! | no | yes | - | - | ended, status unknown ("host rebooted") |
//! | no | no | yes | - | reattached |
//! | no | no | no | yes | ended with the recorded wait status |
//! | no | no | no | no | ended, status unknown (supervisor died or launch incomplete) |
//!
//! A nested container whose parent ended is ended too. Every cgroup that no checkpoint
//! knows is an orphan and is destroyed.

use std::collections::HashSet;
use std::path::PathBuf;

use holdfast_api::v1::ContainerId;
use holdfast_checkpoint::records::VERSION;
use holdfast_checkpoint::{ExitRecord, LoadedContainer, SupervisorRecord, TerminationRecord};

/// What recovery saw of one checkpointed container.
#[derive(Debug, Clone)]
pub struct Observation {
    pub loaded: LoadedContainer,
    /// From the checkpoint, or from the runtime dir if the agent died before copying it.
    pub supervisor: Option<SupervisorRecord>,
    /// The supervisor's pid still names the same process (start time matches).
    pub supervisor_alive: bool,
    pub exit: Option<ExitRecord>,
    /// A limit that ended the container (read from its cgroup before it is destroyed).
    pub limitation: Option<crate::isolate::Limitation>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reattach(SupervisorRecord),
    /// `record` is new and must be checkpointed, unless `already_recorded`.
    Ended {
        termination: TerminationRecord,
        already_recorded: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub id: ContainerId,
    pub outcome: Outcome,
    /// Its cgroup exists and must be destroyed.
    pub destroy_cgroup: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// Cgroups of containers no checkpoint knows (ids), to destroy.
    pub orphans: Vec<ContainerId>,
    /// Entries under the root that are not container cgroups at all, to destroy.
    pub foreign: Vec<PathBuf>,
}

pub const MSG_REBOOTED: &str = "the host rebooted while the container was running";
pub const MSG_SUPERVISOR_LOST: &str =
    "the container's supervisor ended without recording an exit status";
pub const MSG_LAUNCH_INCOMPLETE: &str = "the agent stopped before the launch completed";
pub const MSG_PARENT_ENDED: &str = "its parent container ended";

/// Builds the plan. `observations` are parents before children; `cgroups` are the
/// containers found in the tree.
pub fn plan(
    observations: &[Observation],
    cgroups: &[ContainerId],
    foreign: &[PathBuf],
    rebooted: bool,
    now: f64,
) -> Plan {
    let in_tree: HashSet<&ContainerId> = cgroups.iter().collect();
    let mut ended: HashSet<ContainerId> = HashSet::new();
    let mut known: HashSet<&ContainerId> = HashSet::new();
    let mut decisions = Vec::with_capacity(observations.len());
    let term = |message: &str, wait_status: Option<i32>| TerminationRecord {
        version: VERSION,
        wait_status,
        finished_at: now,
        message: Some(message.to_string()),
        reason: None,
        limitation: Vec::new(),
    };

    for obs in observations {
        let id = &obs.loaded.record.container_id;
        known.insert(id);
        let has_cgroup = in_tree.contains(id);
        let parent_ended = id.parent.as_deref().is_some_and(|p| ended.contains(p));
        let outcome = if let Some(t) = &obs.loaded.termination {
            Outcome::Ended {
                termination: t.clone(),
                already_recorded: true,
            }
        } else if rebooted {
            Outcome::Ended {
                termination: term(MSG_REBOOTED, None),
                already_recorded: false,
            }
        } else if let (Some(sup), true, false) =
            (obs.supervisor, obs.supervisor_alive, parent_ended)
        {
            Outcome::Reattach(sup)
        } else if let Some(exit) = &obs.exit {
            Outcome::Ended {
                termination: TerminationRecord {
                    version: VERSION,
                    wait_status: Some(exit.wait_status),
                    finished_at: exit.exited_at,
                    message: None,
                    reason: None,
                    limitation: Vec::new(),
                },
                already_recorded: false,
            }
        } else {
            let msg = if parent_ended {
                MSG_PARENT_ENDED
            } else if obs.supervisor.is_some() {
                MSG_SUPERVISOR_LOST
            } else {
                MSG_LAUNCH_INCOMPLETE
            };
            Outcome::Ended {
                termination: term(msg, None),
                already_recorded: false,
            }
        };
        // A limit that ended it is part of a new termination; a recorded one has it already.
        let outcome = match (outcome, &obs.limitation) {
            (
                Outcome::Ended {
                    mut termination,
                    already_recorded: false,
                },
                Some(l),
            ) => {
                termination.reason = Some(l.reason.to_string());
                termination.message = Some(l.message.clone());
                termination.limitation = l.resources.clone();
                Outcome::Ended {
                    termination,
                    already_recorded: false,
                }
            }
            (outcome, _) => outcome,
        };
        if matches!(outcome, Outcome::Ended { .. }) {
            ended.insert(id.clone());
        }
        decisions.push(Decision {
            id: id.clone(),
            destroy_cgroup: has_cgroup && matches!(outcome, Outcome::Ended { .. }),
            outcome,
        });
    }

    // An orphan below an orphan goes with it; list only the topmost.
    let orphans: Vec<ContainerId> = cgroups
        .iter()
        .filter(|c| !known.contains(c))
        .filter(|c| {
            let mut p = c.parent.as_deref();
            while let Some(parent) = p {
                if !known.contains(parent) {
                    return false;
                }
                p = parent.parent.as_deref();
            }
            true
        })
        .cloned()
        .collect();

    Plan {
        decisions,
        orphans,
        foreign: foreign.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_checkpoint::ContainerRecord;

    fn obs(id: ContainerId) -> Observation {
        Observation {
            loaded: LoadedContainer {
                record: ContainerRecord {
                    version: VERSION,
                    container_id: id,
                    command: None,
                    resources: vec![],
                    container: None,
                    limits: Default::default(),
                    sandbox: PathBuf::from("/s"),
                    launched_at: 1.0,
                    cgroup: None,
                    unit: None,
                },
                supervisor: None,
                termination: None,
            },
            supervisor: None,
            supervisor_alive: false,
            exit: None,
            limitation: None,
        }
    }

    fn sup() -> SupervisorRecord {
        SupervisorRecord {
            version: VERSION,
            pid: 100,
            start_time: 5,
            workload_pid: 101,
            workload_start_time: 6,
        }
    }

    fn ended_with(plan: &Plan, i: usize) -> (Option<i32>, Option<String>, bool) {
        match &plan.decisions[i].outcome {
            Outcome::Ended {
                termination,
                already_recorded,
            } => (
                termination.wait_status,
                termination.message.clone(),
                *already_recorded,
            ),
            other => panic!("expected ended, got {other:?}"),
        }
    }

    #[test]
    fn a_limit_that_ended_a_container_is_recorded_once() {
        let oom = crate::isolate::Limitation {
            reason: crate::isolate::REASON_MEMORY,
            message: "Memory limit exceeded: Requested: 64MB".into(),
            resources: Vec::new(),
        };
        let id = ContainerId::new("hog");
        let mut exited = obs(id.clone());
        exited.supervisor = Some(sup());
        exited.exit = Some(ExitRecord {
            version: VERSION,
            wait_status: 9,
            exited_at: 3.0,
            oom: None,
        });
        exited.limitation = Some(oom.clone());
        let p = plan(
            std::slice::from_ref(&exited),
            std::slice::from_ref(&id),
            &[],
            false,
            10.0,
        );
        let Outcome::Ended {
            termination,
            already_recorded: false,
        } = &p.decisions[0].outcome
        else {
            panic!("expected a new termination: {:?}", p.decisions[0]);
        };
        assert_eq!(termination.wait_status, Some(9));
        assert_eq!(
            termination.reason.as_deref(),
            Some(crate::isolate::REASON_MEMORY)
        );
        assert_eq!(termination.message.as_deref(), Some(oom.message.as_str()));

        // Recorded before the restart: kept exactly as it was, not recorded again.
        let mut recorded = exited;
        recorded.loaded.termination = Some(termination.clone());
        let p = plan(&[recorded], &[id], &[], false, 20.0);
        assert_eq!(
            p.decisions[0].outcome,
            Outcome::Ended {
                termination: termination.clone(),
                already_recorded: true
            }
        );
    }

    #[test]
    fn every_case_of_the_table() {
        let a = ContainerId::new("alive");
        let e = ContainerId::new("exited");
        let l = ContainerId::new("lost");
        let i = ContainerId::new("incomplete");
        let r = ContainerId::new("recorded");
        let mut o_alive = obs(a.clone());
        o_alive.supervisor = Some(sup());
        o_alive.supervisor_alive = true;
        let mut o_exit = obs(e.clone());
        o_exit.supervisor = Some(sup());
        o_exit.exit = Some(ExitRecord {
            version: VERSION,
            wait_status: 1792,
            exited_at: 9.0,
            oom: None,
        });
        let mut o_lost = obs(l.clone());
        o_lost.supervisor = Some(sup());
        let o_inc = obs(i.clone());
        let mut o_rec = obs(r.clone());
        o_rec.loaded.termination = Some(TerminationRecord {
            version: VERSION,
            wait_status: Some(9),
            finished_at: 2.0,
            message: None,
            reason: None,
            limitation: Vec::new(),
        });
        let cgroups = vec![a.clone(), e.clone(), l.clone(), r.clone()];
        let p = plan(
            &[o_alive.clone(), o_exit, o_lost, o_inc, o_rec],
            &cgroups,
            &[],
            false,
            10.0,
        );
        assert_eq!(p.decisions[0].outcome, Outcome::Reattach(sup()));
        assert!(!p.decisions[0].destroy_cgroup);
        assert_eq!(ended_with(&p, 1), (Some(1792), None, false));
        assert!(p.decisions[1].destroy_cgroup);
        assert_eq!(
            ended_with(&p, 2),
            (None, Some(MSG_SUPERVISOR_LOST.into()), false)
        );
        assert_eq!(
            ended_with(&p, 3),
            (None, Some(MSG_LAUNCH_INCOMPLETE.into()), false)
        );
        assert!(!p.decisions[3].destroy_cgroup, "no cgroup to destroy");
        assert_eq!(ended_with(&p, 4), (Some(9), None, true));
        assert!(
            p.decisions[4].destroy_cgroup,
            "stale cgroup of an ended container"
        );
        assert!(p.orphans.is_empty());

        // After a reboot nothing is reattached, even a pid that happens to look alive.
        let p = plan(&[o_alive], &[], &[], true, 10.0);
        assert_eq!(ended_with(&p, 0), (None, Some(MSG_REBOOTED.into()), false));
    }

    #[test]
    fn orphans_and_nested_containers() {
        let parent = ContainerId::new("p");
        let child = parent.child("c");
        let mut o_parent = obs(parent.clone());
        o_parent.supervisor = Some(sup());
        let mut o_child = obs(child.clone());
        o_child.supervisor = Some(sup());
        o_child.supervisor_alive = true;
        let stray = ContainerId::new("stray");
        let stray_child = stray.child("x");
        let unknown_nested = parent.child("unknown");
        let cgroups = vec![
            parent.clone(),
            child.clone(),
            unknown_nested.clone(),
            stray.clone(),
            stray_child,
        ];
        let p = plan(&[o_parent, o_child], &cgroups, &[], false, 1.0);
        assert_eq!(ended_with(&p, 1).1, Some(MSG_PARENT_ENDED.into()));
        assert_eq!(p.orphans, vec![unknown_nested, stray]);
    }
}
