//! Profile size of typical servers: nginx, redis and postgres each run in their own test cgroup
//! under load from a loopback load generator, are restarted once mid-run, and `baseliner run`
//! learns them. Reported per server: entries per kind, total entries and exported JSON bytes
//! against the targets (≤ 200 entries, ≤ 64 KB exported), what the restart added, and where the
//! file entries are.
//!
//! Needs root and the servers: missing Debian packages (nginx, redis-server, wrk, postgresql)
//! are installed with apt-get unless `BENCH_NO_INSTALL=1`; a server that cannot be installed is
//! skipped with a note. Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench server_profiles`. Environment: `BENCH_SECONDS` (load
//! per server, split around the restart; default 16), `BENCH_SERVERS` (comma-separated subset of
//! `nginx,redis,postgres`), `BENCH_EXPORT_DIR` (keep each export there as `<server>-<revision>.json`). Servers listen on 127.0.0.1 only; their data lives in
//! `/var/lib/baseliner-bench-<pid>/`, removed at the end.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use baseliner_tests::{LearnAgent, TestCgroup, baseliner_bin, bench_main, env_num};
use serde_json::Value;

/// Targets from the issue.
const TARGET_ENTRIES: usize = 200;
const TARGET_BYTES: usize = 64 * 1024;
const KINDS: [&str; 5] = ["execs", "lineage", "files", "connects", "listens"];

fn main() -> ExitCode {
    // Anything on the command line (cargo passes `--bench`) is ignored.
    bench_main("server_profiles bench", bench)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nginx,
    Redis,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Redis => "redis",
            Kind::Postgres => "postgres",
        }
    }
}

/// Where the tools are, once installed.
struct Tools {
    nginx: Option<PathBuf>,
    wrk: Option<PathBuf>,
    curl: Option<PathBuf>,
    redis_server: Option<PathBuf>,
    redis_benchmark: Option<PathBuf>,
    redis_cli: Option<PathBuf>,
    /// `/usr/lib/postgresql/<version>/bin` of the newest version with a server.
    pg_bin: Option<PathBuf>,
}

fn existing(p: &str) -> Option<PathBuf> {
    let p = PathBuf::from(p);
    p.exists().then_some(p)
}

fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

impl Tools {
    fn find() -> Tools {
        Tools {
            nginx: existing("/usr/sbin/nginx"),
            wrk: existing("/usr/bin/wrk"),
            curl: existing("/usr/bin/curl"),
            redis_server: existing("/usr/bin/redis-server"),
            redis_benchmark: existing("/usr/bin/redis-benchmark"),
            redis_cli: existing("/usr/bin/redis-cli"),
            pg_bin: pg_bin(),
        }
    }

    /// Debian packages that would provide what is missing.
    fn missing_packages(&self) -> Vec<&'static str> {
        let pg_tools = self
            .pg_bin
            .as_ref()
            .is_some_and(|b| b.join("pgbench").exists() && b.join("pg_isready").exists());
        let wanted = [
            (self.nginx.is_some(), "nginx"),
            (self.wrk.is_some(), "wrk"),
            (self.redis_server.is_some(), "redis-server"),
            (
                self.redis_benchmark.is_some() && self.redis_cli.is_some(),
                "redis-tools",
            ),
            (self.pg_bin.is_some() && pg_tools, "postgresql"),
        ];
        wanted
            .into_iter()
            .filter(|(have, _)| !have)
            .map(|(_, p)| p)
            .collect()
    }

    /// Whether `kind` can run, or why not.
    fn check(&self, kind: Kind) -> Result<(), String> {
        let missing = match kind {
            Kind::Nginx if self.nginx.is_none() => "nginx",
            Kind::Nginx if self.wrk.is_none() && self.curl.is_none() => "wrk or curl",
            Kind::Redis if self.redis_server.is_none() => "redis-server",
            Kind::Redis if self.redis_benchmark.is_none() => "redis-benchmark",
            Kind::Postgres if self.pg_bin.is_none() => "the postgres server",
            Kind::Postgres if user_ids("postgres").is_none() => "the postgres user",
            _ => return Ok(()),
        };
        Err(format!("{missing} is not installed"))
    }
}

fn apt_get(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs what is missing (idempotent: nothing happens when everything is there).
fn install(tools: Tools) -> Tools {
    let missing = tools.missing_packages();
    if missing.is_empty() {
        return tools;
    }
    if std::env::var("BENCH_NO_INSTALL").is_ok_and(|v| v == "1") {
        println!("not installing {} (BENCH_NO_INSTALL=1)", missing.join(", "));
        return tools;
    }
    println!("installing with apt-get: {}", missing.join(", "));
    if !apt_get(&["update", "-qq"]) {
        println!("  apt-get update failed; trying the install anyway");
    }
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    if !apt_get(&args) {
        // One package that cannot be installed must not keep the others out.
        for p in &missing {
            if !apt_get(&["install", "-y", "-qq", "--no-install-recommends", p]) {
                println!("  could not install {p}");
            }
        }
    }
    Tools::find()
}

/// uid and gid of a system user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.split(':').next() == Some(name))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn chown_tree(path: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() {
        for e in fs::read_dir(path)? {
            chown_tree(&e?.path(), (uid, gid))?;
        }
    }
    Ok(())
}

/// A command that runs inside `cg` as `user` (moved into the cgroup as root first, then the
/// privileges are dropped, as a service manager does).
fn service_command(cg: &TestCgroup, program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = cg.command(program);
    if let Some((uid, gid)) = user {
        // SAFETY: setgroups/setgid/setuid are async-signal-safe; the closure runs in the
        // freshly forked child after the cgroup move registered by `TestCgroup::command`.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// A free loopback port (bound and released; the server binds it right after).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, server: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(s) = server.try_wait()? {
            bail!("the server exited before it listened: {s}");
        }
        ensure!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a server gracefully with `signal` (SIGKILL after 30 s).
fn stop(server: &mut Child, signal: i32) -> Result<()> {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(server.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.try_wait()?.is_none() {
        if Instant::now() > deadline {
            server.kill()?;
            server.wait()?;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs a load generator to completion; returns its stdout.
fn run_load(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lines of a load generator's output that carry its throughput (progress lines that end
/// in a carriage return are skipped).
fn throughput(out: &str, keys: &[&str]) -> String {
    out.lines()
        .filter_map(|l| l.rsplit('\r').map(str::trim).find(|s| !s.is_empty()))
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One server under test: how to set it up, start it and drive it.
struct Server<'a> {
    kind: Kind,
    tools: &'a Tools,
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
}

/// Static site of the nginx server: (path under the root, bytes).
const SITE: &[(&str, usize)] = &[
    ("index.html", 4_000),
    ("about.html", 3_000),
    ("contact.html", 2_000),
    ("blog/index.html", 5_000),
    ("blog/2026/11/launch.html", 6_000),
    ("css/site.css", 12_000),
    ("css/vendor.min.css", 40_000),
    ("js/app.3f9a2c1b.js", 60_000),
    ("js/vendor.8e7d6c5b.js", 120_000),
    ("img/logo.svg", 2_000),
    ("img/hero.jpg", 90_000),
    ("img/team-1.jpg", 20_000),
    ("img/team-2.jpg", 20_000),
    ("img/team-3.jpg", 20_000),
    ("fonts/inter-var.woff2", 30_000),
    ("favicon.ico", 1_000),
    ("robots.txt", 100),
];

/// Requests of the nginx load: the site plus a few misses, as any public server sees.
const MISSES: &[&str] = &["/wp-login.php", "/.env", "/favicon.png", "/blog/"];

impl Server<'_> {
    fn setup(&self) -> Result<()> {
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755))?;
        let d = self.dir.display();
        match self.kind {
            Kind::Nginx => {
                for sub in ["conf", "logs", "tmp"] {
                    fs::create_dir_all(self.dir.join(sub))?;
                }
                for (path, size) in SITE {
                    let p = self.dir.join("html").join(path);
                    fs::create_dir_all(p.parent().context("site path")?)?;
                    fs::write(&p, "x".repeat(*size))?;
                }
                let conf = format!(
                    "daemon off;\nworker_processes 2;\npid {d}/logs/nginx.pid;\n\
                     error_log {d}/logs/error.log;\n\
                     events {{ worker_connections 512; }}\n\
                     http {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n\
                     \x20 access_log {d}/logs/access.log;\n  sendfile on;\n  keepalive_timeout 65;\n\
                     \x20 client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
                     \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
                     \x20 scgi_temp_path {d}/tmp/scgi;\n\
                     \x20 server {{\n    listen 127.0.0.1:{port};\n    root {d}/html;\n\
                     \x20   index index.html;\n    location / {{ try_files $uri $uri/ =404; }}\n  }}\n}}\n",
                    port = self.port
                );
                fs::write(self.dir.join("conf/nginx.conf"), conf)?;
                let mut paths: Vec<String> = SITE.iter().map(|(p, _)| format!("/{p}")).collect();
                paths.extend(MISSES.iter().map(|p| p.to_string()));
                let list = paths
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                // wrk: each request takes the next path of the list.
                fs::write(
                    self.dir.join("paths.lua"),
                    format!(
                        "local paths = {{{list}}}\nlocal i = 0\n\
                         request = function()\n  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\nend\n"
                    ),
                )?;
            }
            Kind::Redis => {
                if let Some(user) = self.user {
                    chown_tree(&self.dir, user)?;
                }
                let conf = format!(
                    "bind 127.0.0.1\nport {port}\nprotected-mode yes\ndaemonize no\n\
                     dir {d}\ndbfilename dump.rdb\nsave 5 1000\nappendonly yes\n\
                     appendfsync everysec\nlogfile {d}/redis.log\npidfile {d}/redis.pid\n",
                    port = self.port
                );
                fs::write(self.dir.join("redis.conf"), conf)?;
            }
            Kind::Postgres => {
                let bin = self.tools.pg_bin.as_ref().context("postgres")?;
                fs::create_dir_all(self.dir.join("sock"))?;
                let user = self.user.context("the postgres user")?;
                chown_tree(&self.dir, user)?;
                // initdb is installation, not the workload: it runs outside the cgroup.
                let out = Command::new(bin.join("initdb"))
                    .args(["-U", "postgres", "--auth=trust", "--no-sync", "-D"])
                    .arg(self.dir.join("data"))
                    .uid(user.0)
                    .gid(user.1)
                    .current_dir(&self.dir)
                    .output()
                    .context("running initdb")?;
                ensure!(
                    out.status.success(),
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }

    fn start(&self, cg: &TestCgroup) -> Result<Child> {
        let d = &self.dir;
        let mut cmd = match self.kind {
            Kind::Nginx => {
                let mut c = service_command(cg, self.tools.nginx.as_ref().context("nginx")?, None);
                c.arg("-p").arg(d).arg("-c").arg(d.join("conf/nginx.conf"));
                c.arg("-e").arg(d.join("logs/error.log"));
                c
            }
            Kind::Redis => {
                let bin = self.tools.redis_server.as_ref().context("redis-server")?;
                let mut c = service_command(cg, bin, self.user);
                c.arg(d.join("redis.conf")).current_dir(d);
                c
            }
            Kind::Postgres => {
                let bin = self.tools.pg_bin.as_ref().context("postgres")?;
                let mut c = service_command(cg, &bin.join("postgres"), self.user);
                c.arg("-D").arg(d.join("data"));
                c.args(["-p", &self.port.to_string()]);
                c.args(["-c", "listen_addresses=127.0.0.1", "-k"]);
                c.arg(d.join("sock")).current_dir(d);
                c
            }
        };
        let log = fs::File::create(d.join(format!("{}.out", self.kind.name())))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.kind.name()))?;
        wait_for_port(self.port, &mut child, Duration::from_secs(30))?;
        if self.kind == Kind::Postgres {
            let bin = self.tools.pg_bin.as_ref().context("postgres")?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
            {
                ensure!(Instant::now() < deadline, "postgres did not get ready");
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(child)
    }

    /// Graceful stop signal of the server.
    fn stop_signal(&self) -> i32 {
        match self.kind {
            Kind::Nginx => libc::SIGQUIT,   // graceful shutdown
            Kind::Redis => libc::SIGTERM,   // saves, then exits
            Kind::Postgres => libc::SIGINT, // fast shutdown
        }
    }

    /// Drives the server for `secs` seconds from outside its cgroup; returns the throughput.
    fn load(&self, secs: u64, first: bool) -> Result<String> {
        let port = self.port.to_string();
        let deadline = Instant::now() + Duration::from_secs(secs);
        match self.kind {
            Kind::Nginx => {
                if let Some(wrk) = &self.tools.wrk {
                    let out = run_load(
                        Command::new(wrk)
                            .args(["-t", "2", "-c", "16", "-d", &format!("{secs}s"), "-s"])
                            .arg(self.dir.join("paths.lua"))
                            .arg(format!("http://127.0.0.1:{port}/")),
                    )?;
                    return Ok(format!("wrk: {}", throughput(&out, &["Requests/sec"])));
                }
                let curl = self.tools.curl.as_ref().context("curl")?;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let urls = SITE
                        .iter()
                        .map(|(p, _)| format!("http://127.0.0.1:{port}/{p}"))
                        .chain(MISSES.iter().map(|p| format!("http://127.0.0.1:{port}{p}")));
                    let mut cmd = Command::new(curl);
                    cmd.args(["-s", "-o", "/dev/null"]);
                    for u in urls {
                        cmd.arg(u);
                        n += 1;
                    }
                    run_load(&mut cmd)?;
                }
                Ok(format!(
                    "curl: {:.0} requests/s",
                    n as f64 / secs.max(1) as f64
                ))
            }
            Kind::Redis => {
                let bench = self
                    .tools
                    .redis_benchmark
                    .as_ref()
                    .context("redis-benchmark")?;
                let mut lines = Vec::new();
                let mut round = 0;
                while Instant::now() < deadline {
                    let out = run_load(
                        Command::new(bench)
                            .args(["-h", "127.0.0.1", "-p", &port, "-q", "-c", "20"])
                            .args(["-n", "20000", "-r", "100000", "-d", "64"])
                            .args(["-t", "set,get,incr,lpush,rpop,sadd,hset,lrange_100"]),
                    )?;
                    if round == 0 {
                        lines.push(throughput(&out, &["SET:", "GET:"]));
                    }
                    if round == 1
                        && let Some(cli) = &self.tools.redis_cli
                    {
                        // What an operator or a backup job does now and then.
                        for c in ["BGSAVE", "BGREWRITEAOF"] {
                            run_load(Command::new(cli).args(["-h", "127.0.0.1", "-p", &port, c]))?;
                        }
                    }
                    round += 1;
                }
                Ok(format!(
                    "redis-benchmark ({round} rounds): {}",
                    lines.join("; ")
                ))
            }
            Kind::Postgres => {
                let bin = self.tools.pg_bin.as_ref().context("postgres")?;
                let pgbench = |extra: &[&str]| {
                    run_load(
                        Command::new(bin.join("pgbench"))
                            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                            .args(extra)
                            .arg("postgres"),
                    )
                };
                let mut note = String::new();
                if first {
                    let start = Instant::now();
                    pgbench(&["-i", "-s", "5", "-q"])?;
                    note = format!(
                        "pgbench -i -s 5 in {:.1} s; ",
                        start.elapsed().as_secs_f64()
                    );
                }
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(2);
                let out = pgbench(&["-T", &left.to_string(), "-c", "4", "-j", "2"])?;
                Ok(format!(
                    "{note}pgbench -T {left}: {}",
                    throughput(&out, &["tps ="])
                ))
            }
        }
    }
}

/// One exported profile, summarised.
struct Summary {
    revision: String,
    counts: BTreeMap<&'static str, usize>,
    total: usize,
    bytes: usize,
    json: Value,
}

impl Summary {
    fn of(export: &str) -> Result<Summary> {
        let json: Value = serde_json::from_str(export).context("parsing the export")?;
        let mut counts = BTreeMap::new();
        for k in KINDS {
            let n = json["profile"][k].as_array().map_or(0, Vec::len);
            counts.insert(k, n);
        }
        Ok(Summary {
            revision: json["revision"].as_str().unwrap_or("?").to_string(),
            total: counts.values().sum(),
            counts,
            bytes: export.len(),
            json,
        })
    }

    /// Every entry as `kind entry-json`, for set differences.
    fn keys(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for k in KINDS {
            for pair in self.json["profile"][k].as_array().into_iter().flatten() {
                out.insert(format!("{k} {}", pair[0]));
            }
        }
        out
    }

    fn line(&self) -> String {
        let kinds = KINDS
            .iter()
            .map(|k| format!("{k} {}", self.counts[k]))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} entries ({kinds}), {} bytes exported JSON ({:.1} KiB)",
            self.total,
            self.bytes,
            self.bytes as f64 / 1024.0
        )
    }

    /// File entries grouped by directory, largest first.
    fn file_dirs(&self) -> Vec<(String, usize)> {
        let mut dirs: BTreeMap<String, usize> = BTreeMap::new();
        for pair in self.json["profile"]["files"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let path = pair[0]["path"].as_str().unwrap_or("");
            let dir = profiles::generalize::parent_dir(path).unwrap_or(path);
            *dirs.entry(dir.to_string()).or_default() += 1;
        }
        let mut v: Vec<_> = dirs.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Entries of `kind` as short text.
    fn entries(&self, kind: &str) -> Vec<String> {
        self.json["profile"][kind]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| compact(&pair[0]))
            .collect()
    }
}

/// An entry as short text: its values joined by spaces.
fn compact(entry: &Value) -> String {
    match entry {
        Value::Object(m) => m.values().map(compact).collect::<Vec<_>>().join(" "),
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(", ")),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn baseliner(args: &[&str], store: &Path) -> Result<String> {
    let out = Command::new(baseliner_bin())
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .context("running baseliner")?;
    ensure!(
        out.status.success(),
        "baseliner {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every revision of `workload` in the store (through the running agent when there is one).
fn revisions(store: &Path, workload: &str) -> Result<Vec<String>> {
    let list = baseliner(&["profile", "list"], store)?;
    Ok(list
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            (cols.next() == Some(workload)).then(|| cols.next().map(String::from))?
        })
        .collect())
}

/// The latest profile of `workload`, while the agent runs.
fn snapshot(store: &Path, workload: &str) -> Result<Summary> {
    Summary::of(&baseliner(&["profile", "export", workload], store)?)
}

/// Removes the servers' data directory on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills a server on drop (its cgroup's drop kills whatever it forked).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn verdict(value: usize, target: usize) -> String {
    let ratio = value as f64 / target as f64;
    if value <= target {
        format!("within ({ratio:.2}×)")
    } else {
        format!("OVER ({ratio:.2}×)")
    }
}

fn run_server(kind: Kind, tools: &Tools, root: &Path, secs: u64) -> Result<()> {
    let name = kind.name();
    let user = match kind {
        Kind::Nginx => None,
        Kind::Redis => user_ids("redis"),
        Kind::Postgres => user_ids("postgres"),
    };
    let server = Server {
        kind,
        tools,
        dir: root.join(name),
        port: free_port()?,
        user,
    };
    server.setup()?;
    let store = root.join(format!("store-{name}"));
    let cg = TestCgroup::new(name).context("creating the test cgroup")?;
    let agent = LearnAgent::start(&store, &[&cg.path], &["--flush-interval", "1"])
        .context("starting baseliner run")?;
    let started = Instant::now();
    let mut running = Running(Some(server.start(&cg)?));
    let half = secs.div_ceil(2);
    let first = server.load(half, true)?;
    // Several flush intervals, then what the profile holds before the restart.
    thread::sleep(Duration::from_millis(2500));
    let before = snapshot(&store, &cg.rel);
    if let Some(c) = &mut running.0 {
        stop(c, server.stop_signal())?;
    }
    running.0 = Some(server.start(&cg)?);
    thread::sleep(Duration::from_millis(2500));
    let restarted = snapshot(&store, &cg.rel);
    let second = server.load(half, false)?;
    if let Some(c) = &mut running.0 {
        stop(c, server.stop_signal())?;
    }
    thread::sleep(Duration::from_millis(1500));
    let (status, log) = agent.stop().context("stopping the agent")?;
    ensure!(status.success(), "the agent failed: {status}; log: {log:?}");
    drop(running);
    let workload = cg.rel.clone();
    drop(cg);
    let agent_line = log
        .iter()
        .rev()
        .find(|l| l.contains("recorded"))
        .map_or("", |l| l.trim());

    println!(
        "\n== {name} ({:.0} s, port {}, user {}) ==",
        started.elapsed().as_secs_f64(),
        server.port,
        match user {
            Some((uid, _)) => uid.to_string(),
            None => "root (workers: nobody)".into(),
        }
    );
    println!("load before the restart: {first}");
    println!("load after the restart:  {second}");
    println!("agent: {agent_line}");
    let revs = revisions(&store, &workload)?;
    ensure!(!revs.is_empty(), "no profile for {workload}");
    if revs.len() > 1 {
        println!("{} revisions: {}", revs.len(), revs.join(", "));
    }
    let mut last = None;
    for rev in &revs {
        let export = baseliner(&["profile", "export", &workload, "--revision", rev], &store)?;
        let s = Summary::of(&export)?;
        if let Ok(d) = std::env::var("BENCH_EXPORT_DIR") {
            fs::create_dir_all(&d)?;
            fs::write(Path::new(&d).join(format!("{name}-{rev}.json")), &export)?;
        }
        println!("profile {workload} revision {}: {}", s.revision, s.line());
        println!(
            "  vs targets: entries {} of ≤ {TARGET_ENTRIES}; exported {} of ≤ 64 KB",
            verdict(s.total, TARGET_ENTRIES),
            verdict(s.bytes, TARGET_BYTES)
        );
        if let Some(inc) = s.json["learning"]["incomplete"].as_array()
            && !inc.is_empty()
        {
            println!("  learning incomplete: {inc:?}");
        }
        let dirs = s.file_dirs();
        let top: Vec<String> = dirs
            .iter()
            .take(8)
            .map(|(d, n)| format!("{d} ({n})"))
            .collect();
        println!("  files by directory: {}", top.join(", "));
        if s.total > TARGET_ENTRIES || s.bytes > TARGET_BYTES {
            let (kind, n) = s
                .counts
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(k, n)| (*k, *n))
                .unwrap_or(("files", 0));
            println!("  largest kind: {kind} ({n}); first entries:");
            for e in s.entries(kind).iter().take(25) {
                println!("    {e}");
            }
        }
        last = Some(s);
    }
    match (before, restarted, last) {
        (Ok(b), Ok(r), Some(end)) => {
            let added: Vec<String> = r.keys().difference(&b.keys()).cloned().collect();
            println!(
                "  growth: {} entries before the restart, {} right after it (+{}), {} at the end",
                b.total,
                r.total,
                added.len(),
                end.total
            );
            for e in added.iter().take(12) {
                println!("    added by the restart: {e}");
            }
            let later: Vec<String> = end.keys().difference(&r.keys()).cloned().collect();
            for e in later.iter().take(6) {
                println!("    added by the second load phase: {e}");
            }
        }
        (b, r, _) => {
            if let Err(e) = b.and(r) {
                println!(
                    "  growth across the restart unknown (snapshot through the agent failed: {e:#})"
                );
            }
        }
    }
    Ok(())
}

fn bench() -> Result<()> {
    if !baseliner_tests::live_enabled("server_profiles") {
        return Ok(());
    }
    let secs: u64 = env_num("BENCH_SECONDS", 16)?;
    let wanted: Vec<String> = std::env::var("BENCH_SERVERS")
        .unwrap_or_else(|_| "nginx,redis,postgres".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let kinds: Vec<Kind> = [Kind::Nginx, Kind::Redis, Kind::Postgres]
        .into_iter()
        .filter(|k| wanted.iter().any(|w| w == k.name()))
        .collect();
    ensure!(
        !kinds.is_empty(),
        "BENCH_SERVERS names none of nginx, redis, postgres"
    );
    let _ = baseliner_bin();
    let tools = install(Tools::find());
    let root = PathBuf::from(format!("/var/lib/baseliner-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root)?;
    let scratch = Scratch(root);
    println!(
        "server profiles: {secs} s of loopback load per server with a restart halfway; targets ≤ {TARGET_ENTRIES} entries, ≤ 64 KB exported"
    );
    let mut failed = Vec::new();
    for kind in kinds {
        if let Err(why) = tools.check(kind) {
            println!("\n== {} == skipped: {why}", kind.name());
            continue;
        }
        if let Err(e) = run_server(kind, &tools, &scratch.0, secs) {
            println!("\n== {} == failed: {e:#}", kind.name());
            failed.push(kind.name());
        }
        io::stdout().flush()?;
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}
