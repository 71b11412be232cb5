//! Generalisation of observed paths and argument vectors into patterns, so that profiles stay
//! small and stable across restarts and replicas.
//!
//! Pattern language (segments are separated by `/`):
//! * a segment that is exactly `*` matches any one non-empty segment;
//! * a last segment `**` matches one or more segments ("anything below"); elsewhere it acts as `*`;
//! * inside a segment, `<num>` matches `[0-9]+`, `<hex>` `[0-9a-fA-F]{8,}`, `<uuid>` an
//!   8-4-4-4-12 hex UUID and `<tmp>` `[A-Za-z0-9]+`; each token also matches its own literal text;
//! * every other character is literal.

use std::borrow::Cow;

const NUM: &str = "<num>";
const HEX: &str = "<hex>";
const UUID: &str = "<uuid>";
const TMP: &str = "<tmp>";

type ByteTest = fn(u8) -> bool;
type StrTest = fn(&str) -> bool;

/// The tokens: text, the characters an instance consists of, and the check of a whole instance.
const TOKENS: [(&str, ByteTest, StrTest); 4] = [
    (NUM, |b| b.is_ascii_digit(), |s| !s.is_empty()),
    (HEX, |b| b.is_ascii_hexdigit(), |s| s.len() >= 8),
    (UUID, |b| b.is_ascii_hexdigit() || b == b'-', is_uuid),
    (TMP, |b| b.is_ascii_alphanumeric(), |s| !s.is_empty()),
];

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// At least 8 hex characters with at least one digit and one letter (all-digit runs are numbers).
fn is_hex_id(s: &str) -> bool {
    s.len() >= 8
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether an alphanumeric run of at least 6 characters looks randomly generated: it needs at
/// least three class changes between neighbours, counting lower↔digit, upper↔digit and
/// lower→upper, but not upper→lower (so `NetworkManager`, `python3` or `krb5cc` stay words).
fn looks_random(s: &str) -> bool {
    let class = |b: u8| u8::from(b.is_ascii_uppercase()) + 2 * u8::from(b.is_ascii_digit());
    let pairs = s.as_bytes().windows(2).map(|w| (class(w[0]), class(w[1])));
    let changes = pairs.filter(|&(a, b)| a != b && (a, b) != (1, 0)).count();
    s.len() >= 6 && s.bytes().all(|b| b.is_ascii_alphanumeric()) && changes >= 3
}

/// One `-`/`_`/`.`-separated piece of a segment.
struct Piece<'a> {
    sep: Option<char>,
    text: &'a str,
    token: Option<&'static str>,
}

fn pieces(seg: &str) -> Vec<Piece<'_>> {
    let seps = std::iter::once(None).chain(seg.matches(['-', '_', '.']).map(|s| s.chars().next()));
    let pieces = seg.split(['-', '_', '.']).zip(seps);
    pieces
        .map(|(text, sep)| Piece {
            sep,
            text,
            token: None,
        })
        .collect()
}

/// Generalises one segment; `in_tmp` is true below `/tmp`, `/var/tmp`, `/dev/shm` and `/run`.
fn segment(seg: &str, in_tmp: bool) -> Cow<'_, str> {
    if seg.is_empty() || seg.contains(['*', '<', '>']) {
        return Cow::Borrowed(seg);
    }
    let (mut ps, mut i) = (pieces(seg), 0);
    while i + 5 <= ps.len() {
        let w = &ps[i..i + 5];
        let joined = w.iter().map(|p| p.text).collect::<Vec<_>>().join("-");
        if w[1..].iter().all(|p| p.sep == Some('-')) && is_uuid(&joined) {
            ps[i].token = Some(UUID);
            ps.drain(i + 1..i + 5);
        }
        i += 1;
    }
    let (last, systemd) = (ps.len() - 1, seg.starts_with("systemd-private-"));
    for (k, p) in ps.iter_mut().enumerate().filter(|(_, p)| p.token.is_none()) {
        let alnum = p.text.len() >= 6 && p.text.bytes().all(|b| b.is_ascii_alphanumeric());
        let systemd_suffix = systemd && k == last && p.sep == Some('-') && alnum;
        if is_hex_id(p.text) {
            p.token = Some(HEX);
        } else if in_tmp && (looks_random(p.text) || systemd_suffix) {
            p.token = Some(TMP);
        }
    }
    let literal_digits: Vec<usize> = (0..ps.len())
        .filter(|&k| ps[k].token.is_none() && ps[k].text.bytes().any(|b| b.is_ascii_digit()))
        .collect();
    if let [k] = literal_digits[..] {
        let after_so = k > 0 && ps[k - 1].token.is_none() && ps[k - 1].text == "so";
        let id_like =
            ps.len() == 1 || matches!(ps[k].sep, Some('-' | '_')) || ps[k].text.len() >= 3;
        if is_digits(ps[k].text) && !after_so && id_like {
            ps[k].token = Some(NUM);
        }
    }
    if ps.iter().all(|p| p.token.is_none()) {
        return Cow::Borrowed(seg);
    }
    let mut out = String::with_capacity(seg.len());
    for p in &ps {
        out.extend(p.sep);
        out.push_str(p.token.unwrap_or(p.text));
    }
    Cow::Owned(out)
}

/// Index of the first segment below a temporary-files root, if the path is under one.
fn temp_depth(segs: &[&str]) -> Option<usize> {
    match segs {
        ["", "tmp" | "run", ..] => Some(2),
        ["", "var", "tmp", ..] | ["", "dev", "shm", ..] => Some(3),
        _ => None,
    }
}

/// The `/proc` rule: the pid segment (digits, `self`, `thread-self`) and a task id become `*`.
fn proc_segment(segs: &[&str], i: usize) -> Option<&'static str> {
    let pid_like = |s: &str| is_digits(s) || matches!(s, "self" | "thread-self" | "<num>" | "*");
    match segs {
        ["", "proc", pid, ..] if i == 2 && pid_like(pid) => Some("*"),
        ["", "proc", pid, "task", tid, ..] if i == 4 && pid_like(pid) && pid_like(tid) => Some("*"),
        _ => None,
    }
}

/// Generalises an absolute, normalised path into a pattern, segment by segment.
///
/// Rules, in order, for each segment (the root, empty segments and a trailing slash are kept):
/// * `/proc/<pid>` with `<pid>` digits, `self` or `thread-self` becomes `/proc/*`, and the task
///   id in `/proc/*/task/<tid>` becomes `*`;
/// * a segment containing `*`, `<` or `>` is taken as already generalised and kept verbatim
///   (so an input segment that is exactly a token stays a token); this makes `path` idempotent;
/// * otherwise the segment is split into pieces at `-`, `_` and `.`: a UUID (five pieces,
///   8-4-4-4-12 hex, any case) becomes `<uuid>`; a piece of ≥ 8 hex characters with a digit and a
///   letter becomes `<hex>`;
/// * below `/tmp`, `/var/tmp`, `/dev/shm` and `/run`, a piece that looks random becomes `<tmp>`:
///   ≥ 6 alphanumerics with at least three class changes (lower↔digit, upper↔digit,
///   lower→upper), e.g. `tmpa8Xk2Pq9` or the `A1b2C3` of `foo.A1b2C3`; words like `nginx`,
///   `config`, `NetworkManager`, `python3` or `sha256sum` stay. The last piece of `systemd-private-…-<unit>-XXXXXX`
///   (≥ 6 alphanumerics) is always `<tmp>`;
/// * an all-digit segment becomes `<num>`, an all-digit piece only when the segment is mostly an
///   id: the piece is the only literal one containing a digit, does not follow a `so` piece
///   (shared-library versions like `libc.so.6` stay) and follows `-`/`_` or has ≥ 3 digits
///   (`session-42.scope`, `core.12345`, but not `access.log.1`, `ls.1.gz`, `x86_64`, `python3.11`).
pub fn path(p: &str) -> String {
    let segs: Vec<&str> = p.split('/').collect();
    let tmp_from = temp_depth(&segs);
    let out: Vec<Cow<'_, str>> = segs
        .iter()
        .enumerate()
        .map(|(i, seg)| match proc_segment(&segs, i) {
            Some(star) => Cow::Borrowed(star),
            None => segment(seg, tmp_from.is_some_and(|d| i >= d)),
        })
        .collect();
    out.join("/")
}

/// A piece of a pattern segment: text, the bytes of a token instance and the check of a whole
/// instance. A token also matches its own text; a literal only matches its text.
type Part<'a> = (&'a str, ByteTest, StrTest);

fn literal(text: &str) -> Part<'_> {
    (text, |_| false, |_| false)
}

fn parts(pat: &str) -> Vec<Part<'_>> {
    let (mut out, mut lit, mut i) = (Vec::new(), 0, 0);
    while let Some(c) = pat[i..].chars().next() {
        if let Some(&token) = TOKENS.iter().find(|t| pat[i..].starts_with(t.0)) {
            out.extend((lit < i).then(|| literal(&pat[lit..i])));
            out.push(token);
            i += token.0.len();
            lit = i;
        } else {
            i += c.len_utf8();
        }
    }
    out.extend((lit < pat.len()).then(|| literal(&pat[lit..])));
    out
}

/// Matches `text` against the parts by tracking the reachable offsets, which keeps adversarial
/// patterns (e.g. many adjacent tokens from hostile file names) polynomial.
fn match_parts(parts: &[Part<'_>], text: &str) -> bool {
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for &(own, class, whole) in parts {
        let mut next = vec![false; text.len() + 1];
        for (i, _) in reach.iter().enumerate().filter(|(_, r)| **r) {
            let rest = &text[i..];
            if rest.starts_with(own) {
                next[i + own.len()] = true;
            }
            let span = rest.bytes().take_while(|&b| class(b)).count();
            for n in (1..=span).filter(|&n| whole(&rest[..n])) {
                next[i + n] = true;
            }
        }
        reach = next;
    }
    reach[text.len()]
}

fn segment_matches(pat: &str, text: &str) -> bool {
    if pat == "*" || pat == "**" {
        return !text.is_empty();
    }
    match_parts(&parts(pat), text)
}

/// Whether `path` is an instance of `pattern` (see the module docs for the pattern language).
///
/// Segment counts must be equal, except that a last pattern segment `**` stands for one or more
/// segments (the first non-empty); a trailing `/*` is simply `*` as the last segment.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let txt: Vec<&str> = path.split('/').collect();
    match pat.split_last() {
        Some((&"**", head)) => {
            txt.get(head.len()).is_some_and(|s| !s.is_empty())
                && head.iter().zip(&txt).all(|(p, t)| segment_matches(p, t))
        }
        _ => pat.len() == txt.len() && pat.iter().zip(&txt).all(|(p, t)| segment_matches(p, t)),
    }
}

/// Whether `pattern` covers `other`, itself a path or a pattern: `other`'s text is an instance of
/// `pattern` ([`matches()`]), and when `other` ends in `**` ("anything below") so does `pattern`,
/// at the same level or above — a one-segment `*` does not cover a deep `**`. Conservative: a
/// token does not cover another token (`<tmp>` does not cover `<num>`), only `*`/`**` do.
pub fn covers(pattern: &str, other: &str) -> bool {
    let deep = |p: &str| p == "**" || p.ends_with("/**");
    matches(pattern, other) && (!deep(other) || deep(pattern))
}

/// Generalises a whole argument or a flag's value: absolute paths via [`path`], then numbers,
/// UUIDs and hex ids; anything else is kept.
fn value(v: &str) -> Cow<'_, str> {
    if v.starts_with('/') {
        return Cow::Owned(path(v));
    }
    let ids: [(StrTest, &str); 3] = [(is_digits, NUM), (is_uuid, UUID), (is_hex_id, HEX)];
    let id = ids.iter().find(|(is, _)| is(v));
    Cow::Borrowed(id.map_or(v, |&(_, token)| token))
}

/// Generalises an argument vector: an argument that is a number, UUID, hex id or absolute path
/// is generalised as a whole; for `-f=value`/`--flag=value` the flag is kept and the value (after
/// the first `=`) generalised the same way. Everything else is kept verbatim. Idempotent.
pub fn argv(argv: &[String]) -> Vec<String> {
    argv.iter()
        .map(|a| match a.split_once('=') {
            Some((flag, v)) if flag.starts_with('-') => format!("{flag}={}", value(v)),
            _ => value(a).into_owned(),
        })
        .collect()
}

/// The parent directory of a path or pattern (a trailing slash is ignored); `None` for `/` and
/// for a relative single segment.
pub fn parent_dir(pattern: &str) -> Option<&str> {
    let trimmed = match pattern.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => pattern,
    };
    match trimmed.rfind('/')? {
        0 if trimmed.len() > 1 => Some("/"),
        0 => None,
        i => Some(&trimmed[..i]),
    }
}

/// Collapses a path or pattern into "any child of its parent": the generalised parent plus `/*`
/// (a trailing slash is kept). A pattern without parent or already ending in `/**` is only
/// generalised.
pub fn collapse_dir(pattern: &str) -> String {
    let generalised = path(pattern);
    let Some(parent) = parent_dir(&generalised) else {
        return generalised;
    };
    let trimmed = generalised.strip_suffix('/').unwrap_or(&generalised);
    if trimmed.ends_with("/**") {
        return generalised;
    }
    let mut out = format!("{}/*", if parent == "/" { "" } else { parent });
    if generalised.len() > 1 && generalised.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONTAINER: &str = "4f2a9c0e1b7d3a5f6e8c9b0a1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e";
    const POD: &str = "3f6b2c1a-9d4e-4b7a-8c5d-0e1f2a3b4c5d";

    /// Whitespace-separated columns, one case per line; `CID` and `POD` stand for the ids above.
    fn table(cases: &str) -> impl Iterator<Item = Vec<String>> {
        cases.lines().filter(|l| !l.trim().is_empty()).map(|l| {
            let cols = l.split_whitespace();
            cols.map(|c| c.replace("CID", CONTAINER).replace("POD", POD))
                .collect()
        })
    }

    #[test]
    fn path_examples() {
        let cases = "
            /proc/1234/status                        /proc/*/status
            /proc/1234                               /proc/*
            /proc/self/fd/3                          /proc/*/fd/<num>
            /proc/thread-self/attr/current           /proc/*/attr/current
            /proc/42/task/43/comm                    /proc/*/task/*/comm
            /proc/<num>/status                       /proc/*/status
            /run/user/1000/bus                       /run/user/<num>/bus
            /var/lib/docker/containers/CID/config.v2.json  /var/lib/docker/containers/<hex>/config.v2.json
            /sys/fs/cgroup/kubepods.slice/cri-containerd-CID.scope  /sys/fs/cgroup/kubepods.slice/cri-containerd-<hex>.scope
            /sys/fs/cgroup/user.slice/user-1000.slice/session-42.scope  /sys/fs/cgroup/user.slice/user-<num>.slice/session-<num>.scope
            /var/lib/kubelet/pods/POD/volumes        /var/lib/kubelet/pods/<uuid>/volumes
            /x/3F6B2C1A-9D4E-4B7A-8C5D-0E1F2A3B4C5D  /x/<uuid>
            /var/log/pods/ns_web_POD/0.log           /var/log/pods/ns_web_<uuid>/0.log
            /var/crash/core.12345                    /var/crash/core.<num>
            /var/1234/                               /var/<num>/
            /tmp/tmpa8Xk2Pq9                         /tmp/<tmp>
            /tmp/foo.A1b2C3                          /tmp/foo.<tmp>
            /var/tmp/tmp.Kq3xY8bZ1w                  /var/tmp/tmp.<tmp>
            /dev/shm/sem.x9Yz2Q                      /dev/shm/sem.<tmp>
            /tmp/systemd-private-4f2a9c0e1b7d3a5f-nginx.service-AbCdEf/tmp  /tmp/systemd-private-<hex>-nginx.service-<tmp>/tmp
        ";
        for case in table(cases) {
            assert_eq!(path(&case[0]), case[1], "{}", case[0]);
        }
    }

    #[test]
    fn words_versions_and_patterns_stay() {
        let cases = "
            /etc/nginx/nginx.conf  /usr/lib/x86_64-linux-gnu/libc.so.6  /lib64/ld-linux-x86-64.so.2
            /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30  /usr/bin/python3.11  /usr/share/man/man1/ls.1.gz
            /var/log/nginx/access.log.1  /proc/sys/net/ipv4/ip_forward  /run/NetworkManager/conf.d
            /tmp/.X11-unix/X0  /tmp/config  /tmp/krb5cc_0  /tmp/sha256sum  /etc/tmpa8Xk2Pq9  /deadbeef/cafebabe  /  /var/log/
            /data/<num>/x  /srv/*/a*b.html  /a/**  /srv/<tmp>.log
        ";
        for p in table(cases).flatten() {
            assert_eq!(path(&p), p);
        }
    }

    #[test]
    fn matching() {
        let cases = "
            /proc/*/status       /proc/1/status      true
            /proc/*/status       /proc/1/status/x    false
            /proc/*/fd/<num>     /proc/77/fd/12      true
            /proc/*/fd/<num>     /proc/77/fd/x       false
            /x/s-<num>.scope     /x/s-9.scope        true
            /x/<hex>             /x/abc12345         true
            /x/<hex>             /x/abc123           false
            /x/<uuid>            /x/POD              true
            /x/<uuid>            /x/CID              false
            /tmp/foo.<tmp>       /tmp/foo.Zz9        true
            /tmp/foo.<tmp>       /tmp/foo.a-b        false
            /a/<num>1            /a/1231             true
            /a/<num>             /a/<num>            true
            /var/cache/*         /var/cache/x        true
            /var/cache/*         /var/cache/x/y      false
            /var/cache/*         /var/cache/         false
            /var/cache/**        /var/cache/x/y/z    true
            /var/cache/**        /var/cache          false
            /etc/passwd          /etc/shadow         false
        ";
        for case in table(cases) {
            assert_eq!(matches(&case[0], &case[1]).to_string(), case[2], "{case:?}");
        }
        let hostile = format!("/x/{}y", "<num>".repeat(40));
        assert!(!matches(&hostile, &format!("/x/{}z", "1".repeat(250))));
    }

    #[test]
    fn coverage_of_patterns() {
        let cases = "
            /a/*        /a/<num>      true
            /a/*        /a/**         false
            /a/**       /a/b/**       true
            /a/**       /a/**         true
            /a/b/**     /a/**         false
            /**         /a/*/*        true
            /a/*/*      /a/b/c        true
            /a/<num>    /a/*          false
            **          rel/x         true
            **          /abs          false
        ";
        for case in table(cases) {
            assert_eq!(covers(&case[0], &case[1]).to_string(), case[2], "{case:?}");
        }
    }

    #[test]
    fn argv_examples() {
        let args =
            "nginx -g daemon; --port=8080 12 POD CID /proc/7/maps --cfg=/tmp/tmpa8Xk2Pq9 -9 k=1";
        let expected =
            "nginx -g daemon; --port=<num> <num> <uuid> <hex> /proc/*/maps --cfg=/tmp/<tmp> -9 k=1";
        let args: Vec<String> = table(args).flatten().collect();
        assert_eq!(argv(&args), table(expected).flatten().collect::<Vec<_>>());
    }

    #[test]
    fn collapsing() {
        let cases = "
            /var/cache/app/x123   /var/cache/app/*    /var/cache/app
            /proc/12/fd/3         /proc/*/fd/*        /proc/12/fd
            /etc                  /*                  /
            /var/cache/app/dir/   /var/cache/app/*/   /var/cache/app
            /a/**                 /a/**               /a
            /                     /                   -
            relative              relative            -
        ";
        for case in table(cases) {
            assert_eq!(collapse_dir(&case[0]), case[1]);
            assert_eq!(parent_dir(&case[0]).unwrap_or("-"), case[2]);
        }
    }

    fn segment_strategy() -> impl Strategy<Value = String> {
        let uuid = any::<u128>().prop_map(|n| {
            let h = format!("{n:032x}");
            [&h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]].join("-")
        });
        let special = "proc self thread-self task tmp run so * ** <num> <hex> <uuid> <tmp> a<b x*y \
            libc.so.6 x86_64 systemd-private-ab12cd34-x-Q1w2E3";
        let special: Vec<String> = table(special).flatten().collect();
        prop_oneof![
            4 => "[a-zA-Z0-9._-]{1,12}",
            1 => "[0-9]{1,7}",
            1 => uuid,
            1 => "[0-9a-fA-F]{8,64}",
            1 => ("[a-z]{1,8}", "[-_.]", "[0-9]{1,6}").prop_map(|(a, s, n)| format!("{a}{s}{n}")),
            1 => ("[a-z]{1,8}", "[A-Za-z0-9]{6,10}").prop_map(|(a, r)| format!("{a}.{r}")),
            1 => prop::sample::select(special),
        ]
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        let roots = "|/proc|/proc/self/task|/tmp|/var/tmp|/dev/shm|/run".split('|');
        let roots: Vec<String> = roots.map(String::from).collect();
        let segs = prop::collection::vec(segment_strategy(), 0..6);
        (prop::sample::select(roots), segs, any::<bool>()).prop_map(|(root, segs, slash)| {
            let mut p = segs.iter().fold(root, |p, s| format!("{p}/{s}"));
            if p.is_empty() || slash {
                p.push('/');
            }
            p
        })
    }

    fn arg_strategy() -> impl Strategy<Value = String> {
        let value = prop_oneof![segment_strategy(), path_strategy()];
        let flag = ("--?[a-z]{1,6}", value).prop_map(|(f, v)| format!("{f}={v}"));
        prop_oneof![segment_strategy(), path_strategy(), flag]
    }

    proptest! {
        #[test]
        fn path_is_idempotent_and_matches(p in path_strategy()) {
            let g = path(&p);
            prop_assert_eq!(path(&g), g.clone());
            prop_assert!(matches(&g, &p), "{} !~ {}", g, p);
            prop_assert!(matches(&g, &g));
        }

        #[test]
        fn argv_is_idempotent_and_matches(a in prop::collection::vec(arg_strategy(), 0..6)) {
            let g = argv(&a);
            prop_assert_eq!(argv(&g), g.clone());
            for (pattern, arg) in g.iter().zip(&a) {
                prop_assert!(matches(pattern, arg), "{} !~ {}", pattern, arg);
            }
        }

        #[test]
        fn collapsed_dir_matches(p in path_strategy()) {
            prop_assume!(parent_dir(&p).is_some());
            let c = collapse_dir(&path(&p));
            prop_assert!(matches(&c, &p), "{} !~ {}", c, p);
            prop_assert_eq!(collapse_dir(&p), c);
        }
    }
}
