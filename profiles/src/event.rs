//! The event contract: one JSON object per line (JSONL), documented in `datasets/README.md`.
//!
//! Treat every field as public: extend the schema, never change a field's meaning. A change that
//! breaks readers bumps [`SCHEMA_VERSION`].

use std::{collections::BTreeMap, fmt, sync::Arc};

use serde::{Deserialize, Serialize};

mod decode;
mod fast;

pub use decode::decode_json_into;

/// Version of the JSON event schema written by `baseliner capture --json`.
pub const SCHEMA_VERSION: u32 = 1;

/// One observed action of one process, attributed to its workload.
///
/// `Deserialize` is written by hand (in `event/decode.rs`) for speed; it accepts exactly what
/// the derive did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Schema version of this record ([`SCHEMA_VERSION`] when written by this build).
    pub schema: u32,
    /// Wall-clock time of the event, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The workload the process belongs to.
    pub workload: Workload,
    /// Process id (thread-group id) after the event.
    pub pid: u32,
    /// Thread id that made the call.
    pub tid: u32,
    /// Parent process id; 0 when unknown.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Task command name (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Executable of the process; for `exec`, the program just executed. `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Executable of the parent process (`ppid`), when known. Gives the process lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_exe: Option<String>,
    /// True when the event was not seen happening but read from /proc when capture started:
    /// the `exec` of a process that was already running. Its `ts_ns` is the process's start
    /// time. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub existing: bool,
    /// True when the kernel blocked the action (enforce mode): an exec killed with SIGKILL
    /// before the program ran. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub blocked: bool,
    /// Kind-specific fields; `kind` names the variant.
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// Where an event came from: a cgroup, and what the cgroup's name says about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Workload {
    /// Stable workload identity. On a plain host, the cgroup2 path.
    pub id: String,
    /// cgroup2 id (the cgroup directory's inode number).
    pub cgroup_id: u64,
    /// cgroup2 path relative to the cgroup2 mount; empty when the cgroup is gone.
    pub cgroup: String,
    /// Container runtime that named the cgroup (`containerd`, `crio`, `docker`, `podman`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Full container id, when the cgroup belongs to a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Kubernetes pod UID, when the cgroup belongs to a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// systemd unit (service, scope or slice) that holds the cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The pod and container, when the agent runs on Kubernetes and knows the pod. Shared
    /// between the events of one container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<Arc<KubeMeta>>,
}

/// What Kubernetes says about the container an event came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KubeMeta {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name in the pod spec.
    pub container: String,
    /// The container's image, as the pod spec names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The kind of the pod's top owner (`Deployment`, `CronJob`, `StatefulSet`, `DaemonSet`,
    /// `Job`, `ReplicaSet`, or `Pod` for a bare pod).
    pub owner_kind: String,
    /// The top owner's name (the pod's own name for a bare pod).
    pub owner_name: String,
    /// The workload revision: the pod-template hash, else the controller revision, else the
    /// image digest; empty when none is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The pod's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How a file was opened, from the open flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Opened read-only.
    Read,
    /// Opened for writing (write-only or read-write, or truncating).
    Write,
    /// Opened with `O_CREAT`: may create the file.
    Create,
}

impl Access {
    /// Classifies raw `open(2)` flags.
    pub fn from_open_flags(flags: u32) -> Self {
        const O_ACCMODE: u32 = 0o3;
        const O_CREAT: u32 = 0o100;
        const O_TRUNC: u32 = 0o1000;
        if flags & O_CREAT != 0 {
            Access::Create
        } else if flags & O_ACCMODE != 0 || flags & O_TRUNC != 0 {
            Access::Write
        } else {
            Access::Read
        }
    }

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Create => "create",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Socket address family of a network event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
    /// Unix domain socket.
    Unix,
}

/// Transport protocol of a network event, from the socket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// IP stream socket.
    Tcp,
    /// IP datagram socket.
    Udp,
    /// Raw IP socket.
    Raw,
    /// Unix stream socket.
    Stream,
    /// Unix datagram socket.
    Dgram,
    /// Unix sequenced-packet socket.
    Seqpacket,
    /// The socket was created before the agent started, or its type is unusual.
    Unknown,
}

impl Protocol {
    /// Protocol of a socket from its family and `SOCK_*` type number (0 = unknown).
    pub fn from_sock_type(family: Family, sock_type: u32) -> Self {
        match (family, sock_type) {
            (Family::Unix, 1) => Protocol::Stream,
            (Family::Unix, 2) => Protocol::Dgram,
            (Family::Unix, 5) => Protocol::Seqpacket,
            (Family::Inet | Family::Inet6, 1) => Protocol::Tcp,
            (Family::Inet | Family::Inet6, 2) => Protocol::Udp,
            (Family::Inet | Family::Inet6, 3) => Protocol::Raw,
            _ => Protocol::Unknown,
        }
    }
}

/// Network endpoint: an IP address and port, or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Address family.
    pub family: Family,
    /// Transport protocol.
    pub protocol: Protocol,
    /// IP address in its usual text form; for unix sockets, the socket path (abstract sockets
    /// start with `@`).
    pub addr: String,
    /// Port (0 for unix sockets).
    pub port: u16,
}

/// The kind-specific part of an event. Serialised with a `kind` tag beside the common fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventDetail {
    /// A successful `execve` / `execveat`.
    Exec {
        /// Program path as passed to execve, made absolute when it was relative.
        filename: String,
        /// Arguments, `argv[0]` first.
        argv: Vec<String>,
        /// True when arguments were cut (too many, or longer than the capture buffer).
        argv_truncated: bool,
        /// True when the arguments could not be read at all (the exec's syscall entry was not
        /// seen, e.g. a 32-bit program's exec); `argv` is then empty. Absent when false.
        #[serde(default, skip_serializing_if = "is_false")]
        argv_unknown: bool,
    },
    /// An `openat` / `openat2`.
    Open {
        /// Absolute path (resolved against the cwd or dirfd when it was relative).
        path: String,
        /// Raw open flags.
        flags: u32,
        /// Access class derived from `flags`.
        access: Access,
        /// True when the path was longer than the capture buffer and is cut.
        #[serde(default, skip_serializing_if = "is_false")]
        path_truncated: bool,
    },
    /// An outgoing `connect`.
    Connect {
        /// Destination.
        #[serde(flatten)]
        dest: Endpoint,
    },
    /// A `bind` to a local address.
    Bind {
        /// Local address.
        #[serde(flatten)]
        local: Endpoint,
    },
    /// A `listen` on a socket; the local address comes from its earlier bind.
    Listen {
        /// Local address; `None` when the socket was bound before the agent started.
        #[serde(flatten)]
        local: Option<Endpoint>,
    },
    /// A `ptrace` request against another process.
    Ptrace {
        /// Request number (`PTRACE_ATTACH` = 16, `PTRACE_SEIZE` = 0x4206, ...).
        request: u64,
        /// Name of the request when known.
        request_name: String,
        /// Target process id.
        target_pid: u32,
    },
    /// A call of the setuid family (`setuid`, `setreuid`, `setresuid`, `setfsuid`).
    Setuid {
        /// The syscall name.
        call: String,
        /// Requested ids in argument order; -1 (unchanged) is shown as `null`.
        ids: Vec<Option<u32>>,
    },
    /// A call of the setgid family (`setgid`, `setregid`, `setresgid`, `setfsgid`).
    Setgid {
        /// The syscall name.
        call: String,
        /// Requested ids in argument order; -1 (unchanged) is shown as `null`.
        ids: Vec<Option<u32>>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EventDetail {
    /// The kind's main string (program, path, address, request or call name), if it has one:
    /// a buffer readers of long traces reuse.
    pub(crate) fn main_string_mut(&mut self) -> Option<&mut String> {
        match self {
            EventDetail::Exec { filename: s, .. }
            | EventDetail::Open { path: s, .. }
            | EventDetail::Connect {
                dest: Endpoint { addr: s, .. },
            }
            | EventDetail::Bind {
                local: Endpoint { addr: s, .. },
            }
            | EventDetail::Listen {
                local: Some(Endpoint { addr: s, .. }),
            }
            | EventDetail::Ptrace {
                request_name: s, ..
            }
            | EventDetail::Setuid { call: s, .. }
            | EventDetail::Setgid { call: s, .. } => Some(s),
            EventDetail::Listen { local: None } => None,
        }
    }

    /// The `kind` tag as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            EventDetail::Exec { .. } => "exec",
            EventDetail::Open { .. } => "open",
            EventDetail::Connect { .. } => "connect",
            EventDetail::Bind { .. } => "bind",
            EventDetail::Listen { .. } => "listen",
            EventDetail::Ptrace { .. } => "ptrace",
            EventDetail::Setuid { .. } => "setuid",
            EventDetail::Setgid { .. } => "setgid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            id: "/system.slice/nginx.service".into(),
            cgroup_id: 42,
            cgroup: "/system.slice/nginx.service".into(),
            runtime: None,
            container_id: None,
            pod_uid: None,
            unit: Some("nginx.service".into()),
            k8s: None,
        }
    }

    fn event(detail: EventDetail) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            ts_ns: 1_795_000_000_000_000_000,
            workload: workload(),
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 33,
            gid: 33,
            comm: "nginx".into(),
            exe: Some("/usr/sbin/nginx".into()),
            parent_exe: Some("/usr/lib/systemd/systemd".into()),
            existing: false,
            blocked: false,
            detail,
        }
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            family: Family::Inet,
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let details = vec![
            EventDetail::Exec {
                filename: "/bin/true".into(),
                argv: vec!["true".into(), "a b".into()],
                argv_truncated: false,
                argv_unknown: false,
            },
            EventDetail::Open {
                path: "/etc/shadow".into(),
                flags: 0,
                access: Access::Read,
                path_truncated: false,
            },
            EventDetail::Open {
                path: "/tmp/x".into(),
                flags: 0o101,
                access: Access::Create,
                path_truncated: true,
            },
            EventDetail::Connect { dest: ep(443) },
            EventDetail::Bind { local: ep(8080) },
            EventDetail::Listen {
                local: Some(ep(8080)),
            },
            EventDetail::Listen { local: None },
            EventDetail::Ptrace {
                request: 16,
                request_name: "PTRACE_ATTACH".into(),
                target_pid: 7,
            },
            EventDetail::Setuid {
                call: "setresuid".into(),
                ids: vec![Some(0), None, Some(0)],
            },
            EventDetail::Setgid {
                call: "setgid".into(),
                ids: vec![Some(0)],
            },
        ];
        for d in details {
            let e = event(d);
            let line = serde_json::to_string(&e).unwrap();
            assert!(!line.contains('\n'));
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back, e, "{line}");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["kind"], e.detail.kind());
        }
    }

    #[test]
    fn field_names_are_the_documented_ones() {
        let v = serde_json::to_value(event(EventDetail::Connect { dest: ep(443) })).unwrap();
        for key in [
            "schema", "ts_ns", "workload", "pid", "tid", "ppid", "uid", "gid", "comm", "exe",
            "kind", "family", "protocol", "addr", "port",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["workload"]["unit"], "nginx.service");
        assert!(
            v["workload"].get("container_id").is_none(),
            "absent optional fields are omitted"
        );
        assert_eq!(v["family"], "inet");
        assert_eq!(v["protocol"], "tcp");
    }

    #[test]
    fn existing_is_written_only_when_true() {
        let mut e = event(EventDetail::Exec {
            filename: "/usr/sbin/nginx".into(),
            argv: vec!["nginx".into()],
            argv_truncated: false,
            argv_unknown: false,
        });
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("existing").is_none(), "{v}");
        // Records written before the field existed read as live events.
        assert!(!serde_json::from_value::<Event>(v).unwrap().existing);
        e.existing = true;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["existing"], true);
        assert_eq!(v["kind"], "exec");
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
    }

    #[test]
    fn unknown_kinds_and_missing_fields_are_rejected() {
        let mut v = serde_json::to_value(event(EventDetail::Bind { local: ep(1) })).unwrap();
        v["kind"] = "teleport".into();
        assert!(serde_json::from_value::<Event>(v).is_err());
        let mut v = serde_json::to_value(event(EventDetail::Exec {
            filename: "/x".into(),
            argv: vec![],
            argv_truncated: false,
            argv_unknown: false,
        }))
        .unwrap();
        v.as_object_mut().unwrap().remove("argv");
        assert!(serde_json::from_value::<Event>(v).is_err());
    }

    #[test]
    fn access_classes_from_flags() {
        assert_eq!(Access::from_open_flags(0), Access::Read);
        assert_eq!(Access::from_open_flags(0o2000000), Access::Read); // O_CLOEXEC
        assert_eq!(Access::from_open_flags(0o1), Access::Write);
        assert_eq!(Access::from_open_flags(0o2), Access::Write);
        assert_eq!(Access::from_open_flags(0o1000), Access::Write); // O_TRUNC
        assert_eq!(Access::from_open_flags(0o100), Access::Create);
        assert_eq!(Access::from_open_flags(0o101), Access::Create);
        assert_eq!(Protocol::from_sock_type(Family::Unix, 1), Protocol::Stream);
        assert_eq!(Protocol::from_sock_type(Family::Inet6, 2), Protocol::Udp);
        assert_eq!(Protocol::from_sock_type(Family::Inet, 0), Protocol::Unknown);
    }
}
