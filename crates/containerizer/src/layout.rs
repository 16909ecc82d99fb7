//! Where a container lives: its cgroup, its leaf, its sandbox. Pure path arithmetic.
//!
//! ```text
//! <cgroups_root>/<id>                          limits of the container
//! <cgroups_root>/<id>/leaf                     its processes (supervisor and workload)
//! <cgroups_root>/<id>/containers/<child>/...   nested containers, same shape
//! ```
//! cgroup v2 forbids processes in a cgroup that has enabled controllers for children, so
//! processes always sit in `leaf` and `containers/` holds only cgroups.

use std::path::{Path, PathBuf};

use holdfast_api::v1::{validate_id_component, ContainerId};

pub const LEAF: &str = "leaf";
pub const NESTED: &str = "containers";

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
    let children = list(&path)?;
    if children.iter().any(|c| c == NESTED) {
        let nested_dir = path.join(NESTED);
        let mut nested = list(&nested_dir)?;
        nested.sort();
        for child in nested {
            scan_container(&nested_dir, &child, Some(&id), list, scan)?;
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

    #[test]
    fn scan_maps_paths_back_to_ids() {
        let tree: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("hf", vec!["a", "z", "bad name"]),
            ("hf/a", vec!["leaf", "containers"]),
            ("hf/a/containers", vec!["b"]),
            ("hf/a/containers/b", vec!["leaf"]),
            ("hf/z", vec![]),
        ]);
        let mut list = |p: &Path| -> Result<Vec<String>, ()> {
            Ok(tree
                .get(p.to_str().expect("utf8"))
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default())
        };
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
