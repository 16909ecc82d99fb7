//! Which framework gets an agent's available resources next.
//!
//! A simplified form of Mesos's hierarchical DRF allocator. It is pure: it keeps no clock,
//! does no I/O and creates no offers. The caller (the master's `state`) reports what
//! happens (agents and frameworks come and go, resources are offered, used and given
//! back, frameworks decline, suppress and revive) and asks [`Allocator::decide`] who
//! should get what is available, passing the current time in.
//!
//! # Quantities
//!
//! Only scalar resources take part (`cpus`, `mem`, `disk`, `gpus`, ...), as
//! [`Scalars`] maps from resource name to quantity. Like Mesos's fixed-point scalars,
//! every quantity is rounded to three decimal places when it enters the allocator, so
//! adding and subtracting the same amounts gets back exactly to where it started.
//! Negative, NaN and infinite quantities are ignored. The cluster total is the sum of all
//! agents' totals.
//!
//! # Shares
//!
//! The *share* of an allocation is its dominant share: the largest, over resource names,
//! of allocated / cluster total (names whose cluster total is zero are left out).
//!
//! - A role's share is the share of the sum of every framework's allocation in that role
//!   (including frameworks that have since left the role but still hold resources in it),
//!   divided by the role's weight (default 1.0, see [`Allocator::set_weight`]).
//! - A framework's share *within a role* is the share of its allocation in that role.
//! - [`Allocator::dominant_share`] is a framework's share over all its roles.
//!
//! # Rules of [`Allocator::decide`]
//!
//! Agents are taken in order of their id. An agent is skipped when the allocator does not
//! know it, or when what it has available is not *allocatable*: at least
//! [`MIN_ALLOCATABLE_CPUS`] cpus or at least [`MIN_ALLOCATABLE_MEM`] mem (Mesos's default
//! `--min_allocatable_resources`). Otherwise all of it goes to one (role, framework) pair,
//! chosen in two levels of DRF:
//!
//! 1. Among the roles that have at least one *eligible* framework, the role with the
//!    lowest weighted share; ties go to the role whose name sorts first.
//! 2. Within that role, the eligible framework with the lowest share in that role; ties
//!    go to the framework whose id sorts first.
//!
//! A framework is eligible for a role on an agent when it subscribes to the role (a
//! framework given no roles subscribes to [`DEFAULT_ROLE`]), is not suppressed for it, and
//! has no refusal filter for the agent that holds what the agent has available and whose
//! `until` is still after `now` (a filter with `until <= now` has expired). As in Mesos, a
//! filter covers only what was refused: once more is available (a task ended), the agent
//! is offered again. An agent with no eligible framework is left out.
//!
//! Each decision is counted as allocated before the next agent is considered, so within
//! one call the shares move as they would if the caller allocated as it went (two equal
//! frameworks and two agents: one agent each). `decide` does not record anything: the
//! caller creates the offers and calls [`Allocator::allocate`]. The result depends only on
//! the state and the arguments, never on insertion order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Scalar quantities by resource name (`cpus`, `mem` in MiB, `disk` in MiB, `gpus`, ...).
pub type Scalars = BTreeMap<String, f64>;

/// The role of a framework that names none.
pub const DEFAULT_ROLE: &str = "*";

/// Mesos's default `filters.refuse_seconds` when a framework gives none.
pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;

/// The longest refusal filter; longer requests are cut to this, as Mesos does.
pub const MAX_REFUSE_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Available resources with at least this many cpus are worth offering.
pub const MIN_ALLOCATABLE_CPUS: f64 = 0.01;

/// Available resources with at least this much mem (MiB) are worth offering.
pub const MIN_ALLOCATABLE_MEM: f64 = 32.0;

/// One agent's available resources, all of them, go to `framework` in `role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    pub agent: String,
    pub framework: String,
    pub role: String,
}

/// How long a refusal filter lasts, from a DECLINE's or ACCEPT's `filters.refuse_seconds`.
///
/// `None`, negative and NaN mean the default of 5 s; more than a year is cut to a year (so
/// `now + timeout` cannot overflow). Zero means the caller should install no filter.
pub fn refuse_timeout(refuse_seconds: Option<f64>) -> Duration {
    let seconds = match refuse_seconds {
        None => DEFAULT_REFUSE_SECONDS,
        Some(s) if s.is_nan() || s < 0.0 => {
            tracing::warn!(
                refuse_seconds = s,
                "invalid refuse_seconds, using the default"
            );
            DEFAULT_REFUSE_SECONDS
        }
        Some(s) if s > MAX_REFUSE_SECONDS => {
            tracing::warn!(refuse_seconds = s, "refuse_seconds too big, using one year");
            MAX_REFUSE_SECONDS
        }
        Some(s) => s,
    };
    Duration::from_secs_f64(seconds)
}

/// Whether `available` is worth offering: enough cpus or enough mem (see the module doc).
pub fn is_allocatable(available: &Scalars) -> bool {
    let get = |name: &str| available.get(name).copied().map_or(0.0, round);
    get("cpus") >= MIN_ALLOCATABLE_CPUS || get("mem") >= MIN_ALLOCATABLE_MEM
}

/// What the allocator knows of one framework.
#[derive(Debug, Clone, Default)]
struct Framework {
    /// Subscribed roles; never empty (no roles given means [`DEFAULT_ROLE`]).
    roles: BTreeSet<String>,
    /// Subscribed roles it asked not to be offered resources in.
    suppressed: BTreeSet<String>,
    /// role -> agent -> allocated. Kept per agent so removing an agent can take its
    /// share away; kept for roles the framework has left while it still holds resources
    /// there, since those still count towards the role's share.
    allocated: BTreeMap<String, BTreeMap<String, Scalars>>,
    /// agent -> its refusal filters.
    refused: BTreeMap<String, Vec<Refusal>>,
}

/// Resources of one agent a framework refused (declined, or left unused when it accepted
/// an offer), kept from it until `until`.
#[derive(Debug, Clone)]
struct Refusal {
    resources: Scalars,
    until: Instant,
}

impl Framework {
    fn allocation_in(&self, role: &str) -> Scalars {
        let mut sum = Scalars::new();
        if let Some(per_agent) = self.allocated.get(role) {
            for amount in per_agent.values() {
                add_into(&mut sum, amount);
            }
        }
        sum
    }

    /// Whether a filter still running at `now` holds all of `offered` (Mesos's
    /// `RefusedOfferFilter`: the refused resources are a superset of the offer).
    fn is_filtered(&self, agent: &str, offered: &Scalars, now: Instant) -> bool {
        self.refused.get(agent).is_some_and(|filters| {
            filters
                .iter()
                .any(|f| f.until > now && contains(&f.resources, offered))
        })
    }
}

/// The allocator's state. See the module doc for the rules.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// agent -> total.
    agents: BTreeMap<String, Scalars>,
    frameworks: BTreeMap<String, Framework>,
    /// Roles whose weight is not 1.0.
    weights: BTreeMap<String, f64>,
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent with its total resources. Adding a known agent replaces its total
    /// (a re-registration) and keeps what is allocated on it.
    pub fn add_agent(&mut self, agent: &str, total: Scalars) {
        self.agents.insert(agent.to_string(), clean(&total));
    }

    /// Replaces a known agent's total; an unknown agent is ignored.
    pub fn update_agent(&mut self, agent: &str, total: Scalars) {
        match self.agents.get_mut(agent) {
            Some(known) => *known = clean(&total),
            None => tracing::warn!(agent, "update of an unknown agent ignored"),
        }
    }

    /// Removes an agent, everything allocated on it and every filter for it.
    pub fn remove_agent(&mut self, agent: &str) {
        self.agents.remove(agent);
        for framework in self.frameworks.values_mut() {
            framework.refused.remove(agent);
            for per_agent in framework.allocated.values_mut() {
                per_agent.remove(agent);
            }
            framework
                .allocated
                .retain(|_, per_agent| !per_agent.is_empty());
        }
    }

    /// Adds a framework subscribed to `roles` (none means [`DEFAULT_ROLE`]). Adding a known
    /// framework (a re-subscription) acts as [`Allocator::update_framework_roles`].
    pub fn add_framework(&mut self, framework: &str, roles: &[String]) {
        if self.frameworks.contains_key(framework) {
            self.update_framework_roles(framework, roles);
            return;
        }
        self.frameworks.insert(
            framework.to_string(),
            Framework {
                roles: role_set(roles),
                ..Framework::default()
            },
        );
    }

    /// Changes a framework's roles. Suppression is kept for the roles it stays in; what it
    /// holds in roles it leaves still counts until recovered. Unknown frameworks are ignored.
    pub fn update_framework_roles(&mut self, framework: &str, roles: &[String]) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            tracing::warn!(framework, "role update of an unknown framework ignored");
            return;
        };
        fw.roles = role_set(roles);
        let roles = &fw.roles;
        fw.suppressed.retain(|role| roles.contains(role));
    }

    /// Removes a framework, its allocations and its filters.
    pub fn remove_framework(&mut self, framework: &str) {
        self.frameworks.remove(framework);
    }

    /// Records that `amount` of `agent`'s resources were offered to, or are used by,
    /// `framework` in `role`. Ignored when the framework or the agent is unknown, since
    /// nothing would ever take such an allocation away again.
    pub fn allocate(&mut self, framework: &str, role: &str, agent: &str, amount: &Scalars) {
        if !self.agents.contains_key(agent) {
            tracing::warn!(framework, agent, "allocation on an unknown agent ignored");
            return;
        }
        let Some(fw) = self.frameworks.get_mut(framework) else {
            tracing::warn!(
                framework,
                agent,
                "allocation to an unknown framework ignored"
            );
            return;
        };
        let held = fw
            .allocated
            .entry(role.to_string())
            .or_default()
            .entry(agent.to_string())
            .or_default();
        add_into(held, amount);
    }

    /// Records that resources came back (offer declined or rescinded, task ended).
    /// Quantities never go below zero; unknown frameworks, roles and agents are a no-op
    /// (their allocation is already gone, e.g. after the agent was removed).
    pub fn recover(&mut self, framework: &str, role: &str, agent: &str, amount: &Scalars) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        let Some(per_agent) = fw.allocated.get_mut(role) else {
            return;
        };
        if let Some(held) = per_agent.get_mut(agent) {
            sub_from(held, amount);
            if held.is_empty() {
                per_agent.remove(agent);
            }
        }
        if per_agent.is_empty() {
            fw.allocated.remove(role);
        }
    }

    /// Keeps `resources` of `agent` away from `framework` until `until` (see
    /// [`refuse_timeout`]): while it lasts, the agent is not offered to the framework
    /// unless it has more available than that. Each filter runs its own course, as in
    /// Mesos; one that a new filter covers in resources and time is dropped, so repeated
    /// declines of the same offer do not pile up.
    pub fn refuse(&mut self, framework: &str, agent: &str, resources: &Scalars, until: Instant) {
        if !self.agents.contains_key(agent) {
            return;
        }
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        let resources = clean(resources);
        let filters = fw.refused.entry(agent.to_string()).or_default();
        filters.retain(|f| !(f.until <= until && contains(&resources, &f.resources)));
        filters.push(Refusal { resources, until });
    }

    /// Drops every filter that has expired at `now`. Optional: expired filters are
    /// ignored anyway; this only frees their memory.
    pub fn expire_filters(&mut self, now: Instant) {
        for fw in self.frameworks.values_mut() {
            for filters in fw.refused.values_mut() {
                filters.retain(|f| f.until > now);
            }
            fw.refused.retain(|_, filters| !filters.is_empty());
        }
    }

    /// Stops offers to `framework` in `roles` (empty: all its roles). Roles it does not
    /// subscribe to are ignored.
    pub fn suppress(&mut self, framework: &str, roles: &[String]) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        let chosen = chosen_roles(&fw.roles, roles);
        fw.suppressed.extend(chosen);
    }

    /// Resumes offers to `framework` in `roles` (empty: all its roles) and clears all
    /// its refusal filters.
    pub fn revive(&mut self, framework: &str, roles: &[String]) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        for role in chosen_roles(&fw.roles, roles) {
            fw.suppressed.remove(&role);
        }
        fw.refused.clear();
    }

    /// Sets a role's weight. Weights must be finite and positive; anything else is
    /// ignored (the old weight stays), as Mesos rejects such weights.
    pub fn set_weight(&mut self, role: &str, weight: f64) {
        if !(weight.is_finite() && weight > 0.0) {
            tracing::warn!(role, weight, "invalid role weight ignored");
            return;
        }
        if weight == 1.0 {
            self.weights.remove(role);
        } else {
            self.weights.insert(role.to_string(), weight);
        }
    }

    /// A role's weight (1.0 unless set).
    pub fn weight(&self, role: &str) -> f64 {
        self.weights.get(role).copied().unwrap_or(1.0)
    }

    /// The sum of all agents' totals.
    pub fn cluster_total(&self) -> Scalars {
        let mut total = Scalars::new();
        for agent_total in self.agents.values() {
            add_into(&mut total, agent_total);
        }
        total
    }

    /// What `framework` holds in `role`, over all agents.
    pub fn allocation(&self, framework: &str, role: &str) -> Scalars {
        self.frameworks
            .get(framework)
            .map(|fw| fw.allocation_in(role))
            .unwrap_or_default()
    }

    /// The dominant share of a framework over all its roles: the largest, over resource
    /// names, of allocated / cluster total. 0.0 for unknown frameworks.
    pub fn dominant_share(&self, framework: &str) -> f64 {
        let Some(fw) = self.frameworks.get(framework) else {
            return 0.0;
        };
        let mut sum = Scalars::new();
        for role in fw.allocated.keys() {
            add_into(&mut sum, &fw.allocation_in(role));
        }
        share(&sum, &self.cluster_total())
    }

    /// The dominant share of everything allocated in `role`, not divided by its weight.
    pub fn role_share(&self, role: &str) -> f64 {
        let mut sum = Scalars::new();
        for fw in self.frameworks.values() {
            add_into(&mut sum, &fw.allocation_in(role));
        }
        share(&sum, &self.cluster_total())
    }

    /// Whether `framework` is refused `offered` of `agent` at `now`.
    pub fn is_filtered(
        &self,
        framework: &str,
        agent: &str,
        offered: &Scalars,
        now: Instant,
    ) -> bool {
        self.frameworks
            .get(framework)
            .is_some_and(|fw| fw.is_filtered(agent, &clean(offered), now))
    }

    /// Whether `framework` is suppressed in `role`.
    pub fn is_suppressed(&self, framework: &str, role: &str) -> bool {
        self.frameworks
            .get(framework)
            .is_some_and(|fw| fw.suppressed.contains(role))
    }

    /// One allocation cycle: for each agent in `available` (agent id -> its unallocated
    /// resources), the (framework, role) that should get all of it, if any. See the
    /// module doc for the rules. Records nothing.
    pub fn decide(&self, available: &BTreeMap<String, Scalars>, now: Instant) -> Vec<Decision> {
        let total = self.cluster_total();

        // Working copies of the allocations, grown by each decision of this cycle.
        let mut by_role: BTreeMap<&str, Scalars> = BTreeMap::new();
        let mut by_framework_role: BTreeMap<(&str, &str), Scalars> = BTreeMap::new();
        for (id, fw) in &self.frameworks {
            for role in fw.allocated.keys() {
                let amount = fw.allocation_in(role);
                add_into(by_role.entry(role.as_str()).or_default(), &amount);
                by_framework_role.insert((id.as_str(), role.as_str()), amount);
            }
        }
        let empty = Scalars::new();

        let mut decisions = Vec::new();
        for (agent, offered) in available {
            if !self.agents.contains_key(agent) {
                tracing::debug!(agent, "availability of an unknown agent skipped");
                continue;
            }
            let offered = clean(offered);
            if !is_allocatable(&offered) {
                continue;
            }

            // role -> its eligible frameworks (BTreeMaps, so ties resolve by name/id).
            let mut eligible: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (id, fw) in &self.frameworks {
                if fw.is_filtered(agent, &offered, now) {
                    continue;
                }
                for role in fw.roles.difference(&fw.suppressed) {
                    eligible.entry(role.as_str()).or_default().push(id.as_str());
                }
            }

            // `min_by` keeps the first of equal elements, i.e. the smallest name/id.
            let role = eligible
                .keys()
                .map(|role| {
                    let allocated = by_role.get(role).unwrap_or(&empty);
                    (*role, share(allocated, &total) / self.weight(role))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(role, _)| role);
            let Some(role) = role else {
                continue;
            };
            let framework = eligible
                .get(role)
                .into_iter()
                .flatten()
                .map(|id| {
                    let allocated = by_framework_role.get(&(*id, role)).unwrap_or(&empty);
                    (*id, share(allocated, &total))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(id, _)| id);
            let Some(framework) = framework else {
                continue;
            };

            add_into(by_role.entry(role).or_default(), &offered);
            add_into(
                by_framework_role.entry((framework, role)).or_default(),
                &offered,
            );
            tracing::trace!(agent, framework, role, "allocation decided");
            decisions.push(Decision {
                agent: agent.clone(),
                framework: framework.to_string(),
                role: role.to_string(),
            });
        }
        decisions
    }
}

/// Rounds to three decimal places, like Mesos's fixed-point scalar values.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `amount` with unusable quantities (negative, zero, NaN, infinite) left out, rounded.
fn clean(amount: &Scalars) -> Scalars {
    amount
        .iter()
        .map(|(name, v)| (name.clone(), round(*v)))
        // Rounding can overflow a huge value to infinity, so check after it.
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect()
}

/// Whether `whole` holds at least `part` of every resource (both cleaned).
fn contains(whole: &Scalars, part: &Scalars) -> bool {
    part.iter()
        .all(|(name, value)| whole.get(name).is_some_and(|have| have >= value))
}

fn add_into(target: &mut Scalars, amount: &Scalars) {
    for (name, value) in clean(amount) {
        let sum = target.entry(name).or_insert(0.0);
        *sum = round(*sum + value);
    }
}

/// Subtracts, flooring at zero and dropping names that reach zero.
fn sub_from(target: &mut Scalars, amount: &Scalars) {
    for (name, value) in clean(amount) {
        if let Some(held) = target.get_mut(&name) {
            *held = round(*held - value).max(0.0);
            if *held <= 0.0 {
                target.remove(&name);
            }
        }
    }
}

/// Dominant share of `allocated` in `total`; names absent from `total` do not count.
fn share(allocated: &Scalars, total: &Scalars) -> f64 {
    allocated
        .iter()
        .filter_map(|(name, value)| {
            let whole = total.get(name).copied().unwrap_or(0.0);
            (whole > 0.0).then(|| value / whole)
        })
        .fold(0.0, f64::max)
}

fn role_set(roles: &[String]) -> BTreeSet<String> {
    if roles.is_empty() {
        BTreeSet::from([DEFAULT_ROLE.to_string()])
    } else {
        roles.iter().cloned().collect()
    }
}

/// The subscribed roles a SUPPRESS or REVIVE names (all of them when it names none).
fn chosen_roles(subscribed: &BTreeSet<String>, named: &[String]) -> Vec<String> {
    if named.is_empty() {
        subscribed.iter().cloned().collect()
    } else {
        named
            .iter()
            .filter(|role| subscribed.contains(*role))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, f64)]) -> Scalars {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|r| r.to_string()).collect()
    }

    fn node() -> Scalars {
        s(&[("cpus", 4.0), ("mem", 4096.0), ("disk", 10000.0)])
    }

    /// A cluster of `n` equal agents named a0, a1, ...
    fn cluster(n: usize) -> Allocator {
        let mut alloc = Allocator::new();
        for i in 0..n {
            alloc.add_agent(&format!("a{i}"), node());
        }
        alloc
    }

    /// Every agent of `alloc` fully available.
    fn all_free(alloc: &Allocator) -> BTreeMap<String, Scalars> {
        alloc
            .agents
            .iter()
            .map(|(id, total)| (id.clone(), total.clone()))
            .collect()
    }

    fn d(agent: &str, framework: &str, role: &str) -> Decision {
        Decision {
            agent: agent.into(),
            framework: framework.into(),
            role: role.into(),
        }
    }

    /// Who got each agent, in agent order.
    fn winners(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().map(|d| d.framework.as_str()).collect()
    }

    #[test]
    fn lone_framework_gets_every_agent() {
        let mut alloc = cluster(3);
        alloc.add_framework("fw", &[]);
        let decisions = alloc.decide(&all_free(&alloc), Instant::now());
        assert_eq!(
            decisions,
            vec![d("a0", "fw", "*"), d("a1", "fw", "*"), d("a2", "fw", "*")]
        );
    }

    #[test]
    fn no_frameworks_no_decisions() {
        let alloc = cluster(2);
        assert!(alloc.decide(&all_free(&alloc), Instant::now()).is_empty());
    }

    #[test]
    fn two_equal_frameworks_split_agents() {
        let mut alloc = cluster(4);
        alloc.add_framework("b", &[]);
        alloc.add_framework("a", &[]);
        let decisions = alloc.decide(&all_free(&alloc), Instant::now());
        // Each decision raises the winner's share, so the other one goes next.
        assert_eq!(winners(&decisions), vec!["a", "b", "a", "b"]);

        let mut alloc = cluster(2);
        alloc.add_framework("a", &[]);
        alloc.add_framework("b", &[]);
        let decisions = alloc.decide(&all_free(&alloc), Instant::now());
        assert_eq!(winners(&decisions), vec!["a", "b"]);
    }

    #[test]
    fn drf_prefers_lower_dominant_share() {
        let mut alloc = cluster(2);
        alloc.add_framework("A", &[]);
        alloc.add_framework("B", &[]);
        // A holds 50% of the cpus (4 of 8), B 30% of the mem.
        alloc.allocate("A", "*", "a0", &s(&[("cpus", 4.0), ("mem", 100.0)]));
        alloc.allocate("B", "*", "a1", &s(&[("cpus", 0.5), ("mem", 2457.6)]));
        assert!((alloc.dominant_share("A") - 0.5).abs() < 1e-9);
        assert!((alloc.dominant_share("B") - 0.3).abs() < 1e-9);

        let mut free = BTreeMap::new();
        free.insert("a1".to_string(), s(&[("cpus", 3.5), ("mem", 100.0)]));
        assert_eq!(alloc.decide(&free, Instant::now()), vec![d("a1", "B", "*")]);
    }

    #[test]
    fn roles_ordered_by_weighted_share() {
        let mut alloc = cluster(10);
        alloc.add_framework("x", &roles(&["analytics"]));
        alloc.add_framework("y", &roles(&["batch"]));
        // analytics holds 40% of the cpus, batch 30%.
        alloc.allocate("x", "analytics", "a0", &s(&[("cpus", 16.0)]));
        alloc.allocate("y", "batch", "a1", &s(&[("cpus", 12.0)]));
        let mut free = BTreeMap::new();
        free.insert("a9".to_string(), node());

        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "y", "batch")]
        );

        // Weight 2 halves analytics' share to 20%, below batch's 30%.
        alloc.set_weight("analytics", 2.0);
        assert_eq!(alloc.weight("analytics"), 2.0);
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "x", "analytics")]
        );
    }

    #[test]
    fn role_share_is_the_sum_of_its_frameworks() {
        let mut alloc = cluster(10);
        // Two small frameworks in one role weigh as much as their sum.
        alloc.add_framework("p", &roles(&["prod"]));
        alloc.add_framework("q", &roles(&["prod"]));
        alloc.add_framework("z", &roles(&["test"]));
        alloc.allocate("p", "prod", "a0", &s(&[("cpus", 8.0)]));
        alloc.allocate("q", "prod", "a1", &s(&[("cpus", 8.0)]));
        alloc.allocate("z", "test", "a2", &s(&[("cpus", 12.0)]));
        assert!((alloc.role_share("prod") - 0.4).abs() < 1e-9);
        let mut free = BTreeMap::new();
        free.insert("a9".to_string(), node());
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "z", "test")]
        );
    }

    #[test]
    fn framework_in_two_roles_gets_the_lower_role() {
        let mut alloc = cluster(10);
        alloc.add_framework("m", &roles(&["r1", "r2"]));
        alloc.add_framework("other", &roles(&["r1"]));
        alloc.allocate("other", "r1", "a0", &s(&[("cpus", 4.0)]));
        let mut free = BTreeMap::new();
        free.insert("a9".to_string(), node());
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "m", "r2")]
        );
    }

    #[test]
    fn refuse_filter_excludes_agent_until_it_expires() {
        let t0 = Instant::now();
        let mut alloc = cluster(2);
        alloc.add_framework("a", &[]);
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(5));

        let free = all_free(&alloc);
        assert!(alloc.is_filtered("a", "a0", &node(), t0));
        assert_eq!(alloc.decide(&free, t0), vec![d("a1", "a", "*")]);
        let almost = t0 + Duration::from_millis(4999);
        assert_eq!(alloc.decide(&free, almost), vec![d("a1", "a", "*")]);
        // `until <= now` has expired.
        let at = t0 + Duration::from_secs(5);
        assert!(!alloc.is_filtered("a", "a0", &node(), at));
        assert_eq!(
            alloc.decide(&free, at),
            vec![d("a0", "a", "*"), d("a1", "a", "*")]
        );

        alloc.expire_filters(at);
        assert!(alloc.frameworks["a"].refused.is_empty());
    }

    #[test]
    fn filtered_agent_goes_to_another_framework() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.add_framework("b", &[]);
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(5));
        assert_eq!(alloc.decide(&all_free(&alloc), t0), vec![d("a0", "b", "*")]);
    }

    #[test]
    fn refuse_keeps_the_later_until() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(10));
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(1));
        assert!(alloc.is_filtered("a", "a0", &node(), t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_filter_holds_back_only_what_was_refused() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        // The mem left over once tasks took every cpu, declined for an hour.
        let remnant = s(&[("mem", 1024.0)]);
        alloc.refuse("a", "a0", &remnant, t0 + Duration::from_secs(3600));
        let on_a0 = |available: Scalars| BTreeMap::from([("a0".to_string(), available)]);
        assert!(alloc.decide(&on_a0(remnant.clone()), t0).is_empty());
        assert!(alloc.decide(&on_a0(s(&[("mem", 512.0)])), t0).is_empty());
        // A task ended: cpus are back, and the agent is offered again.
        let freed = s(&[("cpus", 1.0), ("mem", 1024.0)]);
        assert!(!alloc.is_filtered("a", "a0", &freed, t0));
        assert_eq!(alloc.decide(&on_a0(freed), t0), vec![d("a0", "a", "*")]);
        assert_eq!(
            alloc.decide(&on_a0(s(&[("mem", 2048.0)])), t0),
            vec![d("a0", "a", "*")]
        );
    }

    #[test]
    fn a_covering_filter_replaces_the_ones_it_covers() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        for i in 0..100 {
            alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(60 + i));
        }
        assert_eq!(alloc.frameworks["a"].refused["a0"].len(), 1);
        // A smaller or shorter one is kept beside it: each filter runs its own course.
        alloc.refuse(
            "a",
            "a0",
            &s(&[("mem", 1.0)]),
            t0 + Duration::from_secs(3600),
        );
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(1));
        assert_eq!(alloc.frameworks["a"].refused["a0"].len(), 3);
        assert!(alloc.is_filtered("a", "a0", &node(), t0 + Duration::from_secs(100)));
        assert!(!alloc.is_filtered("a", "a0", &node(), t0 + Duration::from_secs(200)));
    }

    #[test]
    fn revive_clears_filters() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.refuse("a", "a0", &node(), t0 + Duration::from_secs(3600));
        assert!(alloc.decide(&all_free(&alloc), t0).is_empty());
        alloc.revive("a", &[]);
        assert_eq!(alloc.decide(&all_free(&alloc), t0), vec![d("a0", "a", "*")]);
    }

    #[test]
    fn suppress_excludes_and_revive_restores() {
        let t0 = Instant::now();
        let mut alloc = cluster(2);
        alloc.add_framework("a", &[]);
        alloc.add_framework("b", &[]);
        alloc.suppress("a", &[]);
        assert!(alloc.is_suppressed("a", "*"));
        assert_eq!(
            winners(&alloc.decide(&all_free(&alloc), t0)),
            vec!["b", "b"]
        );

        alloc.revive("a", &[]);
        assert!(!alloc.is_suppressed("a", "*"));
        assert_eq!(
            winners(&alloc.decide(&all_free(&alloc), t0)),
            vec!["a", "b"]
        );

        // A lone suppressed framework gets nothing.
        alloc.remove_framework("b");
        alloc.suppress("a", &roles(&["*"]));
        assert!(alloc.decide(&all_free(&alloc), t0).is_empty());
    }

    #[test]
    fn suppress_one_role_of_many() {
        let t0 = Instant::now();
        let mut alloc = cluster(1);
        alloc.add_framework("m", &roles(&["r1", "r2"]));
        alloc.suppress("m", &roles(&["r1", "not-mine"]));
        assert!(!alloc.is_suppressed("m", "not-mine"));
        assert_eq!(
            alloc.decide(&all_free(&alloc), t0),
            vec![d("a0", "m", "r2")]
        );
        alloc.suppress("m", &roles(&["r2"]));
        assert!(alloc.decide(&all_free(&alloc), t0).is_empty());
        alloc.revive("m", &roles(&["r1"]));
        assert_eq!(
            alloc.decide(&all_free(&alloc), t0),
            vec![d("a0", "m", "r1")]
        );
    }

    #[test]
    fn non_allocatable_remainder_is_not_offered() {
        let mut alloc = cluster(4);
        alloc.add_framework("a", &[]);
        let mut free = BTreeMap::new();
        free.insert("a0".to_string(), s(&[("cpus", 0.005), ("mem", 10.0)]));
        free.insert("a1".to_string(), s(&[("cpus", 0.01)]));
        free.insert("a2".to_string(), s(&[("mem", 32.0)]));
        free.insert("a3".to_string(), s(&[("disk", 5000.0), ("gpus", 1.0)]));
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a1", "a", "*"), d("a2", "a", "*")]
        );
        // Floating-point leftovers are rounded like Mesos's fixed-point values.
        assert!(is_allocatable(&s(&[("cpus", 1.0 - 0.99)])));
        assert!(!is_allocatable(&Scalars::new()));
    }

    #[test]
    fn unknown_agent_in_available_is_skipped() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        let mut free = all_free(&alloc);
        free.insert("ghost".to_string(), node());
        assert_eq!(alloc.decide(&free, Instant::now()), vec![d("a0", "a", "*")]);
    }

    #[test]
    fn removing_a_framework_removes_its_share_from_its_role() {
        let mut alloc = cluster(10);
        alloc.add_framework("x", &roles(&["r1"]));
        alloc.add_framework("y", &roles(&["r2"]));
        alloc.allocate("x", "r1", "a0", &s(&[("cpus", 20.0)]));
        alloc.allocate("y", "r2", "a1", &s(&[("cpus", 4.0)]));
        alloc.add_framework("z", &roles(&["r1"]));
        let mut free = BTreeMap::new();
        free.insert("a9".to_string(), node());
        // r1 holds 50% through x, so r2 goes first.
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "y", "r2")]
        );

        alloc.remove_framework("x");
        assert_eq!(alloc.role_share("r1"), 0.0);
        assert_eq!(alloc.dominant_share("x"), 0.0);
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "z", "r1")]
        );
    }

    #[test]
    fn removing_an_agent_removes_its_allocations_and_filters() {
        let t0 = Instant::now();
        let mut alloc = cluster(3);
        alloc.add_framework("a", &[]);
        alloc.add_framework("b", &[]);
        alloc.allocate("a", "*", "a0", &node());
        alloc.allocate("b", "*", "a1", &s(&[("cpus", 1.0)]));
        alloc.refuse("b", "a0", &node(), t0 + Duration::from_secs(60));
        let mut free = BTreeMap::new();
        free.insert("a2".to_string(), node());
        assert_eq!(alloc.decide(&free, t0), vec![d("a2", "b", "*")]);

        alloc.remove_agent("a0");
        assert_eq!(alloc.dominant_share("a"), 0.0);
        assert_eq!(
            alloc.cluster_total(),
            s(&[("cpus", 8.0), ("mem", 8192.0), ("disk", 20000.0)])
        );
        assert!((alloc.dominant_share("b") - 0.125).abs() < 1e-9);
        assert_eq!(alloc.decide(&free, t0), vec![d("a2", "a", "*")]);

        // The filter went with the agent: a re-registered agent is offered to b again.
        alloc.remove_framework("a");
        alloc.add_agent("a0", node());
        assert!(!alloc.is_filtered("b", "a0", &node(), t0));
        let mut free = BTreeMap::new();
        free.insert("a0".to_string(), node());
        assert_eq!(alloc.decide(&free, t0), vec![d("a0", "b", "*")]);
    }

    #[test]
    fn recover_never_goes_negative() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.allocate("a", "*", "a0", &s(&[("cpus", 1.0), ("mem", 512.0)]));
        alloc.recover(
            "a",
            "*",
            "a0",
            &s(&[("cpus", 3.0), ("mem", 256.0), ("gpus", 1.0)]),
        );
        assert_eq!(alloc.allocation("a", "*"), s(&[("mem", 256.0)]));
        alloc.recover("a", "*", "a0", &s(&[("mem", 1000.0)]));
        assert!(alloc.allocation("a", "*").is_empty());
        assert_eq!(alloc.dominant_share("a"), 0.0);
        // Nothing held any more: further recovers, and unknown ids, are no-ops.
        alloc.recover("a", "*", "a0", &s(&[("cpus", 1.0)]));
        alloc.recover("ghost", "*", "a0", &s(&[("cpus", 1.0)]));
        alloc.recover("a", "other", "nowhere", &s(&[("cpus", 1.0)]));
        assert!(alloc.allocation("a", "*").is_empty());
    }

    #[test]
    fn allocate_then_recover_returns_exactly_to_zero() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        for amount in [0.1, 0.2, 0.3] {
            alloc.allocate("a", "*", "a0", &s(&[("cpus", amount)]));
        }
        alloc.recover("a", "*", "a0", &s(&[("cpus", 0.6)]));
        assert!(alloc.allocation("a", "*").is_empty());
    }

    #[test]
    fn allocations_for_unknown_ids_are_ignored() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.allocate("a", "*", "ghost", &node());
        alloc.allocate("ghost", "*", "a0", &node());
        alloc.allocate("a", "*", "a0", &s(&[("cpus", -1.0), ("mem", f64::NAN)]));
        assert_eq!(alloc.dominant_share("a"), 0.0);
        assert_eq!(alloc.dominant_share("ghost"), 0.0);
    }

    #[test]
    fn decide_is_deterministic_regardless_of_insertion_order() {
        let build = |order: &[&str]| {
            let mut alloc = Allocator::new();
            for agent in order {
                alloc.add_agent(agent, node());
            }
            for fw in order.iter().rev() {
                alloc.add_framework(&format!("fw-{agent}", agent = fw), &[]);
            }
            alloc
        };
        let one = build(&["n1", "n2", "n3", "n4", "n5"]);
        let two = build(&["n5", "n3", "n1", "n4", "n2"]);
        let now = Instant::now();
        let first = one.decide(&all_free(&one), now);
        assert_eq!(first, one.decide(&all_free(&one), now));
        assert_eq!(first, two.decide(&all_free(&two), now));
        assert_eq!(
            winners(&first),
            vec!["fw-n1", "fw-n2", "fw-n3", "fw-n4", "fw-n5"]
        );
    }

    #[test]
    fn framework_without_roles_is_in_the_default_role() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        assert_eq!(
            alloc.frameworks["a"].roles,
            BTreeSet::from(["*".to_string()])
        );
        alloc.update_framework_roles("a", &roles(&["web"]));
        alloc.update_framework_roles("a", &[]);
        assert_eq!(
            alloc.decide(&all_free(&alloc), Instant::now()),
            vec![d("a0", "a", "*")]
        );
    }

    #[test]
    fn leaving_a_role_stops_offers_but_keeps_its_share() {
        let mut alloc = cluster(10);
        alloc.add_framework("a", &roles(&["old"]));
        alloc.add_framework("b", &roles(&["old"]));
        alloc.add_framework("c", &roles(&["new"]));
        alloc.allocate("a", "old", "a0", &s(&[("cpus", 4.0)]));
        alloc.suppress("a", &[]);
        alloc.update_framework_roles("a", &roles(&["new"]));
        // The suppression was for a role a left.
        assert!(!alloc.is_suppressed("a", "old"));
        // "old" still holds a's 10%, so "new" (0%) goes first, and within it a and c
        // (both 0% in "new") tie, broken by id.
        assert!((alloc.role_share("old") - 0.1).abs() < 1e-9);
        let mut free = BTreeMap::new();
        free.insert("a9".to_string(), node());
        assert_eq!(
            alloc.decide(&free, Instant::now()),
            vec![d("a9", "a", "new")]
        );
        alloc.recover("a", "old", "a0", &s(&[("cpus", 4.0)]));
        assert_eq!(alloc.role_share("old"), 0.0);
    }

    #[test]
    fn agent_total_updates_change_shares() {
        let mut alloc = cluster(1);
        alloc.add_framework("a", &[]);
        alloc.allocate("a", "*", "a0", &s(&[("cpus", 2.0)]));
        assert!((alloc.dominant_share("a") - 0.5).abs() < 1e-9);
        alloc.update_agent("a0", s(&[("cpus", 8.0), ("mem", 4096.0)]));
        assert!((alloc.dominant_share("a") - 0.25).abs() < 1e-9);
        alloc.update_agent("ghost", node());
        assert_eq!(alloc.cluster_total(), s(&[("cpus", 8.0), ("mem", 4096.0)]));
    }

    #[test]
    fn invalid_weights_are_ignored() {
        let mut alloc = Allocator::new();
        alloc.set_weight("r", 3.0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            alloc.set_weight("r", bad);
        }
        assert_eq!(alloc.weight("r"), 3.0);
        alloc.set_weight("r", 1.0);
        assert_eq!(alloc.weight("r"), 1.0);
        assert_eq!(alloc.weight("unset"), 1.0);
    }

    #[test]
    fn refuse_timeout_follows_mesos() {
        assert_eq!(refuse_timeout(None), Duration::from_secs(5));
        assert_eq!(refuse_timeout(Some(-3.0)), Duration::from_secs(5));
        assert_eq!(refuse_timeout(Some(f64::NAN)), Duration::from_secs(5));
        assert_eq!(refuse_timeout(Some(0.0)), Duration::ZERO);
        assert_eq!(refuse_timeout(Some(1.5)), Duration::from_millis(1500));
        assert_eq!(
            refuse_timeout(Some(1e300)),
            Duration::from_secs(365 * 24 * 3600)
        );
        assert_eq!(
            refuse_timeout(Some(f64::INFINITY)),
            Duration::from_secs(365 * 24 * 3600)
        );
    }
}
