//! Decoding raw ring-buffer records into [`profiles::Event`] details. Pure functions over bytes:
//! no kernel, no /proc; [`crate::enrich`] adds the workload, the executable and absolute paths.

use std::net::{Ipv4Addr, Ipv6Addr};

use learner_ebpf::{
    ARGV_BUF, EventHeader, EventKind, ExecEvent, FLAG_ARGV_TRUNCATED, FLAG_ARGV_UNKNOWN,
    FLAG_BLOCKED, FLAG_PATH_TRUNCATED, IdCall, IdEvent, NetEvent, OpenEvent, SockAddr,
};
use profiles::{Access, Endpoint, EventDetail, Family, Protocol};
use thiserror::Error;

/// A record that could not be decoded (a version mismatch between kernel and user side).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its kind's record.
    #[error("record of kind {kind} is {len} bytes, expected at least {want}")]
    Short {
        /// Kind number.
        kind: u32,
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An unknown kind number.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

/// A decoded record: its header and kind-specific detail; paths may still be relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The common header.
    pub header: Header,
    /// Kind-specific fields.
    pub detail: EventDetail,
    /// Directory fd a relative path is relative to (AT_FDCWD = -100), for exec and open.
    pub dirfd: Option<i32>,
    /// Socket fd, for connect, bind and listen.
    pub fd: Option<i32>,
}

/// The header fields userspace uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Event kind.
    pub kind: EventKind,
    /// CLOCK_BOOTTIME nanoseconds.
    pub boot_ns: u64,
    /// cgroup2 id.
    pub cgroup_id: u64,
    /// Thread-group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent pid from the kernel's fork map; 0 when unknown.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Command name.
    pub comm: String,
    /// The kernel blocked the action (enforce mode: the exec was killed before it ran).
    pub blocked: bool,
}

fn read<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    let want = size_of::<T>();
    if bytes.len() < want {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
            want,
        });
    }
    // SAFETY: length checked above; T is #[repr(C)] plain data valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Text up to the first NUL, lossily decoded.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let h: EventHeader = read(bytes, 0)?;
    let kind = EventKind::from_u32(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    let header = Header {
        kind,
        boot_ns: h.ts_ns,
        cgroup_id: h.cgroup_id,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        comm: c_str(&h.comm),
        blocked: h.flags & FLAG_BLOCKED != 0,
    };
    let mut fd = None;
    let (detail, dirfd) = match kind {
        EventKind::Exec => {
            let e: ExecEvent = read(bytes, h.kind)?;
            (exec_detail(&e), Some(e.dirfd))
        }
        EventKind::Open => {
            let e: OpenEvent = read(bytes, h.kind)?;
            let detail = EventDetail::Open {
                path: c_str(&e.path),
                flags: e.open_flags,
                access: Access::from_open_flags(e.open_flags),
                path_truncated: e.header.flags & FLAG_PATH_TRUNCATED != 0,
            };
            (detail, Some(e.dirfd))
        }
        EventKind::Connect | EventKind::Bind | EventKind::Listen => {
            let e: NetEvent = read(bytes, h.kind)?;
            fd = Some(e.fd);
            let ep = endpoint(&e.addr, e.sock_type);
            let detail = match (kind, ep) {
                (EventKind::Connect, Some(dest)) => EventDetail::Connect { dest },
                (EventKind::Bind, Some(local)) => EventDetail::Bind { local },
                (_, local) => EventDetail::Listen { local },
            };
            (detail, None)
        }
        EventKind::Ptrace | EventKind::Setuid | EventKind::Setgid => {
            let e: IdEvent = read(bytes, h.kind)?;
            (id_detail(kind, &e), None)
        }
    };
    Ok(Decoded {
        header,
        detail,
        dirfd,
        fd,
    })
}

fn exec_detail(e: &ExecEvent) -> EventDetail {
    let len = (e.argv_len as usize).min(ARGV_BUF);
    let argv = e.argv[..len]
        .split(|b| *b == 0)
        .take(e.argc as usize)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    EventDetail::Exec {
        filename: c_str(&e.filename),
        argv,
        argv_truncated: e.header.flags & FLAG_ARGV_TRUNCATED != 0,
        argv_unknown: e.header.flags & FLAG_ARGV_UNKNOWN != 0,
    }
}

/// Parses a raw sockaddr (IPv4, IPv6, unix); `None` for an empty or unknown one.
pub fn endpoint(addr: &SockAddr, sock_type: u32) -> Option<Endpoint> {
    let len = (addr.len as usize).min(addr.data.len());
    let d = &addr.data[..len];
    if d.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([d[0], d[1]]);
    let port = |d: &[u8]| u16::from_be_bytes([d[2], d[3]]);
    let (family, addr, port) = match family {
        2 if d.len() >= 8 => (
            Family::Inet,
            Ipv4Addr::new(d[4], d[5], d[6], d[7]).to_string(),
            port(d),
        ),
        10 if d.len() >= 24 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&d[8..24]);
            (Family::Inet6, Ipv6Addr::from(ip).to_string(), port(d))
        }
        1 => {
            let path = &d[2..];
            let text = match path.first() {
                // Abstract socket: a leading NUL, the name runs to the given length.
                Some(0) => format!("@{}", String::from_utf8_lossy(&path[1..])),
                _ => c_str(path),
            };
            (Family::Unix, text, 0)
        }
        _ => return None,
    };
    Some(Endpoint {
        family,
        protocol: Protocol::from_sock_type(family, sock_type),
        addr,
        port,
    })
}

/// Name of a ptrace request, for the common ones.
pub fn ptrace_request_name(req: u64) -> String {
    match req {
        0 => "PTRACE_TRACEME".into(),
        1 => "PTRACE_PEEKTEXT".into(),
        2 => "PTRACE_PEEKDATA".into(),
        4 => "PTRACE_POKETEXT".into(),
        5 => "PTRACE_POKEDATA".into(),
        7 => "PTRACE_CONT".into(),
        8 => "PTRACE_KILL".into(),
        12 => "PTRACE_GETREGS".into(),
        13 => "PTRACE_SETREGS".into(),
        16 => "PTRACE_ATTACH".into(),
        17 => "PTRACE_DETACH".into(),
        24 => "PTRACE_SYSCALL".into(),
        0x4206 => "PTRACE_SEIZE".into(),
        0x4207 => "PTRACE_INTERRUPT".into(),
        other => format!("request {other}"),
    }
}

fn id_detail(kind: EventKind, e: &IdEvent) -> EventDetail {
    let call = IdCall::from_u32(e.call).unwrap_or(IdCall::Setuid);
    if kind == EventKind::Ptrace {
        return EventDetail::Ptrace {
            request: e.args[0],
            request_name: ptrace_request_name(e.args[0]),
            target_pid: e.args[1] as u32,
        };
    }
    let ids = e.args[..call.arg_count()]
        .iter()
        .map(|a| match *a as u32 {
            u32::MAX => None,
            id => Some(id),
        })
        .collect();
    let call = call.name().to_string();
    if kind == EventKind::Setgid {
        EventDetail::Setgid { call, ids }
    } else {
        EventDetail::Setuid { call, ids }
    }
}

#[cfg(test)]
mod tests;
