//! Generalisation of observed paths and argument vectors into patterns, so that profiles stay
//! small and stable across restarts and replicas.
//!
//! Pattern language (segments are separated by `/`):
//! * a segment that is exactly `*` matches any one non-empty segment;
//! * a last segment `**` matches one or more segments ("anything below"); elsewhere it acts as `*`;
//! * inside a segment, `<num>` matches `[0-9]+`, `<hex>` `[0-9a-fA-F]{8,}`, `<uuid>` an
//!   8-4-4-4-12 hex UUID and `<tmp>` `[A-Za-z0-9_]+`; each token also matches its own literal text;
//! * every other character is literal.
//!
//! [`path`] runs once per recorded event, so it works on `&str` slices and byte checks and
//! allocates only its result.

const NUM: &str = "<num>";
const HEX: &str = "<hex>";
const UUID: &str = "<uuid>";
const TMP: &str = "<tmp>";
/// A `tmp` piece with a number appended (`pgsql_tmp11167`).
const TMP_NUM: &str = "tmp<num>";

type ByteTest = fn(u8) -> bool;
type StrTest = fn(&str) -> bool;

/// The tokens: text, the characters an instance consists of, and the check of a whole instance.
const TOKENS: [(&str, ByteTest, StrTest); 4] = [
    (NUM, |b| b.is_ascii_digit(), |s| !s.is_empty()),
    (HEX, |b| b.is_ascii_hexdigit(), |s| s.len() >= 8),
    (UUID, |b| b.is_ascii_hexdigit() || b == b'-', is_uuid),
    (
        TMP,
        |b| b.is_ascii_alphanumeric() || b == b'_',
        |s| !s.is_empty(),
    ),
];

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A hex id: hex characters with at least one digit, and either ≥ 8 of them including a letter
/// or ≥ 16 of them (so all-digit runs that long are ids too: WAL segment names like
/// `000000010000000000000001` and `00000001000000000000000A` get the same `<hex>`). Shorter
/// all-digit runs are numbers.
fn is_hex_id(s: &str) -> bool {
    let (mut digit, mut letter) = (false, false);
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => digit = true,
            b'a'..=b'f' | b'A'..=b'F' => letter = true,
            _ => return false,
        }
    }
    digit && (s.len() >= 16 || (s.len() >= 8 && letter))
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

/// Whether letters, then optional digits, are shaped like a word: an optional upper-case run
/// (an acronym) and a lower-case run, then humps of one capital and ≥ 2 lower-case letters:
/// `service`, `sqlite3`, `Screencast`, `NetworkManager`, `ICEauthority`, `UPower`,
/// `MediaPlayer2` (but not `aBcdEf` or `AbCdEf`).
fn word_shaped(s: &str) -> bool {
    let letters = s.trim_end_matches(|c: char| c.is_ascii_digit());
    let Some(first_lower) = letters.find(|c: char| c.is_ascii_lowercase()) else {
        return false;
    };
    let mut humps = letters[first_lower..].split(|c: char| c.is_ascii_uppercase());
    letters.bytes().all(|b| b.is_ascii_alphabetic())
        && humps.next().is_some()
        && humps.all(|hump| hump.len() >= 2)
}

/// A `mktemp` template suffix (`name.XXXXXX`): ≥ 6 alphanumerics mixing upper and lower case
/// without being shaped like a word (see [`word_shaped`]); all-lower or all-upper suffixes are
/// left to [`looks_random`], so extensions like `service`, `sqlite3` or `README` stay.
fn template_suffix(s: &str) -> bool {
    s.len() >= 6
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !word_shaped(s)
}

/// The random part of `mktemp`'s default `tmp.XXXXXXXXXX`: 10 alphanumerics of at least two of
/// the classes lower, upper and digit (so `tmp.extensions` stays).
fn mktemp_default(s: &str) -> bool {
    let has = |f: fn(&u8) -> bool| u8::from(s.as_bytes().iter().any(f));
    s.len() == 10
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && has(u8::is_ascii_lowercase) + has(u8::is_ascii_uppercase) + has(u8::is_ascii_digit) >= 2
}

/// Python `tempfile`'s default name, `tmp` + 8 of `[a-z0-9_]`, at the start of a segment and
/// followed by its end or a `.` (a suffix). A tail of a leading `_` and letters only
/// (`tmp_uploads`) reads as a name someone chose and is not taken.
fn python_temp(seg: &[u8]) -> bool {
    let Some(tail) = seg.strip_prefix(b"tmp").and_then(|t| t.get(..8)) else {
        return false;
    };
    let python = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_';
    tail.iter().all(python)
        && (tail[0] != b'_' || tail.iter().any(u8::is_ascii_digit))
        && matches!(seg.get(11), None | Some(b'.'))
}

/// `tmp` followed by digits (the pid in PostgreSQL's `pgsql_tmp11167`).
fn tmp_number(s: &str) -> bool {
    s.strip_prefix("tmp").is_some_and(is_digits)
}

fn is_sep(b: u8) -> bool {
    matches!(b, b'-' | b'_' | b'.')
}

/// One `-`/`_`/`.`-separated piece of a segment: `seg[start..end]`, the separator before it (0
/// for the first) and the token it becomes, if any.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    sep: u8,
    token: Option<&'static str>,
}

impl Piece {
    const EMPTY: Piece = Piece {
        start: 0,
        end: 0,
        sep: 0,
        token: None,
    };
}

/// Segments with at most this many pieces are analysed on the stack.
const STACK_PIECES: usize = 16;

/// Splits `seg` into pieces, at most `ps.len()` (one more than the separators). A UUID (five
/// `-`-separated pieces, 8-4-4-4-12 hex, any case) starting a piece and ending at a separator or
/// the end becomes one `<uuid>` piece; with `python`, the leading Python temp name one `<tmp>`
/// piece. Returns the number of pieces.
fn split(seg: &str, python: bool, ps: &mut [Piece]) -> usize {
    let b = seg.as_bytes();
    let (mut n, mut start, mut sep) = (0, 0, 0);
    loop {
        let uuid_end = start + 36;
        let (end, token) = if start == 0 && python {
            (11, Some(TMP))
        } else if b.len() >= uuid_end
            && is_uuid(&seg[start..uuid_end])
            && b.get(uuid_end).is_none_or(|&c| is_sep(c))
        {
            (uuid_end, Some(UUID))
        } else {
            let next = b[start..].iter().position(|&c| is_sep(c));
            (next.map_or(b.len(), |i| start + i), None)
        };
        ps[n] = Piece {
            start,
            end,
            sep,
            token,
        };
        n += 1;
        if end >= b.len() {
            return n;
        }
        (sep, start) = (b[end], end + 1);
    }
}

/// Decides the token of each piece (see [`path`] for the rules).
fn classify(seg: &str, ps: &mut [Piece], in_tmp: bool) {
    let text = |p: &Piece| &seg[p.start..p.end];
    let last = ps.len() - 1;
    let systemd = seg.starts_with("systemd-private-");
    let mut named_before = false;
    for k in 0..ps.len() {
        let (p, t) = (ps[k], text(&ps[k]));
        if p.token.is_none() {
            ps[k].token = if is_hex_id(t) {
                Some(HEX)
            } else if tmp_number(t) {
                Some(TMP_NUM)
            } else if in_tmp
                && (looks_random(t)
                    || (systemd && k == last && p.sep == b'-' && template_like(t))
                    || (k == 1 && p.sep == b'.' && text(&ps[0]) == "tmp" && mktemp_default(t))
                    || (k == last && named_before && template_suffix(t)))
            {
                Some(TMP)
            } else {
                None
            };
        }
        named_before |= p.end > p.start;
    }
    let (mut literal_digits, mut only, mut all_numbers, mut any_token) = (0, 0, true, false);
    for (k, p) in ps.iter().enumerate() {
        let t = text(p);
        any_token |= p.token.is_some();
        all_numbers &= p.token.is_none() && is_digits(t);
        if p.token.is_none() && t.bytes().any(|b| b.is_ascii_digit()) {
            (literal_digits, only) = (literal_digits + 1, k);
        }
    }
    if all_numbers && ps.len() > 1 {
        ps.iter_mut().for_each(|p| p.token = Some(NUM));
    } else if literal_digits == 1 {
        let (k, t) = (only, text(&ps[only]));
        let after_so = k > 0 && ps[k - 1].token.is_none() && text(&ps[k - 1]) == "so";
        let id_like = ps.len() == 1
            || matches!(ps[k].sep, b'-' | b'_')
            || t.len() >= 3
            || (ps[k].sep == b'.' && last - k >= 2)
            || any_token;
        if is_digits(t) && !after_so && id_like {
            ps[k].token = Some(NUM);
        }
    }
}

/// ≥ 6 alphanumerics (the random suffix of a `systemd-private-…` directory).
fn template_like(s: &str) -> bool {
    s.len() >= 6 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Appends the generalisation of one segment to `out`; `in_tmp` is true below `/tmp`,
/// `/var/tmp`, `/dev/shm` and `/run`.
fn segment_into(seg: &str, in_tmp: bool, out: &mut String) {
    let (mut digit, mut pattern, mut seps) = (false, false, 0);
    for &b in seg.as_bytes() {
        digit |= b.is_ascii_digit();
        pattern |= matches!(b, b'*' | b'<' | b'>');
        seps += usize::from(is_sep(b));
    }
    // Outside temporary directories every rule needs a digit, except an all-letter UUID.
    let plain = !in_tmp && !digit && seg.len() < 36;
    if plain || pattern || seg.is_empty() {
        out.push_str(seg);
        return;
    }
    let (mut stack, mut heap) = ([Piece::EMPTY; STACK_PIECES], Vec::new());
    let buf = if seps < STACK_PIECES {
        &mut stack[..=seps]
    } else {
        heap.resize(seps + 1, Piece::EMPTY);
        &mut heap[..]
    };
    let n = split(seg, in_tmp && python_temp(seg.as_bytes()), buf);
    let ps = &mut buf[..n];
    classify(seg, ps, in_tmp);
    for p in ps.iter() {
        if p.sep != 0 {
            out.push(char::from(p.sep));
        }
        out.push_str(p.token.unwrap_or(&seg[p.start..p.end]));
    }
}

/// Whether `p` is `dir` or below it.
fn under(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Index of the first segment below a temporary-files root, if the path is under one.
fn temp_depth(p: &str) -> Option<usize> {
    if under(p, "/tmp") || under(p, "/run") {
        Some(2)
    } else if under(p, "/var/tmp") || under(p, "/dev/shm") {
        Some(3)
    } else {
        None
    }
}

/// The `/proc` rule: which of segments 2 (the pid: digits, `self`, `thread-self`) and 4 (the
/// task id in `/proc/<pid>/task/<tid>`) become `*`.
fn proc_stars(p: &str) -> (bool, bool) {
    let Some(rest) = p.strip_prefix("/proc/") else {
        return (false, false);
    };
    let pid_like = |s: &str| is_digits(s) || matches!(s, "self" | "thread-self" | "<num>" | "*");
    let mut segs = rest.split('/');
    let pid = segs.next().is_some_and(pid_like);
    let tid = pid && segs.next() == Some("task") && segs.next().is_some_and(pid_like);
    (pid, tid)
}

/// Appends the generalisation of `p` to `out` (see [`path`]).
fn path_into(p: &str, out: &mut String) {
    let tmp_from = temp_depth(p).unwrap_or(usize::MAX);
    let (pid, tid) = proc_stars(p);
    let (b, mut start) = (p.as_bytes(), 0);
    for i in 0.. {
        let end = b[start..].iter().position(|&c| c == b'/');
        let end = end.map_or(b.len(), |k| start + k);
        if (i == 2 && pid) || (i == 4 && tid) {
            out.push('*');
        } else {
            segment_into(&p[start..end], i >= tmp_from, out);
        }
        if end == b.len() {
            break;
        }
        out.push('/');
        start = end + 1;
    }
}

/// Generalises an absolute, normalised path into a pattern, segment by segment.
///
/// Rules, in order, for each segment (the root, empty segments and a trailing slash are kept):
/// * `/proc/<pid>` with `<pid>` digits, `self` or `thread-self` becomes `/proc/*`, and the task
///   id in `/proc/*/task/<tid>` becomes `*`;
/// * a segment containing `*`, `<` or `>` is taken as already generalised and kept verbatim
///   (so an input segment that is exactly a token stays a token); this makes `path` idempotent;
/// * below `/tmp`, `/var/tmp`, `/dev/shm` and `/run`, a segment starting with Python's
///   `tempfile` name `tmp` + 8 of `[a-z0-9_]` (then the end or a `.`) has that name become
///   `<tmp>`: `tmpk_3x9a2q` → `<tmp>`, `tmp2rogubbb.json` → `<tmp>.json` (not `tmp_uploads`);
/// * otherwise the segment is split into pieces at `-`, `_` and `.`: a UUID (five pieces,
///   8-4-4-4-12 hex, any case) becomes `<uuid>`; a hex id becomes `<hex>`: ≥ 8 hex characters
///   with a digit and a letter, or ≥ 16 with a digit (`000000010000000000000001`); a piece `tmp`
///   + digits becomes `tmp<num>` (`pgsql_tmp11167`);
/// * below the temporary roots, a piece becomes `<tmp>` when it looks random: ≥ 6 alphanumerics
///   with at least three class changes (lower↔digit, upper↔digit, lower→upper), e.g.
///   `tmpa8Xk2Pq9` or the `A1b2C3` of `foo.A1b2C3`; or it is `mktemp`'s default `tmp.` + 10
///   alphanumerics of two classes (`tmp.VHDpoEkyvt` → `tmp.<tmp>`); or it is the last piece of a
///   named segment and ≥ 6 alphanumerics mixing cases without being word-shaped (a template
///   `name.XXXXXX`: `foo.aBcdE9`, `krb5cc_1000_hJkLmN`, but not `org.gnome.Screencast`,
///   `cache.sqlite3`, `.ICEauthority`); or it is the last piece (≥ 6 alphanumerics) of
///   `systemd-private-…-<unit>-XXXXXX`. Words like `nginx`, `config`, `NetworkManager`,
///   `python3` or `sha256sum` stay;
/// * a segment of numbers only becomes all `<num>` (`16400.1` → `<num>.<num>`, `10.0.0.5`);
///   otherwise an all-digit piece only when the segment is mostly an id: the piece is the only
///   literal one containing a digit, does not follow a `so` piece (shared-library versions like
///   `libc.so.6` stay) and is the whole segment, follows `-`/`_`, has ≥ 3 digits, sits between
///   dots with ≥ 2 pieces after it, or shares the segment with a token (`session-42.scope`,
///   `core.12345`, `appendonly.aof.<num>.base.rdb`, `pgsql_tmp<num>.<num>.fileset`, but not
///   `access.log.1`, `ls.1.gz`, `x86_64`, `python3.11`).
pub fn path(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    path_into(p, &mut out);
    out
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

/// Appends the generalisation of a whole argument or a flag's value: absolute paths via
/// [`path`], then UUIDs, hex ids (the same rule as in paths, so ≥ 16 digits are `<hex>`) and
/// numbers; anything else is kept.
fn value_into(v: &str, out: &mut String) {
    if v.starts_with('/') {
        return path_into(v, out);
    }
    let ids: [(StrTest, &str); 3] = [(is_uuid, UUID), (is_hex_id, HEX), (is_digits, NUM)];
    let id = ids.iter().find(|(is, _)| is(v));
    out.push_str(id.map_or(v, |&(_, token)| token));
}

/// Generalises an argument vector: an argument that is a number, UUID, hex id or absolute path
/// is generalised as a whole; for `-f=value`/`--flag=value` the flag is kept and the value (after
/// the first `=`) generalised the same way. Everything else is kept verbatim. Idempotent.
pub fn argv(argv: &[String]) -> Vec<String> {
    argv.iter()
        .map(|a| {
            let mut out = String::with_capacity(a.len() + 8);
            match a.split_once('=') {
                Some((flag, v)) if flag.starts_with('-') => {
                    out.push_str(flag);
                    out.push('=');
                    value_into(v, &mut out);
                }
                _ => value_into(a, &mut out),
            }
            out
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
    fn temp_names() {
        let cases = "
            /tmp/tmp2rogubbb                         /tmp/<tmp>
            /tmp/tmpk_3x9a2q                         /tmp/<tmp>
            /tmp/tmp_3x9a2qz                         /tmp/<tmp>
            /var/tmp/tmprogubbbx                     /var/tmp/<tmp>
            /tmp/tmpk_3x9a2q.json                    /tmp/<tmp>.json
            /tmp/tmp.VHDpoEkyvt                      /tmp/tmp.<tmp>
            /tmp/tmp.vhdpoekyv7                      /tmp/tmp.<tmp>
            /tmp/tmp.VHDpoEkyvt.json                 /tmp/tmp.<tmp>.json
            /tmp/foo.a8Bc9Z                          /tmp/foo.<tmp>
            /tmp/foo.aBcdEf                          /tmp/foo.<tmp>
            /tmp/.org.chromium.Chromium.AbCdEf       /tmp/.org.chromium.Chromium.<tmp>
            /tmp/krb5cc_1000_hJkLmN                  /tmp/krb5cc_1000_<tmp>
            /run/user/1000/.mutter-Xwaylandauth.J1K2L3  /run/user/<num>/.mutter-Xwaylandauth.<tmp>
            /tmp/pgsql_tmp123                        /tmp/pgsql_tmp<num>
        ";
        for case in table(cases) {
            assert_eq!(path(&case[0]), case[1], "{}", case[0]);
            assert!(matches(&case[1], &case[0]), "{}", case[0]);
        }
        // Only below temporary roots.
        for p in ["/etc/tmp2rogubbb", "/srv/foo.a8Bc9Z", "/srv/tmp.VHDpoEkyvt"] {
            assert_eq!(path(p), p);
        }
    }

    #[test]
    fn database_files() {
        let cases = "
            /var/lib/postgresql/15/main/base/pgsql_tmp/pgsql_tmp11167.0.fileset  /var/lib/postgresql/<num>/main/base/pgsql_tmp/pgsql_tmp<num>.<num>.fileset
            /var/lib/postgresql/15/main/base/16384/16400.1    /var/lib/postgresql/<num>/main/base/<num>/<num>.<num>
            /var/lib/postgresql/15/main/base/16384/16400_fsm  /var/lib/postgresql/<num>/main/base/<num>/<num>_fsm
            /pg/pg_wal/000000010000000000000001      /pg/pg_wal/<hex>
            /pg/pg_wal/00000001000000000000000A      /pg/pg_wal/<hex>
            /pg/pg_wal/archive_status/000000010000000000000001.done  /pg/pg_wal/archive_status/<hex>.done
            /var/lib/redis/appendonlydir/appendonly.aof.2.base.rdb  /var/lib/redis/appendonlydir/appendonly.aof.<num>.base.rdb
            /var/lib/redis/appendonlydir/appendonly.aof.13.incr.aof  /var/lib/redis/appendonlydir/appendonly.aof.<num>.incr.aof
            /var/lib/redis/temp-12345.rdb            /var/lib/redis/temp-<num>.rdb
            /var/lib/cni/networks/cbr0/10.244.0.5    /var/lib/cni/networks/cbr0/<num>.<num>.<num>.<num>
            /var/lib/docker/containers/CID/CID-json.log.1  /var/lib/docker/containers/<hex>/<hex>-json.log.<num>
        ";
        for case in table(cases) {
            assert_eq!(path(&case[0]), case[1], "{}", case[0]);
        }
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
            /tmp/foo.service  /tmp/foo.conf  /tmp/cache.sqlite  /tmp/cache.sqlite3  /tmp/x.sha256
            /tmp/tmp.extensions  /tmp/tmp_uploads  /tmp/foo.README  /tmp/foo.MediaPlayer2  /run/.ICEauthority
            /run/org.freedesktop.UPower  /run/org.gnome.Shell.Screencast  /run/gnupg/S.gpg-agent.browser
            /run/containerd/io.containerd.runtime.v2.task  /var/log/Xorg.0.log  /opt/jquery.3.6.0.min.js
            /var/lib/redis/appendonlydir/appendonly.aof.manifest  /pg/o12of16.p0.0
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
            1 => ("[a-z]{1,8}", "[-_.]", "[A-Za-z0-9]{6,10}")
                .prop_map(|(a, s, r)| format!("{a}{s}{r}")),
            1 => prop::sample::select(special),
            2 => temp_name_strategy(),
            1 => db_name_strategy(),
            // More pieces than are analysed on the stack.
            1 => "[a-z0-9]{0,3}([-_.][a-zA-Z0-9]{0,4}){14,20}",
        ]
    }

    /// Python `tempfile` (optionally with a suffix or a leftover), `mktemp` defaults and
    /// templates.
    fn temp_name_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "tmp[a-z0-9_]{8}",
            "tmp[a-z0-9_]{8}(\\.json|_[a-z0-9]{1,3})",
            "tmp\\.[A-Za-z0-9]{10}(\\.[a-z]{1,4})?",
            "[a-z]{1,6}[-_.][a-z]{1,6}\\.[A-Za-z0-9]{6,12}",
        ]
    }

    /// PostgreSQL temp, segment and WAL files, Redis append-only files.
    fn db_name_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "pgsql_tmp[0-9]{1,7}\\.[0-9]{1,2}\\.(fileset|sharedfileset)",
            "[0-9]{1,6}\\.[0-9]{1,3}",
            "[0-9A-F]{24}(\\.done|\\.partial)?",
            "0000000[1-9][0-9]{16}",
            "appendonly\\.aof\\.[0-9]{1,3}\\.(base\\.rdb|incr\\.aof)",
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
        fn temp_names_fold_whole(name in temp_name_strategy(), root in "/tmp|/var/tmp|/dev/shm") {
            let g = path(&format!("{root}/{name}"));
            let seg = &g[root.len() + 1..];
            let python = name.len() == 11 && !name.starts_with("tmp_") && name.starts_with("tmp")
                && !name.starts_with("tmp.");
            let mktemp = name.len() == 14 && name.starts_with("tmp.")
                && !name[4..].bytes().all(|b| b.is_ascii_lowercase())
                && !name[4..].bytes().all(|b| b.is_ascii_uppercase());
            if python {
                prop_assert_eq!(seg, "<tmp>");
            }
            if mktemp {
                prop_assert_eq!(seg, "tmp.<tmp>");
            }
        }

        #[test]
        fn wal_names_are_hex(name in "[0-9A-F]{24}") {
            prop_assume!(name.bytes().any(|b| b.is_ascii_digit()));
            prop_assert_eq!(path(&format!("/pg_wal/{name}")), "/pg_wal/<hex>");
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
