//! Container, pod and systemd-unit attribution from the shape of a cgroup path.
//!
//! Only the path is used: nothing asks a container runtime. Components are searched from the
//! innermost outwards, so a container tree nested under another prefix (kind, k3s, a container
//! with its own sub-cgroups) is recognised wherever it sits.

use std::fmt;

/// Container runtime that named a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd (CRI plugin, `cri-containerd-<id>.scope`, or a bare id below a pod).
    Containerd,
    /// CRI-O (`crio-<id>.scope`).
    Crio,
    /// Docker (`docker-<id>.scope`, or `/docker/<id>`).
    Docker,
    /// Podman (`libpod-<id>.scope`).
    Podman,
}

impl Runtime {
    /// The lower-case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a cgroup path says about the container that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Runtime that created the cgroup.
    pub runtime: Runtime,
    /// Full container id (64 lower-case hex digits).
    pub container_id: String,
    /// Kubernetes pod UID (with dashes), when the container sits in a pod cgroup.
    pub pod_uid: Option<String>,
}

/// What one path component is.
enum Component {
    /// A container's own cgroup.
    Container(Runtime, String, Option<String>),
    /// A runtime's monitor process cgroup (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`).
    Monitor,
    /// Anything else.
    Other,
}

/// The container that owns `cgroup_path` (relative to the cgroup2 mount), if any.
///
/// Returns `None` for the conmon monitor cgroups of CRI-O and Podman: conmon runs beside the
/// container, not in it, and must not add to the container's profile.
pub fn parse(cgroup_path: &str) -> Option<ContainerInfo> {
    let parts: Vec<&str> = cgroup_path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let above = &parts[..i];
        match classify(part, above) {
            Component::Container(runtime, container_id, pod_uid) => {
                let pod_uid = pod_uid.or_else(|| above.iter().rev().find_map(|c| pod_uid_of(c)));
                return Some(ContainerInfo {
                    runtime,
                    container_id,
                    pod_uid,
                });
            }
            Component::Monitor => return None,
            Component::Other => {}
        }
    }
    None
}

/// Classifies one path component; `above` are the components between the mount and it.
fn classify(part: &str, above: &[&str]) -> Component {
    // containerd's systemd driver inside a cgroupfs parent: `<pod slice>:cri-containerd:<id>`.
    if let Some((slice, rest)) = part.split_once(':') {
        let Some((kind, id)) = rest.split_once(':') else {
            return Component::Other;
        };
        let runtime = match kind {
            "cri-containerd" => Runtime::Containerd,
            "crio" => Runtime::Crio,
            "docker" => Runtime::Docker,
            "libpod" => Runtime::Podman,
            _ => return Component::Other,
        };
        if !is_container_id(id) {
            return Component::Other;
        }
        return Component::Container(runtime, id.to_owned(), pod_uid_of(slice));
    }

    let base = part.strip_suffix(".scope").unwrap_or(part);
    for monitor in ["crio-conmon-", "libpod-conmon-"] {
        if base.strip_prefix(monitor).is_some_and(is_container_id) {
            return Component::Monitor;
        }
    }
    let prefixed = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, runtime) in prefixed {
        if let Some(id) = base.strip_prefix(prefix).filter(|id| is_container_id(id)) {
            return Component::Container(runtime, id.to_owned(), None);
        }
    }

    // cgroupfs drivers name the container cgroup by its bare id.
    if is_container_id(part) {
        if above.last() == Some(&"docker") {
            return Component::Container(Runtime::Docker, part.to_owned(), None);
        }
        if let Some(pod) = above.iter().rev().find_map(|c| pod_uid_of(c)) {
            return Component::Container(Runtime::Containerd, part.to_owned(), Some(pod));
        }
    }
    Component::Other
}

/// The pod UID named by a pod cgroup: `kubepods[-<qos>]-pod<uid_with_underscores>.slice`
/// (systemd driver, any prefix such as `kubelet-`) or `pod<uid>` (cgroupfs driver).
fn pod_uid_of(part: &str) -> Option<String> {
    let uid = match part.strip_suffix(".slice") {
        Some(slice) if slice.contains("kubepods") => slice.rsplit_once("-pod")?.1.replace('_', "-"),
        Some(_) => return None,
        None => part.strip_prefix("pod")?.to_owned(),
    };
    is_pod_uid(&uid).then_some(uid)
}

/// A container id: exactly 64 lower-case hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod UID: a UUID (8-4-4-4-12 hex digits), or the 32 hex digits of a static pod's config hash.
fn is_pod_uid(s: &str) -> bool {
    let hex = |g: &str, n: usize| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit());
    let groups: Vec<&str> = s.split('-').collect();
    match groups.as_slice() {
        [a, b, c, d, e] => hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12),
        [whole] => hex(whole, 32),
        _ => false,
    }
}

/// The innermost systemd unit (`.service`, `.scope` or `.slice`) on `cgroup_path`, container
/// scopes included (`docker-<id>.scope`); `None` when the path holds no unit.
pub fn systemd_unit(cgroup_path: &str) -> Option<String> {
    cgroup_path
        .split('/')
        .rev()
        .find(|part| {
            [".service", ".scope", ".slice"]
                .iter()
                .any(|suffix| part.len() > suffix.len() && part.ends_with(suffix))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    const UID_SYSTEMD: &str = "0a1b2c3d_4e5f_6789_abcd_ef0123456789";

    fn info(runtime: Runtime, pod_uid: Option<&str>) -> Option<ContainerInfo> {
        Some(ContainerInfo {
            runtime,
            container_id: ID.to_owned(),
            pod_uid: pod_uid.map(str::to_owned),
        })
    }

    #[test]
    fn containerd_systemd_driver_all_qos_classes() {
        let burstable = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
        );
        let guaranteed =
            format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope");
        let besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
        );
        for path in [burstable, guaranteed, besteffort] {
            assert_eq!(parse(&path), info(Runtime::Containerd, Some(UID)), "{path}");
        }
    }

    #[test]
    fn containerd_cgroupfs_driver() {
        let burstable = format!("/kubepods/burstable/pod{UID}/{ID}");
        let guaranteed = format!("/kubepods/pod{UID}/{ID}/");
        for path in [burstable, guaranteed] {
            assert_eq!(parse(&path), info(Runtime::Containerd, Some(UID)), "{path}");
        }
    }

    #[test]
    fn crio_container_and_conmon() {
        let pod = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice"
        );
        assert_eq!(
            parse(&format!("{pod}/crio-{ID}.scope")),
            info(Runtime::Crio, Some(UID))
        );
        assert_eq!(parse(&format!("{pod}/crio-conmon-{ID}.scope")), None);
        assert_eq!(
            parse(&format!("/kubepods/besteffort/pod{UID}/crio-{ID}")),
            info(Runtime::Crio, Some(UID))
        );
    }

    #[test]
    fn docker_both_drivers() {
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope")),
            info(Runtime::Docker, None)
        );
        assert_eq!(parse(&format!("/docker/{ID}")), info(Runtime::Docker, None));
        // A container running its own systemd keeps its sub-cgroups under the scope.
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope/init.scope")),
            info(Runtime::Docker, None)
        );
    }

    #[test]
    fn podman_system_rootless_and_nested() {
        let paths = [
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
        ];
        for path in paths {
            assert_eq!(parse(&path), info(Runtime::Podman, None), "{path}");
        }
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn kubepods_nested_below_other_prefixes() {
        let k3s = format!("/system.slice/containerd.service/kubepods/besteffort/pod{UID}/{ID}");
        let kind = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
        );
        let kind_in_docker = format!("/system.slice/docker-{}.scope{kind}", "1".repeat(64));
        let colon = format!(
            "/system.slice/containerd.service/kubepods-besteffort-pod{UID_SYSTEMD}.slice:cri-containerd:{ID}"
        );
        for path in [k3s, kind, kind_in_docker, colon] {
            assert_eq!(parse(&path), info(Runtime::Containerd, Some(UID)), "{path}");
        }
    }

    #[test]
    fn static_pod_uid_is_a_config_hash() {
        let hash = "3e1d1a2b4c5d6e7f8091a2b3c4d5e6f7";
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(parse(&path), info(Runtime::Containerd, Some(hash)));
    }

    #[test]
    fn invalid_pod_uid_is_dropped() {
        let path = format!("/kubepods.slice/kubepods-podnot_a_uid.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse(&path), info(Runtime::Containerd, None));
        // A bare id needs a pod (or `docker`) parent to count as a container.
        assert_eq!(parse(&format!("/kubepods/podnot-a-uid/{ID}")), None);
    }

    #[test]
    fn rejects_malformed_ids_and_ordinary_units() {
        let upper = ID.to_uppercase();
        let short = &ID[..63];
        let long = format!("{ID}0");
        let paths = [
            "/".to_owned(),
            String::new(),
            "/system.slice/nginx.service".to_owned(),
            "/system.slice/docker.service".to_owned(),
            "/system.slice/containerd.service".to_owned(),
            "/system.slice/docker-cleanup.scope".to_owned(),
            "/system.slice/crio-wipe.service".to_owned(),
            "/user.slice/user-0.slice/session-3.scope".to_owned(),
            format!("/system.slice/docker-{upper}.scope"),
            format!("/system.slice/docker-{short}.scope"),
            format!("/system.slice/docker-{long}.scope"),
            format!("/docker/{short}"),
            format!("/{ID}"),
            format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice"),
        ];
        for path in paths {
            assert_eq!(parse(&path), None, "{path}");
        }
    }

    #[test]
    fn runtime_names() {
        assert_eq!(Runtime::Containerd.as_str(), "containerd");
        assert_eq!(Runtime::Crio.as_str(), "crio");
        assert_eq!(Runtime::Docker.as_str(), "docker");
        assert_eq!(Runtime::Podman.to_string(), "podman");
    }

    #[test]
    fn systemd_units() {
        let cases = [
            ("/system.slice/nginx.service", Some("nginx.service")),
            (
                "/user.slice/user-0.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            (
                "/user.slice/user-0.slice/user@0.service/app.slice/",
                Some("app.slice"),
            ),
            (
                "/user.slice/user-0.slice/user@0.service",
                Some("user@0.service"),
            ),
            (
                "/machine.slice/libpod-x.scope/container",
                Some("libpod-x.scope"),
            ),
            ("/", None),
            ("", None),
            ("/docker/abc", None),
            ("/weird/.scope", None),
        ];
        for (path, unit) in cases {
            assert_eq!(systemd_unit(path).as_deref(), unit, "{path}");
        }
        let docker = format!("docker-{ID}.scope");
        assert_eq!(
            systemd_unit(&format!("/system.slice/{docker}")),
            Some(docker)
        );
    }
}
