//! Crypto-miner signatures: miner program names, stratum URLs, pool and miner arguments,
//! wallet addresses, connections to common pool ports.
//!
//! Signs, from an exec's program path, `argv[0]` and comm (the name also from a connect's
//! process), its arguments, or a connect's destination:
//!
//! * **name**: the basename is a known miner ([`MINER_NAMES`]), exactly or followed by `-`, `_`
//!   or `.` (`xmrig-6.21.0`), ignoring case;
//! * **stratum**: an argument containing a stratum URL (`stratum+tcp://`, `stratum+ssl://`,
//!   `stratum2+tcp://`, `stratum://`, …);
//! * **pool**: `-o`, `--url`, `--pool` or `--server` with a `host:port` value or one naming a
//!   pool (`curl -o out.txt` and `ssh -o Key=value` are not);
//! * **options**: miner-only options ([`MINER_OPTIONS`], e.g. `--donate-level`,
//!   `--cpu-max-threads-hint`);
//! * **algorithm**: `-a`, `--algo`, `--algorithm` or `--coin` naming a mining algorithm or coin
//!   (`rx/0`, `randomx`, `cryptonight`, `kawpow`, `monero`, …);
//! * **wallet**: a Monero address (95 base58 characters starting with 4 or 8, or a 106-character
//!   integrated address, optionally followed by `.worker` or `+difficulty`) anywhere, or an
//!   Ethereum address (`0x` + 40 hex) given to `-u`, `--user` or `--wallet`;
//! * **threads**: `-t N` / `--threads N` with N ≥ [`BIG_THREADS`], counted only beside a pool;
//! * **pool port**: a TCP connect to a common pool port ([`POOL_PORTS`]), not on loopback (a
//!   local server on 3333 is a dev server, not a pool).
//!
//! Weights (one reason, whichever applies first):
//!
//! | signs | weight | alone |
//! |---|---|---|
//! | stratum; name + any other sign; pool + (options, algorithm or wallet); options + wallet | [`WEIGHT_CERTAIN`] 0.97 | critical |
//! | name | [`WEIGHT_NAME`] 0.85 | high |
//! | options; wallet; pool + threads | [`WEIGHT_STRONG`] 0.7 | high |
//! | pool; algorithm; pool port | [`WEIGHT_WEAK`] 0.45 | medium |
//!
//! The rule counts whether or not the profile covers the event — a miner learned during
//! learning is still a miner — except that weak signs alone count only outside the profile:
//! a workload that always connected to port 3333 learned its own service. So
//! `python3 -m http.server 3333` is no miner (a port number is no sign), and a new connection
//! to a remote port 3333 alone is medium, never critical.

use std::net::IpAddr;

use profiles::{Event, EventDetail, Family};

use super::{Context, basename, find_lower, program_shown};
use crate::{alert::Reason, entries::primary_entry};

/// The rule name.
pub const RULE: &str = "crypto-miner";

/// Certain: a stratum URL, or several signs together.
pub const WEIGHT_CERTAIN: f64 = 0.97;
/// A known miner name alone.
pub const WEIGHT_NAME: f64 = 0.85;
/// Miner-only options, a wallet address, or a pool with many threads.
pub const WEIGHT_STRONG: f64 = 0.7;
/// One weak sign: a pool argument, an algorithm, a pool port.
pub const WEIGHT_WEAK: f64 = 0.45;

/// Smallest `-t` / `--threads` value that counts as a sign (beside a pool argument).
pub const BIG_THREADS: u32 = 4;

/// Basenames of well-known miners, lower case.
pub const MINER_NAMES: &[&str] = &[
    "xmrig",
    "xmrig-notls",
    "xmrig-proxy",
    "xmr-stak",
    "xmr-stak-cpu",
    "xmr-stak-rx",
    "minerd",
    "cpuminer",
    "cpuminer-multi",
    "cpuminer-opt",
    "ccminer",
    "cgminer",
    "bfgminer",
    "t-rex",
    "nbminer",
    "lolminer",
    "phoenixminer",
    "ethminer",
    "nanominer",
    "teamredminer",
    "srbminer-multi",
    "gminer",
    "kawpowminer",
    "wildrig-multi",
];

/// Options only miners take (a `--randomx-` prefix covers the RandomX tuning family).
pub const MINER_OPTIONS: &[&str] = &[
    "--donate-level",
    "--donate-over-proxy",
    "--cpu-max-threads-hint",
    "--max-cpu-usage",
    "--randomx-",
    "--rig-id",
    "--nicehash",
];

/// Algorithm and coin values of `-a` / `--algo` / `--coin`, lower-case prefixes.
const ALGORITHMS: &[&str] = &[
    "rx/",
    "randomx",
    "cryptonight",
    "cn/",
    "cn-",
    "kawpow",
    "ethash",
    "etchash",
    "autolykos",
    "argon2/",
    "ghostrider",
    "equihash",
    "kheavyhash",
    "monero",
    "xmr",
    "ravencoin",
    "rvn",
];

/// Pool ports commonly used by public mining pools.
pub const POOL_PORTS: &[u16] = &[
    3333, 3334, 3357, 4444, 5555, 5556, 6666, 7777, 9999, 14433, 14444, 20535, 45560, 45700,
];

/// Value-taking flags naming the pool.
const POOL_FLAGS: &[&str] = &["-o", "--url", "--pool", "--server", "-url"];
/// Value-taking flags naming the algorithm or coin.
const ALGO_FLAGS: &[&str] = &["-a", "--algo", "--algorithm", "--coin"];
/// Value-taking flags naming the account (wallet).
const USER_FLAGS: &[&str] = &["-u", "--user", "--wallet", "-w"];
/// Value-taking flags naming the thread count.
const THREAD_FLAGS: &[&str] = &["-t", "--threads", "--cpu-threads"];

/// What one event shows. Slices of the event; nothing allocated.
#[derive(Debug, Default)]
struct Signs<'a> {
    name: Option<&'static str>,
    stratum: Option<&'a str>,
    pool: Option<&'a str>,
    option: Option<&'a str>,
    algorithm: Option<&'a str>,
    wallet: bool,
    threads: Option<u32>,
    pool_port: bool,
}

impl Signs<'_> {
    /// The weight, and whether it rests on weak signs alone.
    fn weight(&self) -> Option<(f64, bool)> {
        let name = self.name.is_some();
        let pool = self.pool.is_some();
        let option = self.option.is_some();
        let algorithm = self.algorithm.is_some();
        let threads = pool && self.threads.is_some();
        let others =
            self.stratum.is_some() || pool || option || algorithm || self.wallet || self.pool_port;
        if self.stratum.is_some()
            || (name && others)
            || (pool && (option || algorithm || self.wallet))
            || (option && self.wallet)
        {
            Some((WEIGHT_CERTAIN, false))
        } else if name {
            Some((WEIGHT_NAME, false))
        } else if option || self.wallet || threads {
            Some((WEIGHT_STRONG, false))
        } else if pool || algorithm || self.pool_port {
            Some((WEIGHT_WEAK, true))
        } else {
            None
        }
    }
}

/// The miner name `s` (a basename or comm) is, if any.
fn miner_name(s: &str) -> Option<&'static str> {
    MINER_NAMES.iter().copied().find(|n| {
        s.len() >= n.len()
            && s.as_bytes()[..n.len()].eq_ignore_ascii_case(n.as_bytes())
            && matches!(s.as_bytes().get(n.len()), None | Some(b'-' | b'_' | b'.'))
    })
}

/// True when `arg` contains `stratum`, optional digits, an optional `+transport`, then `://`.
fn is_stratum_url(arg: &str) -> bool {
    let mut rest = arg;
    while let Some(at) = find_lower(rest, "stratum") {
        let tail = rest[at + "stratum".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        let tail = match tail.strip_prefix('+') {
            Some(t) => t.trim_start_matches(|c: char| c.is_ascii_alphabetic()),
            None => tail,
        };
        if tail.starts_with("://") {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

/// `host:port` with a plausible host name or address and a numeric port.
fn is_host_port(v: &str) -> bool {
    let Some((host, port)) = v.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    host_ok && !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// A pool address value: `host:port`, or naming a pool.
fn is_pool_value(v: &str) -> bool {
    is_host_port(v)
        || is_stratum_url(v)
        || find_lower(v, "pool").is_some()
        || find_lower(v, "nicehash").is_some()
}

/// A Monero address (standard, subaddress or integrated), optionally with `.worker`,
/// `+difficulty` or `:password` after it.
fn is_monero_address(v: &str) -> bool {
    let addr = v.split(['.', '+', ':']).next().unwrap_or(v);
    let base58 = |b: u8| b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l');
    matches!(addr.len(), 95 | 106)
        && matches!(addr.as_bytes()[0], b'4' | b'8')
        && addr.bytes().all(base58)
}

fn is_eth_address(v: &str) -> bool {
    let addr = v.split(['.', '+']).next().unwrap_or(v);
    addr.len() == 42 && addr.starts_with("0x") && addr[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn flag_in(flag: &str, set: &[&str]) -> bool {
    set.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Reads the arguments after `argv[0]`.
fn read_args<'a>(argv: &'a [String], signs: &mut Signs<'a>) {
    let args = argv.get(1..).unwrap_or(&[]);
    for (i, arg) in args.iter().enumerate() {
        let arg = arg.as_str();
        if signs.stratum.is_none() && is_stratum_url(arg) {
            signs.stratum = Some(arg);
        }
        if is_monero_address(arg) {
            signs.wallet = true;
        }
        if !arg.starts_with('-') {
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg, None),
        };
        let miner_option = |o: &&str| {
            flag.len() >= o.len() && flag.as_bytes()[..o.len()].eq_ignore_ascii_case(o.as_bytes())
        };
        if MINER_OPTIONS.iter().any(miner_option) {
            signs.option.get_or_insert(flag);
        }
        let Some(value) = inline.or_else(|| args.get(i + 1).map(String::as_str)) else {
            continue;
        };
        if flag_in(flag, POOL_FLAGS) && is_pool_value(value) {
            signs.pool.get_or_insert(value);
        } else if flag_in(flag, ALGO_FLAGS) {
            let lower_prefix = |p: &&str| {
                value.len() >= p.len()
                    && value.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            };
            if ALGORITHMS.iter().any(lower_prefix) {
                signs.algorithm.get_or_insert(value);
            }
        } else if flag_in(flag, USER_FLAGS) {
            if is_monero_address(value) || is_eth_address(value) {
                signs.wallet = true;
            }
        } else if flag_in(flag, THREAD_FLAGS)
            && let Ok(n) = value.parse::<u32>()
            && n >= BIG_THREADS
        {
            signs.threads = Some(n);
        }
    }
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|ip| match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    })
}

/// The crypto-miner reason for `e`, if it shows miner signs (see the module docs).
pub fn check(e: &Event, ctx: &Context<'_>) -> Option<Reason> {
    let mut signs = Signs::default();
    let name_of = |s: Option<&str>| s.map(basename).and_then(miner_name);
    match &e.detail {
        EventDetail::Exec { filename, argv, .. } => {
            signs.name = name_of(Some(filename))
                .or_else(|| name_of(argv.first().map(String::as_str)))
                .or_else(|| miner_name(&e.comm));
            read_args(argv, &mut signs);
        }
        EventDetail::Connect { dest } => {
            signs.name = name_of(e.exe.as_deref()).or_else(|| miner_name(&e.comm));
            signs.pool_port = matches!(dest.family, Family::Inet | Family::Inet6)
                && POOL_PORTS.contains(&dest.port)
                && !is_loopback(&dest.addr);
        }
        _ => return None,
    }
    let (weight, weak) = signs.weight()?;
    if weak && ctx.in_profile {
        return None;
    }
    Some(Reason::new(RULE, weight, text(e, &signs), primary_entry(e)))
}

fn text(e: &Event, s: &Signs<'_>) -> String {
    let mut t = format!("crypto-miner signature: {}", program_shown(e));
    if let Some(n) = s.name {
        t.push_str(&format!(" (a known miner name: {n})"));
    }
    match &e.detail {
        EventDetail::Connect { dest } => {
            t.push_str(&format!(" connects to {}:{}", dest.addr, dest.port));
            if s.pool_port {
                t.push_str(", a common mining-pool port");
            }
        }
        _ => {
            let mut with = Vec::new();
            if let Some(u) = s.stratum {
                with.push(format!("a stratum pool URL ({u})"));
            }
            if let Some(p) = s.pool.filter(|p| Some(*p) != s.stratum) {
                with.push(format!("a pool address ({p})"));
            }
            if let Some(o) = s.option {
                with.push(format!("miner options ({o})"));
            }
            if let Some(a) = s.algorithm {
                with.push(format!("a mining algorithm or coin ({a})"));
            }
            if s.wallet {
                with.push("a wallet address".to_string());
            }
            if let Some(n) = s.threads.filter(|_| s.pool.is_some()) {
                with.push(format!("{n} threads"));
            }
            t.push_str(" runs");
            if !with.is_empty() {
                t.push_str(" with ");
                t.push_str(&with.join(", "));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        state::WorkloadState,
        test_support::{by, connect, exec},
    };

    const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    fn run(e: &Event, in_profile: bool) -> Option<Reason> {
        let state = WorkloadState::default();
        check(
            e,
            &Context {
                state: &state,
                in_profile,
            },
        )
    }

    fn weight(e: &Event) -> Option<f64> {
        run(e, false).map(|r| r.weight)
    }

    #[test]
    fn xmrig_with_a_stratum_url_is_certain() {
        let e = exec(
            "/tmp/xmrig",
            &[
                "/tmp/xmrig",
                "-o",
                "stratum+tcp://pool.minexmr.com:4444",
                "-u",
                WALLET,
            ],
            Some("/bin/bash"),
        );
        let r = run(&e, false).unwrap();
        assert_eq!(r.rule, "crypto-miner");
        assert_eq!(r.weight, WEIGHT_CERTAIN);
        assert!(
            r.text.starts_with("crypto-miner signature: /tmp/xmrig"),
            "{}",
            r.text
        );
        assert!(r.text.contains("xmrig"), "{}", r.text);
        assert!(
            r.text.contains("stratum+tcp://pool.minexmr.com:4444"),
            "{}",
            r.text
        );
        assert!(r.text.contains("wallet"), "{}", r.text);
        assert!(r.entry.unwrap().starts_with("exec /tmp/xmrig -o"));
        // Learned or not.
        assert_eq!(run(&e, true).unwrap().weight, WEIGHT_CERTAIN);
    }

    #[test]
    fn stratum_urls_alone_are_certain() {
        for url in [
            "stratum+tcp://x:1",
            "STRATUM+SSL://x:1",
            "stratum2+tcp://x:1",
            "stratum1+tcp://x:1",
            "stratum://x:1",
            "--url=stratum+tls://x:1",
        ] {
            let e = exec("/usr/local/bin/kworker", &["kworker", url], None);
            assert_eq!(weight(&e), Some(WEIGHT_CERTAIN), "{url}");
        }
        assert!(!is_stratum_url("https://docs.example/stratum"));
        assert!(!is_stratum_url("stratum-notes.txt"));
    }

    #[test]
    fn miner_names() {
        for name in [
            "xmrig",
            "XMRig",
            "xmrig-6.21.0",
            "xmr-stak",
            "minerd",
            "cpuminer",
            "ccminer",
            "t-rex",
            "nbminer",
            "lolMiner",
            "PhoenixMiner",
            "ethminer",
            "nanominer",
        ] {
            let path = format!("/opt/{name}");
            let e = exec(&path, &[&path], None);
            assert_eq!(weight(&e), Some(WEIGHT_NAME), "{name}");
        }
        for name in ["xmrigger", "miner", "t-rexx", "mine", "tminerd"] {
            let path = format!("/opt/{name}");
            assert_eq!(weight(&exec(&path, &[&path], None)), None, "{name}");
        }
        // Renamed binary, telling argv[0].
        let e = exec("/tmp/.x/a", &["xmrig"], None);
        assert_eq!(weight(&e), Some(WEIGHT_NAME));
    }

    #[test]
    fn a_renamed_miner_is_caught_by_its_arguments() {
        let certain = [
            vec!["-o", "pool.supportxmr.com:443", "--donate-level", "1"],
            vec!["-o", "gulf.moneroocean.stream:10128", "-a", "rx/0"],
            vec!["--url=xmr.pool.example:3333", "--coin", "monero"],
            vec!["--cpu-max-threads-hint=75", WALLET],
            vec!["-o", "1.2.3.4:5555", "-u", WALLET],
        ];
        for args in certain {
            let mut argv = vec!["/usr/bin/systemd-helper"];
            argv.extend(&args);
            let e = exec("/usr/bin/systemd-helper", &argv, None);
            assert_eq!(weight(&e), Some(WEIGHT_CERTAIN), "{args:?}");
        }
        let strong = [
            vec!["--donate-level", "1"],
            vec!["--randomx-1gb-pages"],
            vec![WALLET],
            vec!["-u", "0x52908400098527886E0F7030069857D2E4169EE7"],
            vec!["-o", "pool.example:3333", "-t", "16"],
        ];
        for args in strong {
            let mut argv = vec!["/usr/bin/helper"];
            argv.extend(&args);
            let e = exec("/usr/bin/helper", &argv, None);
            assert_eq!(weight(&e), Some(WEIGHT_STRONG), "{args:?}");
        }
        let weak = [vec!["-o", "pool.example:3333"], vec!["--algo", "kawpow"]];
        for args in weak {
            let mut argv = vec!["/usr/bin/helper"];
            argv.extend(&args);
            let e = exec("/usr/bin/helper", &argv, None);
            assert_eq!(weight(&e), Some(WEIGHT_WEAK), "{args:?}");
            assert!(run(&e, true).is_none(), "weak alone and learned: {args:?}");
        }
    }

    #[test]
    fn ordinary_commands_are_no_miners() {
        let cases: &[&[&str]] = &[
            &["python3", "-m", "http.server", "3333"],
            &["curl", "-o", "out.txt", "https://example.com/pool"],
            &["curl", "-sS", "-o", "/tmp/x", "http://10.0.0.1:8080/"],
            &["ssh", "-o", "StrictHostKeyChecking=no", "host"],
            &["mount", "-o", "rw,noatime", "/dev/sda1", "/mnt"],
            &["make", "-j", "16", "-t"],
            &["tar", "-t", "-f", "x.tar"],
            &["java", "-Xmx4g", "-jar", "app.jar", "--threads", "32"],
            &["nginx", "-g", "daemon off;"],
            &["grep", "-a", "pattern", "notes.txt"],
        ];
        for argv in cases {
            let path = format!("/usr/bin/{}", argv[0]);
            let e = exec(&path, argv, None);
            assert_eq!(run(&e, false), None, "{argv:?}");
        }
    }

    #[test]
    fn a_pool_port_alone_is_medium_and_only_outside_the_profile() {
        let e = connect("203.0.113.7", 3333);
        assert_eq!(weight(&e), Some(WEIGHT_WEAK));
        assert!(run(&e, true).is_none(), "a learned connection to 3333");
        assert_eq!(weight(&connect("127.0.0.1", 3333)), None, "loopback");
        assert_eq!(weight(&connect("::1", 3333)), None, "loopback");
        assert_eq!(weight(&connect("203.0.113.7", 443)), None);
    }

    #[test]
    fn a_miner_connecting_to_a_pool_is_certain() {
        let e = by(connect("203.0.113.7", 3333), "/tmp/xmrig", 33);
        let r = run(&e, true).unwrap();
        assert_eq!(r.weight, WEIGHT_CERTAIN);
        assert_eq!(
            r.text,
            "crypto-miner signature: /tmp/xmrig (a known miner name: xmrig) connects to \
             203.0.113.7:3333, a common mining-pool port"
        );
        assert_eq!(r.entry.as_deref(), Some("connect tcp 203.0.113.7:3333"));
        // The name alone on another port: high.
        let e = by(connect("203.0.113.7", 443), "/tmp/xmrig", 33);
        assert_eq!(weight(&e), Some(WEIGHT_NAME));
    }

    #[test]
    fn addresses() {
        assert!(is_monero_address(WALLET));
        assert!(is_monero_address(&format!("{WALLET}.rig1")));
        assert!(!is_monero_address(&WALLET[1..]));
        assert!(!is_monero_address(&WALLET.replacen('4', "1", 1)));
        assert!(is_eth_address("0x52908400098527886E0F7030069857D2E4169EE7"));
        assert!(is_host_port("pool.example:3333"));
        assert!(!is_host_port("StrictHostKeyChecking=no"));
        assert!(!is_host_port("x:"));
    }
}
