//! A fast path for decoding the JSON lines this crate writes: a byte scanner that borrows
//! strings from the line and copies them into a reused [`Event`]. It accepts only plain lines —
//! every field known and present once, strings without escapes, integers in range — and says
//! no to anything else, which then goes through the full decoder ([`super::decode`]); so it
//! never decodes a line differently from it, only faster.

use super::{Access, Endpoint, Event, EventDetail, Family, Protocol, Workload};

/// A JSON value as the fast path reads it, borrowing from the line.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Int(u64),
    Bool(bool),
    Null,
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        // The lines this crate writes have no whitespace between tokens.
        if !matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            return;
        }
        while let Some(c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// A string without escapes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = string_len(&self.b[start..])?;
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }

    /// A non-negative integer without sign, fraction or exponent.
    fn int(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let b = &self.b[start..];
        let (mut v, mut n) = (0u64, 0);
        // Up to 19 digits cannot overflow a u64; any further digit is checked.
        while n < b.len().min(19) && b[n].is_ascii_digit() {
            v = v * 10 + u64::from(b[n] - b'0');
            n += 1;
        }
        while let Some(c @ b'0'..=b'9') = b.get(n) {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            n += 1;
        }
        self.i = start + n;
        let digits = self.i - start;
        // JSON forbids leading zeros; a fraction or exponent is not an integer here.
        if digits == 0
            || (digits > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(v)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.ws();
        self.b[self.i..]
            .starts_with(word.as_bytes())
            .then(|| self.i += word.len())
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        Some(match self.peek()? {
            b'"' => Scalar::Str(self.string()?),
            b'0'..=b'9' => Scalar::Int(self.int()?),
            b't' => self.literal("true").map(|_| Scalar::Bool(true))?,
            b'f' => self.literal("false").map(|_| Scalar::Bool(false))?,
            b'n' => self.literal("null").map(|_| Scalar::Null)?,
            _ => return None,
        })
    }

    /// `{ "key": value, ... }` with keys from `keys`, calling `field` after each key with the
    /// cursor on its value; an unknown key is a `None`.
    ///
    /// Keys are matched as written (`"key":`), searching from the one after the previous key,
    /// so keys in the order of `keys` cost one comparison each; a key written any other way
    /// (with whitespace around it) is read as a string and looked up.
    fn object<K: Copy>(
        &mut self,
        keys: &[(K, &[u8])],
        mut field: impl FnMut(&mut Self, K) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut next = 0;
        loop {
            self.ws();
            let rest = &self.b[self.i..];
            let second = rest.get(1).copied();
            let mut found = None;
            let mut j = next;
            for _ in 0..keys.len() {
                if j == keys.len() {
                    j = 0;
                }
                let written = keys[j].1;
                if written.get(1).copied() == second && rest.starts_with(written) {
                    found = Some(j);
                    break;
                }
                j += 1;
            }
            let at = match found {
                Some(at) => {
                    self.i += keys[at].1.len();
                    at
                }
                None => {
                    let key = self.string()?.as_bytes();
                    self.eat(b':')?;
                    keys.iter()
                        .position(|(_, written)| &written[1..written.len() - 2] == key)?
                }
            };
            next = at + 1;
            field(self, keys[at].0)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[ item, ... ]`.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Length of a string's content up to its closing quote, when it has no escape and no control
/// character (which JSON requires escaped); `None` otherwise, or when it is not closed.
/// Eight bytes at a time: the first byte that is a quote, a backslash or below 0x20 decides.
fn string_len(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set when it is zero (or below 0x20), and possibly in bytes
        // above the first such byte (a borrow), never below it: the lowest one is exact.
        let hit = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hit = hit & HIGH;
        if hit != 0 {
            let at = i + (hit.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    let at = i + b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    (b[at] == b'"').then_some(at)
}

/// Sets `slot` once; a second value is a duplicate field (not for the fast path).
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

fn int<T: TryFrom<u64>>(c: &mut Cursor) -> Option<T> {
    T::try_from(c.int()?).ok()
}

fn boolean(c: &mut Cursor) -> Option<bool> {
    match c.scalar()? {
        Scalar::Bool(b) => Some(b),
        _ => None,
    }
}

fn opt_str<'a>(c: &mut Cursor<'a>) -> Option<Option<&'a str>> {
    match c.scalar()? {
        Scalar::Str(s) => Some(Some(s)),
        Scalar::Null => Some(None),
        _ => None,
    }
}

#[derive(Default)]
struct RawWorkload<'a> {
    id: Option<&'a str>,
    cgroup_id: Option<u64>,
    cgroup: Option<&'a str>,
    runtime: Option<Option<&'a str>>,
    container_id: Option<Option<&'a str>>,
    pod_uid: Option<Option<&'a str>>,
    unit: Option<Option<&'a str>>,
}

#[derive(Default)]
struct Raw<'a> {
    schema: Option<u32>,
    ts_ns: Option<u64>,
    workload: Option<RawWorkload<'a>>,
    pid: Option<u32>,
    tid: Option<u32>,
    ppid: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    comm: Option<&'a str>,
    exe: Option<Option<&'a str>>,
    parent_exe: Option<Option<&'a str>>,
    existing: Option<bool>,
    blocked: Option<bool>,
    kind: Option<&'a str>,
    filename: Option<&'a str>,
    argv: Option<(usize, usize)>,
    argv_truncated: Option<bool>,
    argv_unknown: Option<bool>,
    path: Option<&'a str>,
    flags: Option<u32>,
    access: Option<&'a str>,
    path_truncated: Option<bool>,
    family: Option<&'a str>,
    protocol: Option<&'a str>,
    addr: Option<&'a str>,
    port: Option<u16>,
    request: Option<u64>,
    request_name: Option<&'a str>,
    target_pid: Option<u32>,
    call: Option<&'a str>,
    ids: Option<Vec<Option<u32>>>,
}

/// A workload field.
#[derive(Clone, Copy)]
enum WorkloadKey {
    Id,
    CgroupId,
    Cgroup,
    Runtime,
    ContainerId,
    PodUid,
    Unit,
}

/// The keys of [`WorkloadKey`] as this crate writes them, in its order.
const WORKLOAD_KEYS: &[(WorkloadKey, &[u8])] = &[
    (WorkloadKey::Id, b"\"id\":"),
    (WorkloadKey::CgroupId, b"\"cgroup_id\":"),
    (WorkloadKey::Cgroup, b"\"cgroup\":"),
    (WorkloadKey::Runtime, b"\"runtime\":"),
    (WorkloadKey::ContainerId, b"\"container_id\":"),
    (WorkloadKey::PodUid, b"\"pod_uid\":"),
    (WorkloadKey::Unit, b"\"unit\":"),
];

/// An event field.
#[derive(Clone, Copy)]
enum EventKey {
    Schema,
    TsNs,
    Workload,
    Pid,
    Tid,
    Ppid,
    Uid,
    Gid,
    Comm,
    Exe,
    ParentExe,
    Existing,
    Blocked,
    Kind,
    Filename,
    Argv,
    ArgvTruncated,
    ArgvUnknown,
    Path,
    Flags,
    Access,
    PathTruncated,
    Family,
    Protocol,
    Addr,
    Port,
    Request,
    RequestName,
    TargetPid,
    Call,
    Ids,
}

/// The keys of [`EventKey`] as this crate writes them, in its order.
const EVENT_KEYS: &[(EventKey, &[u8])] = &[
    (EventKey::Schema, b"\"schema\":"),
    (EventKey::TsNs, b"\"ts_ns\":"),
    (EventKey::Workload, b"\"workload\":"),
    (EventKey::Pid, b"\"pid\":"),
    (EventKey::Tid, b"\"tid\":"),
    (EventKey::Ppid, b"\"ppid\":"),
    (EventKey::Uid, b"\"uid\":"),
    (EventKey::Gid, b"\"gid\":"),
    (EventKey::Comm, b"\"comm\":"),
    (EventKey::Exe, b"\"exe\":"),
    (EventKey::ParentExe, b"\"parent_exe\":"),
    (EventKey::Existing, b"\"existing\":"),
    (EventKey::Blocked, b"\"blocked\":"),
    (EventKey::Kind, b"\"kind\":"),
    (EventKey::Filename, b"\"filename\":"),
    (EventKey::Argv, b"\"argv\":"),
    (EventKey::ArgvTruncated, b"\"argv_truncated\":"),
    (EventKey::ArgvUnknown, b"\"argv_unknown\":"),
    (EventKey::Path, b"\"path\":"),
    (EventKey::Flags, b"\"flags\":"),
    (EventKey::Access, b"\"access\":"),
    (EventKey::PathTruncated, b"\"path_truncated\":"),
    (EventKey::Family, b"\"family\":"),
    (EventKey::Protocol, b"\"protocol\":"),
    (EventKey::Addr, b"\"addr\":"),
    (EventKey::Port, b"\"port\":"),
    (EventKey::Request, b"\"request\":"),
    (EventKey::RequestName, b"\"request_name\":"),
    (EventKey::TargetPid, b"\"target_pid\":"),
    (EventKey::Call, b"\"call\":"),
    (EventKey::Ids, b"\"ids\":"),
];

fn workload<'a>(c: &mut Cursor<'a>) -> Option<RawWorkload<'a>> {
    let mut w = RawWorkload::default();
    c.object(WORKLOAD_KEYS, |c, key| match key {
        WorkloadKey::Id => once(&mut w.id, c.string()?),
        WorkloadKey::CgroupId => once(&mut w.cgroup_id, c.int()?),
        WorkloadKey::Cgroup => once(&mut w.cgroup, c.string()?),
        WorkloadKey::Runtime => once(&mut w.runtime, opt_str(c)?),
        WorkloadKey::ContainerId => once(&mut w.container_id, opt_str(c)?),
        WorkloadKey::PodUid => once(&mut w.pod_uid, opt_str(c)?),
        WorkloadKey::Unit => once(&mut w.unit, opt_str(c)?),
    })?;
    Some(w)
}

fn parse<'a>(c: &mut Cursor<'a>, argv: &mut Vec<&'a str>) -> Option<Raw<'a>> {
    let mut r = Raw::default();
    c.object(EVENT_KEYS, |c, key| match key {
        EventKey::Schema => once(&mut r.schema, int(c)?),
        EventKey::TsNs => once(&mut r.ts_ns, c.int()?),
        EventKey::Workload => once(&mut r.workload, workload(c)?),
        EventKey::Pid => once(&mut r.pid, int(c)?),
        EventKey::Tid => once(&mut r.tid, int(c)?),
        EventKey::Ppid => once(&mut r.ppid, int(c)?),
        EventKey::Uid => once(&mut r.uid, int(c)?),
        EventKey::Gid => once(&mut r.gid, int(c)?),
        EventKey::Comm => once(&mut r.comm, c.string()?),
        EventKey::Exe => once(&mut r.exe, opt_str(c)?),
        EventKey::ParentExe => once(&mut r.parent_exe, opt_str(c)?),
        EventKey::Existing => once(&mut r.existing, boolean(c)?),
        EventKey::Blocked => once(&mut r.blocked, boolean(c)?),
        EventKey::Kind => once(&mut r.kind, c.string()?),
        EventKey::Filename => once(&mut r.filename, c.string()?),
        EventKey::Argv => {
            let start = argv.len();
            c.array(|c| {
                argv.push(c.string()?);
                Some(())
            })?;
            once(&mut r.argv, (start, argv.len()))
        }
        EventKey::ArgvTruncated => once(&mut r.argv_truncated, boolean(c)?),
        EventKey::ArgvUnknown => once(&mut r.argv_unknown, boolean(c)?),
        EventKey::Path => once(&mut r.path, c.string()?),
        EventKey::Flags => once(&mut r.flags, int(c)?),
        EventKey::Access => once(&mut r.access, c.string()?),
        EventKey::PathTruncated => once(&mut r.path_truncated, boolean(c)?),
        EventKey::Family => once(&mut r.family, c.string()?),
        EventKey::Protocol => once(&mut r.protocol, c.string()?),
        EventKey::Addr => once(&mut r.addr, c.string()?),
        EventKey::Port => once(&mut r.port, int(c)?),
        EventKey::Request => once(&mut r.request, c.int()?),
        EventKey::RequestName => once(&mut r.request_name, c.string()?),
        EventKey::TargetPid => once(&mut r.target_pid, int(c)?),
        EventKey::Call => once(&mut r.call, c.string()?),
        EventKey::Ids => {
            let mut ids = Vec::new();
            c.array(|c| {
                ids.push(match c.scalar()? {
                    Scalar::Int(v) => Some(u32::try_from(v).ok()?),
                    Scalar::Null => None,
                    _ => return None,
                });
                Some(())
            })?;
            once(&mut r.ids, ids)
        }
    })?;
    c.ws();
    (c.i == c.b.len()).then_some(r)
}

fn family(s: &str) -> Option<Family> {
    Some(match s {
        "inet" => Family::Inet,
        "inet6" => Family::Inet6,
        "unix" => Family::Unix,
        _ => return None,
    })
}

fn protocol(s: &str) -> Option<Protocol> {
    Some(match s {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "raw" => Protocol::Raw,
        "stream" => Protocol::Stream,
        "dgram" => Protocol::Dgram,
        "seqpacket" => Protocol::Seqpacket,
        "unknown" => Protocol::Unknown,
        _ => return None,
    })
}

fn set(buf: &mut String, s: &str) {
    buf.clear();
    buf.push_str(s);
}

fn set_opt(buf: &mut Option<String>, s: Option<&str>) {
    match (buf.as_mut(), s) {
        (Some(b), Some(s)) => set(b, s),
        (_, s) => *buf = s.map(str::to_string),
    }
}

/// Reuses `old`'s string if it has one, else allocates.
fn reuse(old: Option<&mut String>, s: &str) -> String {
    match old {
        Some(b) => {
            let mut b = std::mem::take(b);
            set(&mut b, s);
            b
        }
        None => s.to_string(),
    }
}

/// The fields of the event's kind, all and only those, as the full decoder requires them.
fn detail(r: &mut Raw, argv: &[&str], old: &mut EventDetail) -> Option<EventDetail> {
    let kind = r.kind?;
    let exec = r.filename.is_some() || r.argv.is_some() || r.argv_truncated.is_some();
    let exec = exec || r.argv_unknown.is_some();
    let open = r.path.is_some() || r.flags.is_some() || r.access.is_some();
    let open = open || r.path_truncated.is_some();
    let net = r.family.is_some() || r.protocol.is_some() || r.addr.is_some() || r.port.is_some();
    let ptrace = r.request.is_some() || r.request_name.is_some() || r.target_pid.is_some();
    let id = r.call.is_some() || r.ids.is_some();
    let only = |mine: bool, others: [bool; 4]| mine && !others.iter().any(|o| *o);
    let endpoint = |r: &Raw, old: &mut EventDetail| -> Option<Endpoint> {
        Some(Endpoint {
            family: family(r.family?)?,
            protocol: protocol(r.protocol?)?,
            addr: reuse(old.main_string_mut(), r.addr?),
            port: r.port?,
        })
    };
    Some(match kind {
        "exec" if only(exec, [open, net, ptrace, id]) => {
            let (a, b) = r.argv?;
            let mut v = match old {
                EventDetail::Exec { argv, .. } => std::mem::take(argv),
                _ => Vec::new(),
            };
            v.truncate(b - a);
            for (i, s) in argv[a..b].iter().enumerate() {
                match v.get_mut(i) {
                    Some(buf) => set(buf, s),
                    None => v.push(s.to_string()),
                }
            }
            EventDetail::Exec {
                filename: reuse(old.main_string_mut(), r.filename?),
                argv: v,
                argv_truncated: r.argv_truncated?,
                argv_unknown: r.argv_unknown.unwrap_or(false),
            }
        }
        "open" if only(open, [exec, net, ptrace, id]) => EventDetail::Open {
            path: reuse(old.main_string_mut(), r.path?),
            flags: r.flags?,
            access: match r.access? {
                "read" => Access::Read,
                "write" => Access::Write,
                "create" => Access::Create,
                _ => return None,
            },
            path_truncated: r.path_truncated.unwrap_or(false),
        },
        "connect" if only(net, [exec, open, ptrace, id]) => EventDetail::Connect {
            dest: endpoint(r, old)?,
        },
        "bind" if only(net, [exec, open, ptrace, id]) => EventDetail::Bind {
            local: endpoint(r, old)?,
        },
        "listen" if !exec && !open && !ptrace && !id => EventDetail::Listen {
            // All four fields, or none (anything in between is the full decoder's to judge).
            local: if net { Some(endpoint(r, old)?) } else { None },
        },
        "ptrace" if only(ptrace, [exec, open, net, id]) => EventDetail::Ptrace {
            request: r.request?,
            request_name: reuse(old.main_string_mut(), r.request_name?),
            target_pid: r.target_pid?,
        },
        "setuid" | "setgid" if only(id, [exec, open, net, ptrace]) => {
            let call = reuse(old.main_string_mut(), r.call?);
            let ids = r.ids.take()?;
            if kind == "setuid" {
                EventDetail::Setuid { call, ids }
            } else {
                EventDetail::Setgid { call, ids }
            }
        }
        _ => return None,
    })
}

/// Decodes a plain line into `event`, reusing its buffers; false (with `event` unspecified
/// but valid) when the line is not plain, for the full decoder to handle.
pub(super) fn decode_plain<'a>(line: &'a str, event: &mut Event, argv: &mut Vec<&'a str>) -> bool {
    argv.clear();
    let mut c = Cursor {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    let Some(mut r) = parse(&mut c, argv) else {
        return false;
    };
    let fill = |r: &mut Raw, argv: &[&str], e: &mut Event| -> Option<()> {
        let w = r.workload.take()?;
        let old = &mut e.workload;
        let workload = Workload {
            id: reuse(Some(&mut old.id), w.id?),
            cgroup_id: w.cgroup_id?,
            cgroup: reuse(Some(&mut old.cgroup), w.cgroup?),
            runtime: w.runtime.flatten().map(str::to_string),
            container_id: w.container_id.flatten().map(str::to_string),
            pod_uid: w.pod_uid.flatten().map(str::to_string),
            unit: w.unit.flatten().map(str::to_string),
            k8s: None,
        };
        let detail = detail(r, argv, &mut e.detail)?;
        let (schema, ts_ns) = (r.schema?, r.ts_ns?);
        let (pid, tid, ppid, uid, gid) = (r.pid?, r.tid?, r.ppid?, r.uid?, r.gid?);
        set(&mut e.comm, r.comm?);
        set_opt(&mut e.exe, r.exe.flatten());
        set_opt(&mut e.parent_exe, r.parent_exe.flatten());
        e.schema = schema;
        e.ts_ns = ts_ns;
        e.workload = workload;
        e.pid = pid;
        e.tid = tid;
        e.ppid = ppid;
        e.uid = uid;
        e.gid = gid;
        e.existing = r.existing.unwrap_or(false);
        e.blocked = r.blocked.unwrap_or(false);
        e.detail = detail;
        Some(())
    };
    fill(&mut r, argv, event).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition `string_len` must agree with.
    fn naive(b: &[u8]) -> Option<usize> {
        let at = b
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        (b[at] == b'"').then_some(at)
    }

    #[test]
    fn string_len_agrees_with_a_byte_scan() {
        // Every special byte at every position of strings up to 20 bytes, over fillers that
        // sit next to the special ones (0x1f/0x20, 0x21/0x23 around '"', 0x5b/0x5d around
        // '\\', 0x7f/0x80, 0xff), and a second special byte after the first.
        let fillers = [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff];
        let specials = [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'];
        for len in 0..20 {
            for &f in &fillers {
                let mut b = vec![f; len];
                assert_eq!(string_len(&b), naive(&b), "{b:?}");
                for at in 0..len {
                    for &s in &specials {
                        b[at] = s;
                        assert_eq!(string_len(&b), naive(&b), "{b:?}");
                        for after in at + 1..len {
                            for &t in &specials {
                                b[after] = t;
                                assert_eq!(string_len(&b), naive(&b), "{b:?}");
                                b[after] = f;
                            }
                        }
                        b[at] = f;
                    }
                }
            }
        }
    }
}
