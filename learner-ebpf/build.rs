//! Sets `bpf_target_arch` when the crate is built without aya-build (e.g. by clippy), so the
//! syscall numbers of the host architecture are used.

fn main() -> aya_build::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()
}
