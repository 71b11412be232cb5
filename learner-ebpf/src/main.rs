//! Baseliner's eBPF programs: tracepoints that capture exec, file, network and privilege events
//! of monitored cgroups into one ring buffer, with in-kernel deduplication and statistics.
#![no_std]
#![no_main]
// BPF has atomic add but no compare-and-swap, so core's atomics lack fetch_add here.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod emit;
mod enforce;
mod exec;
mod file;
mod maps;
mod net;
mod privilege;
mod syscalls;

/// Reads a field of a tracepoint record (the verifier allows direct context loads).
///
/// # Safety
/// `offset` must lie inside the tracepoint's record and `T` must match the field.
#[inline(always)]
pub(crate) unsafe fn ctx_read<T: Copy>(
    ctx: &aya_ebpf::programs::TracePointContext,
    offset: usize,
) -> T {
    use aya_ebpf::EbpfContext;
    unsafe { core::ptr::read_unaligned((ctx.as_ptr() as *const u8).add(offset) as *const T) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
