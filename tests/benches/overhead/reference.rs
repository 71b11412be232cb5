//! Reference programs on `syscalls:sys_enter_openat`, the tracepoint the agent's open probe
//! uses: what any such probe costs before it does its own work.
//!
//! - [`Reference::Noop`] returns at once: what the kernel charges for running a BPF program on
//!   every `openat` (the syscall-tracing entry on every syscall, the tracepoint's dispatch).
//! - [`Reference::CopyPath`] copies the path argument with `bpf_probe_read_user_str` and
//!   returns: the least a probe that records what was opened must do.
//!
//! Each is a handful of instructions loaded with bpf(2) and attached with perf_event_open(2),
//! as aya attaches the agent's tracepoint programs, so no object file is involved.

use std::{
    ffi::c_void,
    fs,
    os::fd::{FromRawFd as _, OwnedFd},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail, ensure};

/// A reference program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reference {
    Noop,
    CopyPath,
}

/// An attached reference program; dropping it detaches it.
pub(crate) struct Attached {
    // Declared first, so dropped (detached) before the program is closed.
    _event: OwnedFd,
    _prog: OwnedFd,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_FUNC_PROBE_READ_USER_STR: i32 = 114;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// Bytes of path the copying program reads, as the agent's probe does.
const PATH_LEN: i32 = 256;

/// One BPF instruction: opcode, destination and source registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

impl Reference {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reference::Noop => "a do-nothing program on sys_enter_openat",
            Reference::CopyPath => "a program that only copies the path",
        }
    }

    /// The program; `filename_off` is where the tracepoint record holds the path pointer.
    fn insns(self, filename_off: i16) -> Vec<u64> {
        const MOV64_IMM: u8 = 0xb7;
        const MOV64_REG: u8 = 0xbf;
        const ADD64_IMM: u8 = 0x07;
        const LDX_DW: u8 = 0x79;
        const CALL: u8 = 0x85;
        const EXIT: u8 = 0x95;
        let ret0 = [insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
        match self {
            Reference::Noop => ret0.to_vec(),
            Reference::CopyPath => {
                let mut v = vec![
                    // r3 = ctx->filename
                    insn(LDX_DW, 3, 1, filename_off, 0),
                    // r1 = a PATH_LEN buffer on the stack, r2 = PATH_LEN
                    insn(MOV64_REG, 1, 10, 0, 0),
                    insn(ADD64_IMM, 1, 0, 0, -PATH_LEN),
                    insn(MOV64_IMM, 2, 0, 0, PATH_LEN),
                    insn(CALL, 0, 0, 0, BPF_FUNC_PROBE_READ_USER_STR),
                ];
                v.extend(ret0);
                v
            }
        }
    }

    /// Loads the program and attaches it to `syscalls:sys_enter_openat`.
    pub(crate) fn attach(self) -> Result<Attached> {
        let dir = tracepoint_dir()?;
        let id: u64 = fs::read_to_string(dir.join("id"))
            .context("reading the tracepoint's id")?
            .trim()
            .parse()
            .context("parsing the tracepoint's id")?;
        let format = fs::read_to_string(dir.join("format")).context("reading its format")?;
        let off = field_offset(&format, "filename")
            .context("no filename field in the sys_enter_openat format")?;
        let prog = load(&self.insns(off))
            .with_context(|| format!("loading {} ({self:?})", self.label()))?;
        let event = open_tracepoint(id)?;
        // SAFETY: plain ioctls on a perf event fd this function owns, with a program fd argument.
        unsafe {
            use std::os::fd::AsRawFd as _;
            if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) < 0 {
                return Err(std::io::Error::last_os_error()).context("attaching the program");
            }
            if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) < 0 {
                return Err(std::io::Error::last_os_error()).context("enabling the event");
            }
        }
        Ok(Attached {
            _event: event,
            _prog: prog,
        })
    }
}

/// The tracefs directory of `syscalls:sys_enter_openat` (the agent mounts tracefs when needed).
fn tracepoint_dir() -> Result<PathBuf> {
    for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let dir = PathBuf::from(root).join("events/syscalls/sys_enter_openat");
        if dir.join("id").exists() {
            return Ok(dir);
        }
    }
    bail!("syscalls:sys_enter_openat not found: is tracefs mounted at /sys/kernel/tracing?")
}

/// The offset of field `name` in a tracefs `format` description.
fn field_offset(format: &str, name: &str) -> Option<i16> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let decl = parts.next()?.strip_prefix("field:")?;
        if decl.rsplit([' ', '*']).next()? != name {
            return None;
        }
        parts.find_map(|p| p.strip_prefix("offset:")?.parse().ok())
    })
}

/// bpf(BPF_PROG_LOAD) of a GPL tracepoint program; the verifier's log on failure.
fn load(insns: &[u64]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 1 << 16];
    // union bpf_attr, BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level,
    // log_size, log_buf (the rest zero).
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    attr[48..58].copy_from_slice(b"bench_ref\0");
    // SAFETY: `attr` points at valid memory of the size given; the pointers in it outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr() as *const c_void,
            attr.len(),
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        bail!(
            "bpf(BPF_PROG_LOAD): {err}; verifier: {}",
            String::from_utf8_lossy(&log[..end]).trim()
        );
    }
    // SAFETY: a new fd the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// perf_event_open of tracepoint `id` on CPU 0 for all tasks: BPF programs attached to it run
/// on every CPU.
fn open_tracepoint(id: u64) -> Result<OwnedFd> {
    // struct perf_event_attr, first version (64 bytes): type, size, config, sample_period, ...,
    // wakeup_events.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&id.to_ne_bytes());
    attr[16..24].copy_from_slice(&1u64.to_ne_bytes());
    attr[48..52].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: `attr` is a valid perf_event_attr of the size it states.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr() as *const c_void,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    ensure!(
        fd >= 0,
        "perf_event_open of the tracepoint: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as in `load`.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
