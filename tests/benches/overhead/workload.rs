//! The workload side: tight loops run in a child process inside the test cgroup, and their setup.

use std::{
    ffi::CString,
    fs,
    io::Read,
    net::{Ipv4Addr, TcpListener},
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::{self},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use baseliner_tests::TestCgroup;

use crate::agent::vm_rss_kib;

// ---------------------------------------------------------------------------------------------
// Workload side: `__loop <kind> <seconds> [params]`, prints "<ops> <elapsed seconds>".

pub(crate) fn workload(args: &[String]) -> Result<()> {
    let kind = args.first().context("__loop needs a kind")?.as_str();
    let secs: f64 = args
        .get(1)
        .context("__loop needs seconds")?
        .parse()
        .context("seconds")?;
    let params = &args[2.min(args.len())..];
    let run_for = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let ops = match kind {
        "exec" => loop_exec(start, run_for)?,
        "open" => {
            let dir = params.first().context("open needs a directory")?;
            let n: usize = params.get(1).context("open needs a file count")?.parse()?;
            let paths = (0..n)
                .map(|i| CString::new(file_path(Path::new(dir), i).as_os_str().as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            loop_open(start, run_for, &paths)?
        }
        "connect" => {
            let port: u16 = params.first().context("connect needs a port")?.parse()?;
            loop_connect(start, run_for, port)?
        }
        other => bail!("unknown loop {other}"),
    };
    println!("{ops} {} {}", start.elapsed().as_secs_f64(), cpu_seconds());
    Ok(())
}

/// CPU time (user + system) of this process and its waited-for children, in seconds. Time
/// the kernel spends in tracepoints and BPF programs on the workload's behalf is system time
/// of the workload; time other tenants of the machine take is not counted.
fn cpu_seconds() -> f64 {
    let secs = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    secs(libc::RUSAGE_SELF) + secs(libc::RUSAGE_CHILDREN)
}

pub(crate) fn loop_exec(start: Instant, run_for: Duration) -> Result<u64> {
    let mut ops = 0;
    while start.elapsed() < run_for {
        let st = Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
        ensure!(st.success(), "/bin/true failed: {st}");
        ops += 1;
    }
    Ok(ops)
}

pub(crate) fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

pub(crate) fn loop_open(start: Instant, run_for: Duration, paths: &[CString]) -> Result<u64> {
    let mut ops: u64 = 0;
    while start.elapsed() < run_for {
        // Check the clock every 32 operations; a clock read is not free next to open+close.
        for _ in 0..32 {
            let p = &paths[(ops as usize) % paths.len()];
            // SAFETY: `p` is a NUL-terminated path; the returned fd is closed right away.
            let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(errno()).with_context(|| format!("opening {p:?}"));
            }
            // SAFETY: `fd` was just opened by us.
            unsafe { libc::close(fd) };
            ops += 1;
        }
    }
    Ok(ops)
}

pub(crate) fn loop_connect(start: Instant, run_for: Duration, port: u16) -> Result<u64> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // Close with a reset (SO_LINGER 0): no TIME_WAIT sockets pile up and exhaust local ports.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let mut ops: u64 = 0;
    while start.elapsed() < run_for {
        for _ in 0..8 {
            // SAFETY: plain socket/connect/setsockopt/close on a descriptor we own, with
            // pointers to live locals and their exact sizes.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(errno()).context("socket");
                }
                let rc = libc::connect(
                    fd,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                if rc != 0 {
                    let e = errno();
                    libc::close(fd);
                    return Err(e).with_context(|| format!("connecting to 127.0.0.1:{port}"));
                }
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
                libc::close(fd);
            }
            ops += 1;
        }
    }
    Ok(ops)
}

pub(crate) fn file_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("f{i:04}"))
}

/// A directory of small files, removed on drop.
pub(crate) struct TempFiles {
    pub(crate) dir: PathBuf,
}

impl TempFiles {
    pub(crate) fn create(n: usize) -> Result<TempFiles> {
        let dir = std::env::temp_dir().join(format!("baseliner-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = TempFiles { dir };
        for i in 0..n {
            fs::write(file_path(&files.dir, i), b"baseliner overhead bench\n")?;
        }
        Ok(files)
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A loopback listener that accepts and immediately closes connections, on a thread; its port.
pub(crate) fn start_listener() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1")?;
    // A deep accept queue: a full one drops SYNs and stalls connect() for a 1 s retransmit.
    // Calling listen(2) again on a listening socket only changes its backlog.
    // SAFETY: plain listen(2) on a socket we own.
    unsafe { libc::listen(l.as_raw_fd(), 4096) };
    let port = l.local_addr()?.port();
    thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    Ok(port)
}

/// One workload run: operations per second, and the agent's peak RSS (second half of the run).
pub(crate) struct Run {
    /// Operations the loop completed.
    pub(crate) ops: u64,
    pub(crate) ops_per_s: f64,
    /// Operations per CPU-second of the workload: steadier than wall-clock throughput on a
    /// shared machine, and it still includes the in-kernel cost of the probes.
    pub(crate) ops_per_cpu_s: f64,
    pub(crate) rss_kib: Option<u64>,
}

/// Runs the workload `kind params` for `secs` in `cg`, sampling `agent_pid`'s RSS meanwhile.
pub(crate) fn run_workload(
    cg: &TestCgroup,
    kind: &str,
    params: &[String],
    secs: f64,
    agent_pid: Option<i32>,
) -> Result<Run> {
    let exe = std::env::current_exe().context("current exe")?;
    let mut child = cg
        .command(&exe)
        .arg("__loop")
        .arg(kind)
        .arg(secs.to_string())
        .args(params)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the workload")?;
    let start = Instant::now();
    let mut rss_kib = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let t = start.elapsed().as_secs_f64();
        if let Some(pid) = agent_pid
            && t >= secs * 0.5
            && let Some(r) = vm_rss_kib(pid)
        {
            rss_kib = Some(rss_kib.unwrap_or(0).max(r));
        }
        if t > secs + 60.0 {
            let _ = child.kill();
            let _ = child.wait();
            bail!("workload {kind} did not finish");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("workload stdout")?
        .read_to_string(&mut out)?;
    ensure!(status.success(), "workload {kind} failed ({status})");
    let mut it = out.split_whitespace();
    let ops: u64 = it.next().context("workload printed nothing")?.parse()?;
    let elapsed: f64 = it.next().context("workload printed no time")?.parse()?;
    let cpu: f64 = it.next().context("workload printed no CPU time")?.parse()?;
    Ok(Run {
        ops,
        ops_per_s: ops as f64 / elapsed,
        ops_per_cpu_s: ops as f64 / cpu.max(1e-9),
        rss_kib,
    })
}
