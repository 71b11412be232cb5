//! Workload attribution: from the cgroup id of an event to a [`profiles::Workload`].

pub mod cgroup;
pub mod container;

use std::collections::HashMap;
use std::path::PathBuf;

use profiles::Workload;

use self::cgroup::CgroupResolver;

/// Attributes cgroup ids to workloads, caching each resolved id.
///
/// Ids that do not resolve are not cached, so a cgroup that is missed once (created after the
/// last walk) is attributed properly once the resolver walks again.
#[derive(Debug)]
pub struct Attributor {
    resolver: CgroupResolver,
    cache: HashMap<u64, Workload>,
}

impl Attributor {
    /// An attributor for the cgroup2 tree mounted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self::with_resolver(CgroupResolver::new(root))
    }

    /// An attributor using a configured resolver.
    pub fn with_resolver(resolver: CgroupResolver) -> Self {
        Self {
            resolver,
            cache: HashMap::new(),
        }
    }

    /// The resolver, e.g. to list the cgroups below a path.
    pub fn resolver(&self) -> &CgroupResolver {
        &self.resolver
    }

    /// The workload of cgroup `cgroup_id`.
    pub fn workload(&mut self, cgroup_id: u64) -> Workload {
        if let Some(workload) = self.cache.get(&cgroup_id) {
            return workload.clone();
        }
        match self.resolver.resolve(cgroup_id) {
            Some(path) => {
                let workload = describe(cgroup_id, &path);
                self.cache.insert(cgroup_id, workload.clone());
                workload
            }
            None => describe(cgroup_id, ""),
        }
    }

    /// Drops everything cached about `cgroup_id` (e.g. once the cgroup is removed).
    pub fn forget(&mut self, cgroup_id: u64) {
        self.cache.remove(&cgroup_id);
        self.resolver.forget(cgroup_id);
    }
}

/// The workload of cgroup `cgroup_id` at `path` (relative to the mount; empty when unknown).
pub fn describe(cgroup_id: u64, path: &str) -> Workload {
    let info = container::parse(path);
    Workload {
        id: match path {
            "" => format!("cgroup:{cgroup_id}"),
            _ => path.to_owned(),
        },
        cgroup_id,
        cgroup: path.to_owned(),
        runtime: info.as_ref().map(|i| i.runtime.as_str().to_owned()),
        container_id: info.as_ref().map(|i| i.container_id.clone()),
        pod_uid: info.and_then(|i| i.pod_uid),
        unit: container::systemd_unit(path),
        k8s: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    const ID: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";

    fn temp_tree(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("baseliner-attr-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn describes_host_and_container_cgroups() {
        let root = describe(1, "/");
        assert_eq!(root.id, "/");
        assert_eq!(root.cgroup, "/");
        assert_eq!(root.unit, None);
        assert_eq!(root.runtime, None);

        let session = describe(7, "/user.slice/user-0.slice/session-3.scope");
        assert_eq!(session.id, "/user.slice/user-0.slice/session-3.scope");
        assert_eq!(session.unit.as_deref(), Some("session-3.scope"));
        assert_eq!(session.container_id, None);

        let path = format!(
            "/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-{ID}.scope"
        );
        let pod = describe(9, &path);
        assert_eq!(pod.id, path);
        assert_eq!(pod.cgroup_id, 9);
        assert_eq!(pod.runtime.as_deref(), Some("containerd"));
        assert_eq!(pod.container_id.as_deref(), Some(ID));
        assert_eq!(
            pod.pod_uid.as_deref(),
            Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789")
        );
        assert_eq!(
            pod.unit.as_deref(),
            Some(format!("cri-containerd-{ID}.scope").as_str())
        );
    }

    #[test]
    fn unresolved_id_is_named_by_number() {
        let w = describe(42, "");
        assert_eq!(w.id, "cgroup:42");
        assert_eq!(w.cgroup, "");
        assert_eq!(w.unit, None);
        assert_eq!(w.container_id, None);
    }

    #[test]
    fn attributes_cached_and_late_cgroups() {
        let dir = temp_tree("attributor");
        let scope = dir.join(format!("system.slice/docker-{ID}.scope"));
        fs::create_dir_all(&scope).unwrap();
        let id = cgroup::cgroup_id(&scope).unwrap();
        let resolver = CgroupResolver::new(dir.clone()).with_negative_ttl(Duration::ZERO);
        let mut attributor = Attributor::with_resolver(resolver);
        assert_eq!(attributor.resolver().root(), dir.as_path());

        let w = attributor.workload(id);
        assert_eq!(w.id, format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(w.runtime.as_deref(), Some("docker"));
        assert_eq!(w.container_id.as_deref(), Some(ID));

        // Cached: still attributed after the directory is gone, until forgotten.
        fs::remove_dir(&scope).unwrap();
        assert_eq!(attributor.workload(id), w);
        attributor.forget(id);
        assert_eq!(attributor.workload(id).id, format!("cgroup:{id}"));

        // A miss is not cached: a cgroup missed within the TTL is attributed on a later call.
        let resolver =
            CgroupResolver::new(dir.clone()).with_negative_ttl(Duration::from_millis(100));
        let mut attributor = Attributor::with_resolver(resolver);
        assert_eq!(
            attributor.workload(u64::MAX).id,
            format!("cgroup:{}", u64::MAX)
        );
        let late = dir.join("system.slice/late.service");
        fs::create_dir_all(&late).unwrap();
        let late_id = cgroup::cgroup_id(&late).unwrap();
        assert_eq!(attributor.workload(late_id).cgroup, "");
        std::thread::sleep(Duration::from_millis(150));
        let w = attributor.workload(late_id);
        assert_eq!(w.id, "/system.slice/late.service");
        assert_eq!(w.unit.as_deref(), Some("late.service"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
