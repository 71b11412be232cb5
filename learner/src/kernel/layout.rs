//! Where the kernel fields the probes read directly sit in this kernel, found in its BTF.
//!
//! The probes read the task's command name and cgroup id with plain BTF-checked loads instead
//! of helper calls (each helper call costs about 100 ns on kernels with return-stack
//! mitigations, and a deduplicated `openat` made three of them). The offsets differ between
//! kernel builds, so the loader finds them here and hands them to the programs as a read-only
//! global ([`TaskLayout`]).

use btf_rs::{Backend, Btf, Type};
use learner_ebpf::{COMM_LEN, TaskLayout};
use thiserror::Error;

/// The running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the layout could not be found.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The BTF could not be read or parsed.
    #[error("reading the kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
    /// A structure is missing.
    #[error("the kernel BTF has no struct {0}")]
    NoStruct(&'static str),
    /// A field is missing or not of the expected shape.
    #[error("struct {strukt} has no field {field} of the expected type ({want})")]
    Field {
        /// The structure.
        strukt: &'static str,
        /// The field.
        field: &'static str,
        /// What the probes need it to be.
        want: &'static str,
    },
}

/// The shape a field must have for the probes' loads.
#[derive(Clone, Copy)]
enum Shape {
    /// A pointer.
    Pointer,
    /// A `char[COMM_LEN]` array.
    Comm,
    /// An 8-byte integer.
    U64,
}

impl Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::Pointer => "a pointer",
            Shape::Comm => "char[16]",
            Shape::U64 => "an 8-byte integer",
        }
    }
}

/// The layout of the running kernel. The BTF is mapped, not parsed whole (parsing all of it
/// costs about 20 MB at start-up); kernels whose sysfs BTF cannot be mapped get it parsed.
pub fn running_kernel() -> Result<TaskLayout, LayoutError> {
    let btf = Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap)
        .or_else(|_| Btf::from_file(VMLINUX_BTF))?;
    from_btf(&btf)
}

/// The layout described by `btf`.
pub fn from_btf(btf: &Btf) -> Result<TaskLayout, LayoutError> {
    Ok(TaskLayout {
        direct: 1,
        task_comm: field(btf, "task_struct", "comm", Shape::Comm)?,
        task_cgroups: field(btf, "task_struct", "cgroups", Shape::Pointer)?,
        css_set_dfl_cgrp: field(btf, "css_set", "dfl_cgrp", Shape::Pointer)?,
        cgroup_kn: field(btf, "cgroup", "kn", Shape::Pointer)?,
        kernfs_node_id: field(btf, "kernfs_node", "id", Shape::U64)?,
    })
}

/// Byte offset of `strukt.name`, checked to have `shape`.
fn field(
    btf: &Btf,
    strukt: &'static str,
    name: &'static str,
    shape: Shape,
) -> Result<u32, LayoutError> {
    let missing = || LayoutError::Field {
        strukt,
        field: name,
        want: shape.describe(),
    };
    let s = btf
        .resolve_types_by_name(strukt)
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .ok_or(LayoutError::NoStruct(strukt))?;
    let (bits, ty) = find_member(btf, &s, name)?.ok_or_else(missing)?;
    if bits % 8 != 0 || !has_shape(btf, ty, shape)? {
        return Err(missing());
    }
    Ok(bits / 8)
}

/// The bit offset and type of member `name`, looking into anonymous structs and unions.
fn find_member(
    btf: &Btf,
    s: &btf_rs::Struct,
    name: &str,
) -> Result<Option<(u32, Type)>, LayoutError> {
    for m in &s.members {
        if m.bitfield_size().is_some_and(|n| n != 0) {
            continue;
        }
        let ty = btf.resolve_chained_type(m)?;
        let member_name = btf.resolve_name(m).unwrap_or_default();
        if member_name == name {
            return Ok(Some((m.bit_offset(), ty)));
        }
        if member_name.is_empty()
            && let Type::Struct(inner) | Type::Union(inner) = &ty
            && let Some((bits, t)) = find_member(btf, inner, name)?
        {
            return Ok(Some((m.bit_offset() + bits, t)));
        }
    }
    Ok(None)
}

/// Whether `ty`, without typedefs and qualifiers, has `shape`.
fn has_shape(btf: &Btf, ty: Type, shape: Shape) -> Result<bool, LayoutError> {
    Ok(match (shape, strip(btf, ty)?) {
        (Shape::Pointer, Type::Ptr(_)) => true,
        (Shape::Comm, Type::Array(a)) => {
            a.len() == COMM_LEN
                && matches!(strip(btf, btf.resolve_chained_type(&a)?)?, Type::Int(i) if i.size() == 1)
        }
        (Shape::U64, Type::Int(i)) => i.size() == 8,
        _ => false,
    })
}

/// `ty` without typedefs, qualifiers and type tags.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type, LayoutError> {
    loop {
        match &ty {
            Type::Typedef(_)
            | Type::Volatile(_)
            | Type::Const(_)
            | Type::Restrict(_)
            | Type::TypeTag(_) => {
                let inner = ty.as_btf_type().expect("qualifiers are BTF types");
                ty = btf.resolve_chained_type(inner)?;
            }
            _ => return Ok(ty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a kernel with BTF (every kernel the agent runs on), the layout is found and each
    /// field lies inside its structure.
    #[test]
    fn finds_the_running_kernels_layout() {
        let Ok(btf) = Btf::from_file(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        };
        let l = from_btf(&btf).expect("layout");
        assert_eq!(l.direct, 1);
        let size = |name| match btf.resolve_types_by_name(name).unwrap()[..] {
            [Type::Struct(ref s), ..] => s.size() as u32,
            _ => panic!("{name}"),
        };
        assert!(l.task_comm + COMM_LEN as u32 <= size("task_struct"));
        assert!(l.task_cgroups + 8 <= size("task_struct"));
        assert!(l.css_set_dfl_cgrp + 8 <= size("css_set"));
        assert!(l.cgroup_kn + 8 <= size("cgroup"));
        assert!(l.kernfs_node_id + 8 <= size("kernfs_node"));
        assert_ne!(l.task_comm, l.task_cgroups);
    }

    /// A field of the wrong shape is refused, not guessed at.
    #[test]
    fn refuses_a_field_of_the_wrong_shape() {
        let Ok(btf) = Btf::from_file(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        };
        // `pid` is a 4-byte integer, not a pointer; `no_such_field` does not exist.
        let e = field(&btf, "task_struct", "pid", Shape::Pointer).unwrap_err();
        assert!(
            e.to_string().contains("task_struct has no field pid"),
            "{e}"
        );
        assert!(field(&btf, "task_struct", "no_such_field", Shape::U64).is_err());
        assert!(matches!(
            field(&btf, "no_such_struct_here", "x", Shape::U64),
            Err(LayoutError::NoStruct(_))
        ));
    }
}
