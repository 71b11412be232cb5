//! One-pass decoding of [`Event`].
//!
//! The derived decoder of a struct with `#[serde(flatten)]` over an internally tagged enum
//! buffers every kind-specific field into serde's private `Content` tree and decodes the enum
//! from it afterwards: several allocations per field and a second pass. This decoder reads the
//! map once, parsing each kind-specific field straight into its slot when `kind` came before it
//! (as in everything this crate writes), and accepts exactly what the derived decoder accepted:
//!
//! - unknown fields, and fields that do not belong to the event's kind, are ignored unparsed;
//! - a kind-specific field seen before `kind` is buffered as a [`Value`] and decoded at the end;
//! - a `listen` endpoint that is incomplete or invalid reads as `local: None` (the derived
//!   `#[serde(flatten)] Option<Endpoint>` swallows its errors), and `kind` may also be given as
//!   a variant index, as the derived tag decoder allowed;
//! - errors keep serde's wording: ``missing field `argv` ``, ``duplicate field `pid` ``,
//!   ``unknown variant `teleport`, expected one of ...``.
//!
//! [`decode_json_into`] decodes into an existing event, reusing its string buffers, for readers
//! of long traces.

use std::{fmt, marker::PhantomData, sync::Arc};

use serde::{
    Deserialize, Deserializer,
    de::{
        self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
        value::SeqAccessDeserializer,
    },
};
use serde_json::Value;

use super::{Access, Endpoint, Event, EventDetail, Family, KubeMeta, Protocol, Workload};

/// The `kind` tags, in variant order (a numeric tag is an index into this).
const KINDS: &[&str] = &[
    "exec", "open", "connect", "bind", "listen", "ptrace", "setuid", "setgid",
];

/// The `kind` tag of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Open,
    Connect,
    Bind,
    Listen,
    Ptrace,
    Setuid,
    Setgid,
}

impl Kind {
    fn from_index(i: u64) -> Option<Self> {
        Some(match i {
            0 => Kind::Exec,
            1 => Kind::Open,
            2 => Kind::Connect,
            3 => Kind::Bind,
            4 => Kind::Listen,
            5 => Kind::Ptrace,
            6 => Kind::Setuid,
            7 => Kind::Setgid,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("variant identifier")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Kind, E> {
                Ok(match s {
                    "exec" => Kind::Exec,
                    "open" => Kind::Open,
                    "connect" => Kind::Connect,
                    "bind" => Kind::Bind,
                    "listen" => Kind::Listen,
                    "ptrace" => Kind::Ptrace,
                    "setuid" => Kind::Setuid,
                    "setgid" => Kind::Setgid,
                    _ => return Err(E::unknown_variant(s, KINDS)),
                })
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Kind, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Err(E::unknown_variant(&String::from_utf8_lossy(b), KINDS)),
                }
            }
            fn visit_u64<E: de::Error>(self, i: u64) -> Result<Kind, E> {
                Kind::from_index(i).ok_or_else(|| {
                    E::invalid_value(de::Unexpected::Unsigned(i), &"variant index 0 <= i < 8")
                })
            }
        }
        // `deserialize_any`, not `deserialize_identifier`: the derived decoder read the tag from
        // its buffer, which also took a variant index.
        d.deserialize_any(KindVisitor)
    }
}

/// A kind-specific field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
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

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Filename => "filename",
            Field::Argv => "argv",
            Field::ArgvTruncated => "argv_truncated",
            Field::ArgvUnknown => "argv_unknown",
            Field::Path => "path",
            Field::Flags => "flags",
            Field::Access => "access",
            Field::PathTruncated => "path_truncated",
            Field::Family => "family",
            Field::Protocol => "protocol",
            Field::Addr => "addr",
            Field::Port => "port",
            Field::Request => "request",
            Field::RequestName => "request_name",
            Field::TargetPid => "target_pid",
            Field::Call => "call",
            Field::Ids => "ids",
        }
    }

    /// Whether events of `kind` have this field (the derived decoder ignored the others).
    fn belongs_to(self, kind: Kind) -> bool {
        use Field as F;
        match kind {
            Kind::Exec => matches!(
                self,
                F::Filename | F::Argv | F::ArgvTruncated | F::ArgvUnknown
            ),
            Kind::Open => matches!(self, F::Path | F::Flags | F::Access | F::PathTruncated),
            Kind::Connect | Kind::Bind | Kind::Listen => {
                matches!(self, F::Family | F::Protocol | F::Addr | F::Port)
            }
            Kind::Ptrace => matches!(self, F::Request | F::RequestName | F::TargetPid),
            Kind::Setuid | Kind::Setgid => matches!(self, F::Call | F::Ids),
        }
    }
}

/// A key of the event object.
enum Key {
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
    Detail(Field),
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                use Field as F;
                // By length first: a few comparisons per key instead of one per name.
                Ok(match (s.len(), s) {
                    (3, "pid") => Key::Pid,
                    (3, "tid") => Key::Tid,
                    (3, "uid") => Key::Uid,
                    (3, "gid") => Key::Gid,
                    (3, "exe") => Key::Exe,
                    (3, "ids") => Key::Detail(F::Ids),
                    (4, "ppid") => Key::Ppid,
                    (4, "comm") => Key::Comm,
                    (4, "kind") => Key::Kind,
                    (4, "path") => Key::Detail(F::Path),
                    (4, "argv") => Key::Detail(F::Argv),
                    (4, "addr") => Key::Detail(F::Addr),
                    (4, "port") => Key::Detail(F::Port),
                    (4, "call") => Key::Detail(F::Call),
                    (5, "ts_ns") => Key::TsNs,
                    (5, "flags") => Key::Detail(F::Flags),
                    (6, "schema") => Key::Schema,
                    (6, "access") => Key::Detail(F::Access),
                    (6, "family") => Key::Detail(F::Family),
                    (7, "request") => Key::Detail(F::Request),
                    (8, "workload") => Key::Workload,
                    (8, "existing") => Key::Existing,
                    (7, "blocked") => Key::Blocked,
                    (8, "filename") => Key::Detail(F::Filename),
                    (8, "protocol") => Key::Detail(F::Protocol),
                    (10, "parent_exe") => Key::ParentExe,
                    (10, "target_pid") => Key::Detail(F::TargetPid),
                    (12, "argv_unknown") => Key::Detail(F::ArgvUnknown),
                    (12, "request_name") => Key::Detail(F::RequestName),
                    (14, "argv_truncated") => Key::Detail(F::ArgvTruncated),
                    (14, "path_truncated") => Key::Detail(F::PathTruncated),
                    _ => Key::Other,
                })
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Key, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Ok(Key::Other),
                }
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Where a kind-specific value is read from: the map being decoded, or a value buffered
/// because it came before `kind`.
trait Source<'de> {
    type Error: de::Error;
    fn value<T: Deserialize<'de>>(self) -> Result<T, Self::Error>;
    /// A value decoded by `seed` (which may reuse a buffer).
    fn seeded<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Self::Error>;
    fn skip(self) -> Result<(), Self::Error>;
}

/// The next value of the map being decoded.
struct Next<'a, A>(&'a mut A);

impl<'de, A: MapAccess<'de>> Source<'de> for Next<'_, A> {
    type Error = A::Error;
    fn value<T: Deserialize<'de>>(self) -> Result<T, A::Error> {
        self.0.next_value()
    }
    fn seeded<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
    fn skip(self) -> Result<(), A::Error> {
        self.0.next_value::<IgnoredAny>().map(|_| ())
    }
}

/// A value buffered before `kind` was known.
struct Buffered<E>(Value, PhantomData<E>);

impl<'de, E: de::Error> Source<'de> for Buffered<E> {
    type Error = E;
    fn value<T: Deserialize<'de>>(self) -> Result<T, E> {
        T::deserialize(self.0).map_err(E::custom)
    }
    fn seeded<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, E> {
        seed.deserialize(self.0).map_err(E::custom)
    }
    fn skip(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads a value into an empty slot; a second occurrence of the field is an error.
fn fill<'de, T: Deserialize<'de>, S: Source<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    src: S,
) -> Result<(), S::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(src.value()?);
    Ok(())
}

/// [`fill`] for a string, reusing the `spare` buffer when the value is borrowed.
fn fill_string<'de, S: Source<'de>>(
    slot: &mut Option<String>,
    name: &'static str,
    spare: &mut Option<String>,
    src: S,
) -> Result<(), S::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(src.seeded(StringSeed(spare.take()))?);
    Ok(())
}

/// [`fill`] for an optional string, reusing the `spare` buffer.
fn fill_opt_string<'de, S: Source<'de>>(
    slot: &mut Option<Option<String>>,
    name: &'static str,
    spare: &mut Option<String>,
    src: S,
) -> Result<(), S::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(src.seeded(OptStringSeed(spare.take()))?);
    Ok(())
}

fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

/// Decodes a string into `.0` when given, so a borrowed value costs no allocation.
struct StringSeed(Option<String>);

impl<'de> DeserializeSeed<'de> for StringSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_string(self)
    }
}

/// The same as serde's `String` visitor, except for the buffer reuse.
impl Visitor<'_> for StringSeed {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        let mut s = self.0.unwrap_or_default();
        s.clear();
        s.push_str(v);
        Ok(s)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<String, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
        }
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<String, E> {
        String::from_utf8(v)
            .map_err(|e| E::invalid_value(de::Unexpected::Bytes(e.as_bytes()), &self))
    }
}

/// [`StringSeed`] for an `Option<String>` (`null` is `None`).
struct OptStringSeed(Option<String>);

impl<'de> DeserializeSeed<'de> for OptStringSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptStringSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("option")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        StringSeed(self.0).deserialize(d).map(Some)
    }
}

/// String buffers taken from an event being overwritten, for the next one to reuse.
#[derive(Default)]
struct Spare {
    id: Option<String>,
    cgroup: Option<String>,
    comm: Option<String>,
    exe: Option<String>,
    parent_exe: Option<String>,
    /// The main string of the detail (path, filename, address, ...).
    detail: Option<String>,
}

impl Spare {
    fn take_from(e: &mut Event) -> Spare {
        let detail = e.detail.main_string_mut().map(std::mem::take);
        Spare {
            id: Some(std::mem::take(&mut e.workload.id)),
            cgroup: Some(std::mem::take(&mut e.workload.cgroup)),
            comm: Some(std::mem::take(&mut e.comm)),
            exe: e.exe.take(),
            parent_exe: e.parent_exe.take(),
            detail,
        }
    }
}

/// Decodes a [`Workload`] like its derived decoder, reusing the spare `id` and `cgroup`.
struct WorkloadSeed<'a>(&'a mut Spare);

impl<'de> DeserializeSeed<'de> for WorkloadSeed<'_> {
    type Value = Workload;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Workload, D::Error> {
        const FIELDS: &[&str] = &[
            "id",
            "cgroup_id",
            "cgroup",
            "runtime",
            "container_id",
            "pod_uid",
            "unit",
            "k8s",
        ];
        d.deserialize_struct("Workload", FIELDS, self)
    }
}

impl<'de> Visitor<'de> for WorkloadSeed<'_> {
    type Value = Workload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Workload")
    }

    /// The array form the derive also accepts: rare, so left to it.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Workload, A::Error> {
        Workload::deserialize(SeqAccessDeserializer::new(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Workload, A::Error> {
        let mut id = None;
        let mut cgroup_id = None;
        let mut cgroup = None;
        let (mut runtime, mut container_id, mut pod_uid, mut unit) = (None, None, None, None);
        let mut k8s: Option<Option<Arc<KubeMeta>>> = None;
        let mut none = None;
        while let Some(key) = map.next_key::<WorkloadKey>()? {
            let src = Next(&mut map);
            match key {
                WorkloadKey::Id => fill_string(&mut id, "id", &mut self.0.id, src)?,
                WorkloadKey::CgroupId => fill(&mut cgroup_id, "cgroup_id", src)?,
                WorkloadKey::Cgroup => fill_string(&mut cgroup, "cgroup", &mut self.0.cgroup, src)?,
                WorkloadKey::Runtime => fill_opt_string(&mut runtime, "runtime", &mut none, src)?,
                WorkloadKey::ContainerId => {
                    fill_opt_string(&mut container_id, "container_id", &mut none, src)?
                }
                WorkloadKey::PodUid => fill_opt_string(&mut pod_uid, "pod_uid", &mut none, src)?,
                WorkloadKey::Unit => fill_opt_string(&mut unit, "unit", &mut none, src)?,
                WorkloadKey::Kube => fill(&mut k8s, "k8s", src)?,
                WorkloadKey::Other => src.skip()?,
            }
        }
        Ok(Workload {
            id: required(id, "id")?,
            cgroup_id: required(cgroup_id, "cgroup_id")?,
            cgroup: required(cgroup, "cgroup")?,
            runtime: runtime.flatten(),
            container_id: container_id.flatten(),
            pod_uid: pod_uid.flatten(),
            unit: unit.flatten(),
            k8s: k8s.flatten(),
        })
    }
}

/// A key of the workload object.
enum WorkloadKey {
    Id,
    CgroupId,
    Cgroup,
    Runtime,
    ContainerId,
    PodUid,
    Unit,
    Kube,
    Other,
}

impl<'de> Deserialize<'de> for WorkloadKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = WorkloadKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WorkloadKey, E> {
                Ok(match s {
                    "id" => WorkloadKey::Id,
                    "cgroup_id" => WorkloadKey::CgroupId,
                    "cgroup" => WorkloadKey::Cgroup,
                    "runtime" => WorkloadKey::Runtime,
                    "container_id" => WorkloadKey::ContainerId,
                    "pod_uid" => WorkloadKey::PodUid,
                    "unit" => WorkloadKey::Unit,
                    "k8s" => WorkloadKey::Kube,
                    _ => WorkloadKey::Other,
                })
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<WorkloadKey, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Ok(WorkloadKey::Other),
                }
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// The kind-specific fields read so far.
#[derive(Default)]
struct Detail {
    filename: Option<String>,
    argv: Option<Vec<String>>,
    argv_truncated: Option<bool>,
    argv_unknown: Option<bool>,
    path: Option<String>,
    flags: Option<u32>,
    access: Option<Access>,
    path_truncated: Option<bool>,
    family: Option<Family>,
    protocol: Option<Protocol>,
    addr: Option<String>,
    port: Option<u16>,
    request: Option<u64>,
    request_name: Option<String>,
    target_pid: Option<u32>,
    call: Option<String>,
    ids: Option<Vec<Option<u32>>>,
    /// A `listen` event's endpoint fields, unparsed: they are all-or-nothing (see
    /// [`Detail::finish`]).
    listen: Vec<(Field, Value)>,
    /// A buffer for the first string field.
    spare: Option<String>,
}

impl Detail {
    /// Reads `field` of an event of `kind` from `src`; a field of another kind is skipped.
    fn read<'de, S: Source<'de>>(
        &mut self,
        kind: Kind,
        field: Field,
        src: S,
    ) -> Result<(), S::Error> {
        if !field.belongs_to(kind) {
            return src.skip();
        }
        if kind == Kind::Listen {
            let v = src.value()?;
            self.listen.push((field, v));
            return Ok(());
        }
        let name = field.name();
        match field {
            Field::Filename => fill_string(&mut self.filename, name, &mut self.spare, src),
            Field::Argv => fill(&mut self.argv, name, src),
            Field::ArgvTruncated => fill(&mut self.argv_truncated, name, src),
            Field::ArgvUnknown => fill(&mut self.argv_unknown, name, src),
            Field::Path => fill_string(&mut self.path, name, &mut self.spare, src),
            Field::Flags => fill(&mut self.flags, name, src),
            Field::Access => fill(&mut self.access, name, src),
            Field::PathTruncated => fill(&mut self.path_truncated, name, src),
            Field::Family => fill(&mut self.family, name, src),
            Field::Protocol => fill(&mut self.protocol, name, src),
            Field::Addr => fill_string(&mut self.addr, name, &mut self.spare, src),
            Field::Port => fill(&mut self.port, name, src),
            Field::Request => fill(&mut self.request, name, src),
            Field::RequestName => fill_string(&mut self.request_name, name, &mut self.spare, src),
            Field::TargetPid => fill(&mut self.target_pid, name, src),
            Field::Call => fill_string(&mut self.call, name, &mut self.spare, src),
            Field::Ids => fill(&mut self.ids, name, src),
        }
    }

    /// The endpoint of a `connect` or `bind`: every field is required.
    fn endpoint<E: de::Error>(&mut self) -> Result<Endpoint, E> {
        Ok(Endpoint {
            family: required(self.family.take(), "family")?,
            protocol: required(self.protocol.take(), "protocol")?,
            addr: required(self.addr.take(), "addr")?,
            port: required(self.port.take(), "port")?,
        })
    }

    /// The detail of an event of `kind`, or an error naming the first missing field.
    fn finish<E: de::Error>(mut self, kind: Kind) -> Result<EventDetail, E> {
        Ok(match kind {
            Kind::Exec => EventDetail::Exec {
                filename: required(self.filename, "filename")?,
                argv: required(self.argv, "argv")?,
                argv_truncated: required(self.argv_truncated, "argv_truncated")?,
                argv_unknown: self.argv_unknown.unwrap_or(false),
            },
            Kind::Open => EventDetail::Open {
                path: required(self.path, "path")?,
                flags: required(self.flags, "flags")?,
                access: required(self.access, "access")?,
                path_truncated: self.path_truncated.unwrap_or(false),
            },
            Kind::Connect => EventDetail::Connect {
                dest: self.endpoint()?,
            },
            Kind::Bind => EventDetail::Bind {
                local: self.endpoint()?,
            },
            // A listen on a socket bound before the agent started has no endpoint fields; an
            // incomplete, invalid or repeated one also reads as unknown, as it always did.
            Kind::Listen => {
                let mut fields = serde_json::Map::new();
                let mut repeated = false;
                for (f, v) in self.listen {
                    repeated |= fields.insert(f.name().to_owned(), v).is_some();
                }
                let local = if repeated {
                    None
                } else {
                    Endpoint::deserialize(Value::Object(fields)).ok()
                };
                EventDetail::Listen { local }
            }
            Kind::Ptrace => EventDetail::Ptrace {
                request: required(self.request, "request")?,
                request_name: required(self.request_name, "request_name")?,
                target_pid: required(self.target_pid, "target_pid")?,
            },
            Kind::Setuid => EventDetail::Setuid {
                call: required(self.call, "call")?,
                ids: required(self.ids, "ids")?,
            },
            Kind::Setgid => EventDetail::Setgid {
                call: required(self.call, "call")?,
                ids: required(self.ids, "ids")?,
            },
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor(Spare::default()))
    }
}

/// Decodes one JSON event (`capture --json` line) into `event`, reusing its string buffers:
/// the same result as `*event = serde_json::from_str(json)?`, with fewer allocations. On
/// error `event` is left valid but unspecified.
pub fn decode_json_into(json: &str, event: &mut Event) -> Result<(), serde_json::Error> {
    // Plain lines (as this crate writes them) take the fast path; anything else, or anything
    // wrong, the full decoder, which gives the error.
    if super::fast::decode_plain(json, event, &mut Vec::new()) {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(json);
    *event = de.deserialize_map(EventVisitor(Spare::take_from(event)))?;
    de.end()
}

/// Decodes an event, reusing the buffers in `.0`.
struct EventVisitor(Spare);

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Event")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Event, A::Error> {
        let spare = &mut self.0;
        let mut schema: Option<u32> = None;
        let mut ts_ns: Option<u64> = None;
        let mut workload: Option<Workload> = None;
        let (mut pid, mut tid, mut ppid): (Option<u32>, Option<u32>, Option<u32>) =
            (None, None, None);
        let (mut uid, mut gid): (Option<u32>, Option<u32>) = (None, None);
        let mut comm: Option<String> = None;
        let mut exe: Option<Option<String>> = None;
        let mut parent_exe: Option<Option<String>> = None;
        let mut existing: Option<bool> = None;
        let mut blocked: Option<bool> = None;
        let mut kind: Option<Kind> = None;
        let mut detail = Detail {
            spare: spare.detail.take(),
            ..Detail::default()
        };
        // Kind-specific fields seen before `kind`.
        let mut early: Vec<(Field, Value)> = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let src = Next(&mut map);
            match key {
                Key::Schema => fill(&mut schema, "schema", src)?,
                Key::TsNs => fill(&mut ts_ns, "ts_ns", src)?,
                Key::Workload => {
                    if workload.is_some() {
                        return Err(de::Error::duplicate_field("workload"));
                    }
                    workload = Some(src.seeded(WorkloadSeed(spare))?);
                }
                Key::Pid => fill(&mut pid, "pid", src)?,
                Key::Tid => fill(&mut tid, "tid", src)?,
                Key::Ppid => fill(&mut ppid, "ppid", src)?,
                Key::Uid => fill(&mut uid, "uid", src)?,
                Key::Gid => fill(&mut gid, "gid", src)?,
                Key::Comm => fill_string(&mut comm, "comm", &mut spare.comm, src)?,
                Key::Exe => fill_opt_string(&mut exe, "exe", &mut spare.exe, src)?,
                Key::ParentExe => {
                    fill_opt_string(&mut parent_exe, "parent_exe", &mut spare.parent_exe, src)?
                }
                Key::Existing => fill(&mut existing, "existing", src)?,
                Key::Blocked => fill(&mut blocked, "blocked", src)?,
                Key::Kind => fill(&mut kind, "kind", src)?,
                Key::Detail(field) => match kind {
                    Some(kind) => detail.read(kind, field, src)?,
                    None => early.push((field, src.value()?)),
                },
                Key::Other => src.skip()?,
            }
        }
        let schema = required(schema, "schema")?;
        let ts_ns = required(ts_ns, "ts_ns")?;
        let workload = required(workload, "workload")?;
        let pid = required(pid, "pid")?;
        let tid = required(tid, "tid")?;
        let ppid = required(ppid, "ppid")?;
        let uid = required(uid, "uid")?;
        let gid = required(gid, "gid")?;
        let comm = required(comm, "comm")?;
        let kind = required(kind, "kind")?;
        for (field, v) in early {
            detail.read(kind, field, Buffered(v, PhantomData))?;
        }
        Ok(Event {
            schema,
            ts_ns,
            workload,
            pid,
            tid,
            ppid,
            uid,
            gid,
            comm,
            exe: exe.flatten(),
            parent_exe: parent_exe.flatten(),
            existing: existing.unwrap_or(false),
            blocked: blocked.unwrap_or(false),
            detail: detail.finish(kind)?,
        })
    }
}

#[cfg(test)]
mod tests;
