//! Decoding tests over records laid out exactly as the kernel side writes them.

use learner_ebpf::{COMM_LEN, PATH_LEN, SOCKADDR_LEN};

use super::*;

fn header(kind: EventKind, flags: u32) -> EventHeader {
    let mut comm = [0u8; COMM_LEN];
    comm[..4].copy_from_slice(b"curl");
    EventHeader {
        kind: kind as u32,
        flags,
        ts_ns: 42,
        cgroup_id: 7,
        pid: 100,
        tid: 101,
        ppid: 99,
        uid: 1000,
        gid: 1001,
        _pad: 0,
        comm,
    }
}

fn bytes<T>(v: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a plain #[repr(C)] value.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn path(s: &str) -> [u8; PATH_LEN] {
    let mut p = [0u8; PATH_LEN];
    p[..s.len()].copy_from_slice(s.as_bytes());
    p
}

#[test]
fn exec_with_args_and_truncation() {
    let mut argv = [0u8; ARGV_BUF];
    let args = b"/bin/true\0--flag\0x y\0";
    argv[..args.len()].copy_from_slice(args);
    let ev = ExecEvent {
        header: header(EventKind::Exec, FLAG_ARGV_TRUNCATED),
        argc: 3,
        argv_len: args.len() as u32,
        dirfd: -100,
        _pad: 0,
        filename: path("/bin/true"),
        argv,
    };
    let d = decode(&bytes(&ev)).unwrap();
    assert_eq!(d.header.comm, "curl");
    assert_eq!((d.header.pid, d.header.tid, d.header.ppid), (100, 101, 99));
    assert_eq!(
        (d.header.uid, d.header.gid, d.header.cgroup_id),
        (1000, 1001, 7)
    );
    assert_eq!(
        d.detail,
        EventDetail::Exec {
            filename: "/bin/true".into(),
            argv: vec!["/bin/true".into(), "--flag".into(), "x y".into()],
            argv_truncated: true,
            argv_unknown: false,
        }
    );
    assert_eq!(d.dirfd, Some(-100));
}

#[test]
fn exec_with_unknown_arguments() {
    let ev = ExecEvent {
        header: header(EventKind::Exec, FLAG_ARGV_UNKNOWN),
        argc: 0,
        argv_len: 0,
        dirfd: -100,
        _pad: 0,
        filename: path("/bin/true"),
        argv: [0u8; ARGV_BUF],
    };
    match decode(&bytes(&ev)).unwrap().detail {
        EventDetail::Exec {
            filename,
            argv,
            argv_truncated,
            argv_unknown,
        } => {
            assert_eq!(filename, "/bin/true");
            assert!(argv.is_empty());
            assert!(argv_unknown && !argv_truncated);
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn open_access_classes() {
    for (flags, access) in [
        (0, Access::Read),
        (0o1, Access::Write),
        (0o2, Access::Write),
        (0o101, Access::Create),
        (0o1001, Access::Write),
        (0o2000000, Access::Read),
    ] {
        let ev = OpenEvent {
            header: header(EventKind::Open, 0),
            open_flags: flags,
            dirfd: 3,
            path: path("etc/passwd"),
        };
        let d = decode(&bytes(&ev)).unwrap();
        match d.detail {
            EventDetail::Open {
                path,
                flags: f,
                access: a,
                path_truncated,
            } => {
                assert_eq!(path, "etc/passwd");
                assert_eq!(f, flags);
                assert_eq!(a, access, "flags {flags:o}");
                assert!(!path_truncated);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.dirfd, Some(3));
    }
}

fn net(kind: EventKind, sock_type: u32, raw: &[u8]) -> Vec<u8> {
    let mut data = [0u8; SOCKADDR_LEN];
    data[..raw.len()].copy_from_slice(raw);
    bytes(&NetEvent {
        header: header(kind, 0),
        fd: 3,
        sock_type,
        addr: SockAddr {
            len: raw.len() as u32,
            _pad: 0,
            data,
        },
    })
}

#[test]
fn connect_ipv4_ipv6_unix() {
    // sockaddr_in: family 2 (native endian), port 8080 big endian, 127.0.0.1.
    let mut v4 = vec![0u8; 16];
    v4[..2].copy_from_slice(&2u16.to_ne_bytes());
    v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
    v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
    let d = decode(&net(EventKind::Connect, 1, &v4)).unwrap();
    assert_eq!(
        d.detail,
        EventDetail::Connect {
            dest: Endpoint {
                family: Family::Inet,
                protocol: Protocol::Tcp,
                addr: "127.0.0.1".into(),
                port: 8080
            }
        }
    );

    let mut v6 = vec![0u8; 28];
    v6[..2].copy_from_slice(&10u16.to_ne_bytes());
    v6[2..4].copy_from_slice(&53u16.to_be_bytes());
    v6[23] = 1; // ::1
    let d = decode(&net(EventKind::Connect, 2, &v6)).unwrap();
    assert_eq!(
        d.detail,
        EventDetail::Connect {
            dest: Endpoint {
                family: Family::Inet6,
                protocol: Protocol::Udp,
                addr: "::1".into(),
                port: 53
            }
        }
    );

    let mut un = 1u16.to_ne_bytes().to_vec();
    un.extend_from_slice(b"/run/docker.sock\0");
    let d = decode(&net(EventKind::Connect, 1, &un)).unwrap();
    assert_eq!(
        d.detail,
        EventDetail::Connect {
            dest: Endpoint {
                family: Family::Unix,
                protocol: Protocol::Stream,
                addr: "/run/docker.sock".into(),
                port: 0
            }
        }
    );

    let mut abs = 1u16.to_ne_bytes().to_vec();
    abs.extend_from_slice(b"\0dbus-abc");
    let d = decode(&net(EventKind::Connect, 0, &abs)).unwrap();
    match d.detail {
        EventDetail::Connect { dest } => {
            assert_eq!(dest.addr, "@dbus-abc");
            assert_eq!(dest.protocol, Protocol::Unknown);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bind_and_listen_without_address() {
    let mut v4 = vec![0u8; 16];
    v4[..2].copy_from_slice(&2u16.to_ne_bytes());
    v4[2..4].copy_from_slice(&443u16.to_be_bytes());
    let d = decode(&net(EventKind::Bind, 1, &v4)).unwrap();
    assert!(
        matches!(d.detail, EventDetail::Bind { ref local } if local.port == 443 && local.addr == "0.0.0.0")
    );
    let d = decode(&net(EventKind::Listen, 1, &[])).unwrap();
    assert_eq!(d.detail, EventDetail::Listen { local: None });
}

#[test]
fn ptrace_and_setid() {
    let ev = IdEvent {
        header: header(EventKind::Ptrace, 0),
        call: IdCall::Ptrace as u32,
        _pad: 0,
        args: [16, 4242, 0],
    };
    assert_eq!(
        decode(&bytes(&ev)).unwrap().detail,
        EventDetail::Ptrace {
            request: 16,
            request_name: "PTRACE_ATTACH".into(),
            target_pid: 4242
        }
    );
    let ev = IdEvent {
        header: header(EventKind::Setuid, 0),
        call: IdCall::Setresuid as u32,
        _pad: 0,
        args: [0, u32::MAX as u64, 0],
    };
    assert_eq!(
        decode(&bytes(&ev)).unwrap().detail,
        EventDetail::Setuid {
            call: "setresuid".into(),
            ids: vec![Some(0), None, Some(0)]
        }
    );
    let ev = IdEvent {
        header: header(EventKind::Setgid, 0),
        call: IdCall::Setgid as u32,
        _pad: 0,
        args: [50, 0, 0],
    };
    assert_eq!(
        decode(&bytes(&ev)).unwrap().detail,
        EventDetail::Setgid {
            call: "setgid".into(),
            ids: vec![Some(50)]
        }
    );
}

#[test]
fn short_and_unknown_records_are_errors() {
    let ev = OpenEvent {
        header: header(EventKind::Open, 0),
        open_flags: 0,
        dirfd: -100,
        path: path("/x"),
    };
    let b = bytes(&ev);
    assert!(matches!(
        decode(&b[..100]),
        Err(DecodeError::Short { kind: 2, .. })
    ));
    let mut h = header(EventKind::Open, 0);
    h.kind = 99;
    assert_eq!(decode(&bytes(&h)), Err(DecodeError::UnknownKind(99)));
    assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short { .. })));
}
