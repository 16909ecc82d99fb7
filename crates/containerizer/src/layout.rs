//! Where a container lives: its cgroup, its leaf, its sandbox. Pure path arithmetic.
//!
//! ```text
//! <cgroups_root>/<id>                          limits of the container
//! <cgroups_root>/<id>/leaf                     its processes (supervisor and workload)
//! <cgroups_root>/<id>/containers/<child>/...   nested containers, same shape
//! ```
//! cgroup v2 forbids processes in a cgroup that has enabled controllers for children, so
//! processes always sit in `leaf` and `containers/` holds only cgroups.
//!
//! Under systemd a top-level container is the scope `holdfast-<id>.scope` in the
//! containers' slice, and the same shape sits one level below the scope (systemd owns the
//! scope's own cgroup):
//!
//! ```text
//! <slice path>/holdfast-<id>.scope/container                         limits
//! <slice path>/holdfast-<id>.scope/container/leaf                    processes
//! <slice path>/holdfast-<id>.scope/container/containers/<child>/...  nested
//! ```

use std::path::{Path, PathBuf};

use holdfast_api::v1::{validate_id_component, ContainerId};

pub const LEAF: &str = "leaf";
pub const NESTED: &str = "containers";
/// The container's own cgroup inside its scope.
pub const SCOPE_CONTAINER: &str = "container";
const SCOPE_PREFIX: &str = "holdfast-";
const SCOPE_SUFFIX: &str = ".scope";

/// The container's cgroup, relative to the hierarchy's mount.
pub fn cgroup_path(root: &Path, id: &ContainerId) -> PathBuf {
    let mut p = root.to_path_buf();
    for (i, part) in id.path().into_iter().enumerate() {
        if i > 0 {
            p.push(NESTED);
        }
        p.push(part);
    }
    p
}

pub fn leaf_path(root: &Path, id: &ContainerId) -> PathBuf {
    cgroup_path(root, id).join(LEAF)
}

/// The scope of the top-level container `id` (or of the top-level ancestor of a nested
/// one). Characters a unit name cannot hold are `\xNN`-escaped, as systemd does.
pub fn scope_name(id: &ContainerId) -> String {
    let top = id.path().into_iter().next().unwrap_or_default();
    format!(
        "{SCOPE_PREFIX}{}{SCOPE_SUFFIX}",
        holdfast_systemd::names::escape_unit_component(top)
    )
}

/// The top-level container id a scope name stands for, if it is one of ours.
pub fn scope_container(unit: &str) -> Option<String> {
    let escaped = unit
        .strip_prefix(SCOPE_PREFIX)?
        .strip_suffix(SCOPE_SUFFIX)?;
    let id = holdfast_systemd::names::unescape_unit_component(escaped)?;
    validate_id_component(&id).ok()?;
    Some(id)
}

/// The container's cgroup under systemd: in its top-level ancestor's scope.
pub fn scoped_cgroup_path(slice_path: &Path, id: &ContainerId) -> PathBuf {
    let mut p = slice_path.join(scope_name(id)).join(SCOPE_CONTAINER);
    for part in id.path().into_iter().skip(1) {
        p.push(NESTED);
        p.push(part);
    }
    p
}

/// The sandbox of a standalone container, `<work_dir>/containers/<id>`; a nested one sits
/// in its parent's sandbox under `containers/<child>`, as in Mesos.
pub fn sandbox_path(work_dir: &Path, id: &ContainerId) -> PathBuf {
    let mut p = work_dir.to_path_buf();
    for part in id.path() {
        p.push(NESTED);
        p.push(part);
    }
    p
}

/// What a walk of the cgroup tree found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeScan {
    /// Containers found, parents before children.
    pub containers: Vec<ContainerId>,
    /// The cgroup of each of `containers`, in the same order.
    pub cgroups: Vec<PathBuf>,
    /// Entries under the root (or under a `containers/` dir) whose name is not a
    /// container id: relative paths, for destruction as unknown.
    pub foreign: Vec<PathBuf>,
}

/// Walks the tree below `root` through `list(path) -> child names` (the caller supplies the
/// filesystem). `root` itself is not a container.
pub fn scan_tree<E>(
    root: &Path,
    list: &mut dyn FnMut(&Path) -> Result<Vec<String>, E>,
) -> Result<TreeScan, E> {
    let mut scan = TreeScan::default();
    let mut top = list(root)?;
    top.sort();
    for name in top {
        scan_container(root, &name, None, list, &mut scan)?;
    }
    Ok(scan)
}

fn scan_container<E>(
    dir: &Path,
    name: &str,
    parent: Option<&ContainerId>,
    list: &mut dyn FnMut(&Path) -> Result<Vec<String>, E>,
    scan: &mut TreeScan,
) -> Result<(), E> {
    let path = dir.join(name);
    if validate_id_component(name).is_err() {
        scan.foreign.push(path);
        return Ok(());
    }
    let id = match parent {
        Some(p) => p.child(name),
        None => ContainerId::new(name),
    };
    scan.containers.push(id.clone());
    scan.cgroups.push(path.clone());
    scan_nested(&path, &id, list, scan)
}

/// Walks the scopes of the containers' slice at `slice_path`. Units that are not
/// Holdfast's scopes are someone else's and are left out of the scan.
pub fn scan_scopes<E>(
    slice_path: &Path,
    list: &mut dyn FnMut(&Path) -> Result<Vec<String>, E>,
) -> Result<TreeScan, E> {
    let mut scan = TreeScan::default();
    let mut units = list(slice_path)?;
    units.sort();
    for unit in units {
        let Some(top) = scope_container(&unit) else {
            continue;
        };
        let id = ContainerId::new(top);
        let path = slice_path.join(&unit).join(SCOPE_CONTAINER);
        scan.containers.push(id.clone());
        scan.cgroups.push(path.clone());
        scan_nested(&path, &id, list, &mut scan)?;
    }
    Ok(scan)
}

fn scan_nested<E>(
    path: &Path,
    id: &ContainerId,
    list: &mut dyn FnMut(&Path) -> Result<Vec<String>, E>,
    scan: &mut TreeScan,
) -> Result<(), E> {
    let children = list(path)?;
    if children.iter().any(|c| c == NESTED) {
        let nested_dir = path.join(NESTED);
        let mut nested = list(&nested_dir)?;
        nested.sort();
        for child in nested {
            scan_container(&nested_dir, &child, Some(id), list, scan)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn paths() {
        let id = ContainerId::new("a").child("b");
        assert_eq!(
            cgroup_path(Path::new("hf"), &id),
            PathBuf::from("hf/a/containers/b")
        );
        assert_eq!(
            leaf_path(Path::new("hf"), &id),
            PathBuf::from("hf/a/containers/b/leaf")
        );
        assert_eq!(
            sandbox_path(Path::new("/w"), &id),
            PathBuf::from("/w/containers/a/containers/b")
        );
    }

    /// A directory listing from a map of path to children.
    fn lister<'a>(
        tree: &'a BTreeMap<&str, Vec<&str>>,
    ) -> impl FnMut(&Path) -> Result<Vec<String>, ()> + 'a {
        move |p: &Path| {
            Ok(tree
                .get(p.to_str().expect("utf8"))
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default())
        }
    }

    #[test]
    fn scoped_paths() {
        let id = ContainerId::new("a-1").child("b");
        assert_eq!(scope_name(&id), "holdfast-a-1.scope");
        assert_eq!(
            scoped_cgroup_path(Path::new("hf.slice"), &id),
            PathBuf::from("hf.slice/holdfast-a-1.scope/container/containers/b")
        );
        assert_eq!(
            scoped_cgroup_path(Path::new("hf.slice"), &ContainerId::new("a")),
            PathBuf::from("hf.slice/holdfast-a.scope/container")
        );
        assert_eq!(
            scope_container("holdfast-a-1.scope").as_deref(),
            Some("a-1")
        );
        // Escaped characters come back.
        let odd = ContainerId::new("x@y");
        assert_eq!(scope_container(&scope_name(&odd)).as_deref(), Some("x@y"));
        assert_eq!(scope_container("other.scope"), None);
        assert_eq!(scope_container("holdfast-a.service"), None);
    }

    #[test]
    fn scope_scan_finds_containers_and_skips_other_units() {
        let tree: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            (
                "s.slice",
                vec!["holdfast-a.scope", "cron.service", "holdfast-z.scope"],
            ),
            (
                "s.slice/holdfast-a.scope/container",
                vec!["leaf", "containers"],
            ),
            ("s.slice/holdfast-a.scope/container/containers", vec!["b"]),
            (
                "s.slice/holdfast-a.scope/container/containers/b",
                vec!["leaf"],
            ),
        ]);
        let mut list = lister(&tree);
        let scan = scan_scopes(Path::new("s.slice"), &mut list).expect("scan");
        assert_eq!(
            scan.containers,
            vec![
                ContainerId::new("a"),
                ContainerId::new("a").child("b"),
                ContainerId::new("z")
            ]
        );
        assert_eq!(
            scan.cgroups,
            vec![
                PathBuf::from("s.slice/holdfast-a.scope/container"),
                PathBuf::from("s.slice/holdfast-a.scope/container/containers/b"),
                PathBuf::from("s.slice/holdfast-z.scope/container"),
            ]
        );
        assert!(scan.foreign.is_empty());
    }

    #[test]
    fn scan_maps_paths_back_to_ids() {
        let tree: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("hf", vec!["a", "z", "bad name"]),
            ("hf/a", vec!["leaf", "containers"]),
            ("hf/a/containers", vec!["b"]),
            ("hf/a/containers/b", vec!["leaf"]),
            ("hf/z", vec![]),
        ]);
        let mut list = lister(&tree);
        let scan = scan_tree(Path::new("hf"), &mut list).expect("scan");
        assert_eq!(
            scan.containers,
            vec![
                ContainerId::new("a"),
                ContainerId::new("a").child("b"),
                ContainerId::new("z")
            ]
        );
        assert_eq!(scan.foreign, vec![PathBuf::from("hf/bad name")]);
    }
}
