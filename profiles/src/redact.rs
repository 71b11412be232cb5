//! Redaction of secrets in process arguments before profiles store or export them.
//!
//! [`Redactor`] applies argv rules first (secret flags like `--password=x` / `--token x`;
//! `mysql -pX`, `redis-cli -a X`, `sshpass -p X`, `curl -u user:X`, `htpasswd -b file user X`),
//! then string rules to every argument (credential URLs, `key=value`, `Bearer`/`Basic`, token
//! formats, private key blocks, configured patterns). Text already [`REDACTED`] is never matched
//! again and string rules run to a fixpoint, so a second pass changes nothing and counts 0.
//! Left untouched: `curl -u user` (no colon: curl prompts; a user name is no secret), a bare
//! `mysql -p` (prompt), and a generic secret flag's next argument when it starts with `-` (the
//! flag is then a switch or prompts, e.g. `mongod --auth --port 27017`).

use std::{fmt, sync::LazyLock};

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Replacement for every redacted secret.
pub const REDACTED: &str = "<redacted>";

/// Built-in secret flag words (normalised: lower case, `_` as `-`). A flag matches when its name
/// is the word or ends in `-word` (`--db-password`), unless it starts with `no-`.
const SECRET_FLAG_WORDS: &str =
    "password passwd token secret api-key apikey access-key secret-key client-secret private-key";
/// Built-in secret flags that only match exactly (`--bypass` and `--no-auth` are not secrets).
const EXACT_SECRET_FLAGS: &[&str] = &["pass", "auth"];

const PRIVATE_KEY: &str = r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----";
/// String rules; when a pattern has a group `v` only that group is replaced, else the match.
const BUILTIN_PATTERNS: &[&str] = &[
    // scheme://user:SECRET@host (the last `@` of the authority ends the password).
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:(?P<v>[^\s/?#]+)@",
    // key=value where the key ends in a secret word.
    concat!(
        r"(?i)[\w.-]*(?:password|passwd|pwd|token|secret|api_?key",
        r"|access_key|secret_key|private_key)",
        r#"=(?P<v>"[^"]+"|'[^']+'|[^\s&;,]+)"#,
    ),
    r#"(?i)aws_secret_access_key["']?\s*[:=]?\s*["']?(?P<v>[A-Za-z0-9/+=]{40,})"#,
    r#"(?i)\b(?:bearer|basic)\s+["']?(?P<v>[^\s"',;]+)"#,
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}",
    r"xox[baprs]-[A-Za-z0-9-]{10,}",
    r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
];

static PRIVATE_KEY_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PRIVATE_KEY).expect("built-in private key pattern is valid"));
/// Every built-in pattern in one set, so a string with no secret costs one pass.
static BUILTIN_SET: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new(BUILTIN_PATTERNS.iter().chain([&PRIVATE_KEY]))
        .expect("built-in patterns are valid")
});
static BUILTIN: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    BUILTIN_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("built-in redaction pattern is valid"))
        .collect()
});

/// Redaction settings; the built-in rules are always on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactConfig {
    /// Extra regexes; every whole match is replaced by [`REDACTED`].
    pub extra_patterns: Vec<String>,
    /// Extra flag names (with or without leading dashes) whose value is secret.
    pub secret_flags: Vec<String>,
}

/// An extra pattern in [`RedactConfig`] is not a valid regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactError {
    /// The offending pattern.
    pub pattern: String,
    /// Why it was rejected.
    pub message: String,
}

impl fmt::Display for RedactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { pattern, message } = self;
        write!(f, "invalid redaction pattern `{pattern}`: {message}")
    }
}

impl std::error::Error for RedactError {}

/// Replaces secrets in argv and strings; [`Redactor::default`] has the built-in rules only.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
    /// The extra patterns as one set: one pass tells whether any can match.
    extra_set: Option<regex::RegexSet>,
    secret_flags: Vec<String>,
}

const MYSQL_CLIENTS: &str =
    "mysql mariadb mysqldump mysqladmin mariadb-dump mariadb-admin mysqlimport mysqlcheck";

/// What a value looks like: all secret, or `user:SECRET`.
#[derive(Clone, Copy)]
enum Kind {
    Whole,
    UserPass,
}

/// What one argument says about where a secret is.
enum Step {
    /// The argument's bytes from this offset are the value.
    Inline(usize, Kind),
    /// The next argument is the value; `true` takes it even if it starts with `-`.
    Next(Kind, bool),
    Skip,
}

impl Redactor {
    /// Builds a redactor with the built-in rules plus `config`; fails on an invalid pattern.
    pub fn new(config: &RedactConfig) -> Result<Self, RedactError> {
        let extra = config
            .extra_patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| RedactError {
                    pattern: p.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<Regex>, _>>()?;
        let extra_set = (!extra.is_empty())
            .then(|| regex::RegexSet::new(extra.iter().map(Regex::as_str)))
            .transpose()
            .map_err(|e| RedactError {
                pattern: config.extra_patterns.join(" | "),
                message: e.to_string(),
            })?;
        let secret_flags = config
            .secret_flags
            .iter()
            .map(|f| normalize_flag(f))
            .collect();
        Ok(Self {
            extra,
            extra_set,
            secret_flags,
        })
    }

    /// Redacts `argv` (argv[0]'s basename selects client rules); returns it and the replacements.
    pub fn redact_argv(&self, argv: &[String]) -> (Vec<String>, usize) {
        let mut out = argv.to_vec();
        let mut count = 0;
        let prog = argv
            .first()
            .map_or("", |a| a.rsplit('/').next().unwrap_or(a));
        // `htpasswd -b [-c…] file user PASSWORD`: the password is the last argument.
        if prog == "htpasswd"
            && out.len() > 2
            && out[1..out.len() - 1].iter().any(|a| is_batch_flag(a))
            && let Some(last) = out.last_mut()
        {
            count += redact_at(last, 0, Kind::Whole);
        }
        let mut i = 1;
        while i < out.len() {
            i += match self.classify(prog, &out[i]) {
                Step::Inline(at, kind) => {
                    count += redact_at(&mut out[i], at, kind);
                    1
                }
                Step::Next(kind, strict)
                    if i + 1 < out.len() && (strict || !out[i + 1].starts_with('-')) =>
                {
                    count += redact_at(&mut out[i + 1], 0, kind);
                    2
                }
                _ => 1,
            };
        }
        for arg in &mut out {
            let (redacted, n) = self.redact_str(arg);
            *arg = redacted;
            count += n;
        }
        (out, count)
    }

    /// Redacts an exec event's arguments in place; returns the replacements (0 for other
    /// events). Everything that stores or scores events goes through this.
    pub fn redact_event(&self, event: &mut crate::Event) -> usize {
        let crate::EventDetail::Exec { argv, .. } = &mut event.detail else {
            return 0;
        };
        let (clean, n) = self.redact_argv(argv);
        *argv = clean;
        n
    }

    /// Redacts one string (an argument, path or URL); returns it and the replacements.
    pub fn redact_str(&self, s: &str) -> (String, usize) {
        let may_match =
            BUILTIN_SET.is_match(s) || self.extra_set.as_ref().is_some_and(|set| set.is_match(s));
        if !may_match {
            return (s.to_owned(), 0);
        }
        if PRIVATE_KEY_RE.is_match(s) {
            return (REDACTED.to_owned(), 1);
        }
        let mut cur = s.to_owned();
        let mut total = 0;
        // Each replacement turns unredacted text into a marker, so this reaches a fixpoint.
        loop {
            let before = total;
            for re in BUILTIN.iter().chain(&self.extra) {
                let (next, n) = replace_unredacted(re, &cur);
                if n > 0 {
                    cur = next;
                    total += n;
                }
            }
            if total == before {
                return (cur, total);
            }
        }
    }

    fn classify(&self, prog: &str, arg: &str) -> Step {
        match prog {
            p if MYSQL_CLIENTS.split(' ').any(|c| c == p)
                && arg.len() > 2
                && arg.starts_with("-p") =>
            {
                return Step::Inline(2, Kind::Whole);
            }
            "redis-cli" if arg == "-a" => return Step::Next(Kind::Whole, true),
            "sshpass" if arg == "-p" => return Step::Next(Kind::Whole, true),
            "sshpass" if arg.starts_with("-p") => return Step::Inline(2, Kind::Whole),
            "curl" => {
                if matches!(arg, "-u" | "-U" | "--user" | "--proxy-user") {
                    return Step::Next(Kind::UserPass, true);
                }
                if let Some(p) = ["--user=", "--proxy-user=", "-u", "-U"]
                    .into_iter()
                    .find(|p| arg.starts_with(p))
                {
                    return Step::Inline(p.len(), Kind::UserPass);
                }
            }
            _ => {}
        }
        if arg.eq_ignore_ascii_case("aws_secret_access_key")
            || arg.eq_ignore_ascii_case("aws_session_token")
        {
            return Step::Next(Kind::Whole, false);
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Step::Skip;
        };
        let (name, value_at) = match body.find('=') {
            Some(eq) => (&body[..eq], Some(arg.len() - body.len() + eq + 1)),
            None => (body, None),
        };
        match (self.is_secret_flag(name), value_at) {
            (false, _) => Step::Skip,
            (true, Some(at)) => Step::Inline(at, Kind::Whole),
            (true, None) => Step::Next(Kind::Whole, false),
        }
    }

    fn is_secret_flag(&self, name: &str) -> bool {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if name.is_empty() || !name.chars().all(valid) {
            return false;
        }
        let name = normalize_flag(name);
        !name.starts_with("no-")
            && (EXACT_SECRET_FLAGS.contains(&name.as_str())
                || self.secret_flags.contains(&name)
                || SECRET_FLAG_WORDS
                    .split(' ')
                    .any(|w| name == w || name.strip_suffix(w).is_some_and(|p| p.ends_with('-'))))
    }
}

fn normalize_flag(name: &str) -> String {
    name.trim_start_matches('-')
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// `htpasswd` short option cluster containing `b` (batch mode: password on the command line).
fn is_batch_flag(arg: &str) -> bool {
    arg.strip_prefix('-').is_some_and(|f| {
        !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric()) && f.contains('b')
    })
}

/// Redacts `arg[at..]` as a value of `kind`; returns 1 if something was replaced.
fn redact_at(arg: &mut String, at: usize, kind: Kind) -> usize {
    let value = &arg[at..];
    let replacement = match kind {
        Kind::Whole => (!value.is_empty() && value != REDACTED).then(|| REDACTED.to_owned()),
        Kind::UserPass => value.split_once(':').and_then(|(user, pass)| {
            (!pass.is_empty() && pass != REDACTED).then(|| format!("{user}:{REDACTED}"))
        }),
    };
    match replacement {
        Some(r) => {
            arg.replace_range(at.., &r);
            1
        }
        None => 0,
    }
}

/// Replaces matches of `re` (its group `v` if present) in the text between existing markers.
fn replace_unredacted(re: &Regex, s: &str) -> (String, usize) {
    let mut out = String::with_capacity(s.len());
    let mut count = 0;
    for (i, segment) in s.split(REDACTED).enumerate() {
        if i > 0 {
            out.push_str(REDACTED);
        }
        let mut last = 0;
        for caps in re.captures_iter(segment) {
            let Some(m) = caps.name("v").or_else(|| caps.get(0)) else {
                continue;
            };
            if m.is_empty() {
                continue;
            }
            out.push_str(&segment[last..m.start()]);
            out.push_str(REDACTED);
            last = m.end();
            count += 1;
        }
        out.push_str(&segment[last..]);
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(argv: &str) -> Vec<String> {
        argv.split('|').map(Into::into).collect()
    }

    /// Each case is argv joined by `|` with every secret in `[…]`: the input drops the brackets,
    /// the expected output replaces each bracketed part by `<redacted>` and counts it.
    fn check(cases: &[&str]) {
        let bracketed = Regex::new(r"\[[^\]]*\]").expect("test pattern");
        for case in cases {
            let input = split(&case.replace(['[', ']'], ""));
            let expected = bracketed.replace_all(case, REDACTED);
            let (out, n) = Redactor::default().redact_argv(&input);
            assert_eq!(out.join("|"), expected, "input {input:?}");
            assert_eq!(n, case.matches('[').count(), "count for {input:?}");
        }
    }

    #[test]
    fn rule1_secret_flags() {
        check(&[
            "app|--password=[hunter2]|-PassWord=[x]|--API-KEY=[k]|--db_password=[p]|--password=",
            "app|--passwd=[v]|--pass=[v]|--token=[v]|--secret=[v]|--apikey=[v]|--auth=[v]",
            "app|--access-key=[v]|--secret-key=[v]|--client-secret=[v]|--private-key=[v]",
            "app|--token|[abc]|x|-password|[abc]|--http-password|-v",
            "mongod|--auth|--port|27017",
            "psql|--no-password|db",
            "app|--bypass|x|--password",
        ]);
    }

    #[test]
    fn rule2_client_short_forms() {
        check(&[
            "/usr/bin/mysql|-uroot|-p[s3cr3t]|db",
            "mysqldump|-p|--port|3306|db",
            "redis-cli|-a|[pw]|ping|--pass|[pw]",
            "sshpass|-p|[-pw]|ssh|h",
            "sshpass|-p[pw]|ssh|h",
            "curl|-u|bob:[pw]|http://h|--user|bob:[a:b]|--user=bob:[pw]|-Ubob:[pw]",
            "wget|--password=[pw]|--ftp-password=[pw]",
            "psql|postgresql://app:[pw]@db:5432/app",
            "htpasswd|-cb|/etc/htp|bob|[pw]",
            "htpasswd|-c|/etc/htp|bob",
        ]);
    }

    #[test]
    fn rule3_key_value_pairs() {
        check(&[
            "env|DB_PASSWORD=[hunter2]|app",
            "psql|host=db password=['a b'] user=x",
            "x|u?access_token=[t1]&Api_Key=[k]&page=2",
            "mount|-o|user=u,pwd=[p],ro",
        ]);
    }

    #[test]
    fn rule4_credential_urls() {
        check(&[
            "git|clone|https://x:[p@ss]@h/r.git",
            "redis-cli|-u|redis://:[pw]@h",
            "curl|https://h:8443/a@b|ssh://git@h",
        ]);
    }

    #[test]
    fn rule5_bearer_and_basic() {
        check(&[
            "curl|-H|Authorization: Bearer [abc.def]",
            "curl|-H|authorization: basic [dXNlcjpw]",
        ]);
    }

    #[test]
    fn rule6_token_formats() {
        check(&[
            "app|id [AKIAIOSFODNN7EXAMPLE]|[ASIAIOSFODNN7EXAMPLE]",
            "app|aws_secret_access_key [wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]",
            "aws|configure|set|aws_secret_access_key|[wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]",
            "app|GH=[ghp_a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1]|[xoxb-1234-5678-abcdef]",
            "app|jwt:[eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-x]",
        ]);
    }

    #[test]
    fn rule7_private_key_block() {
        check(&[
            "app|--key|[-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----]|-v",
            "app|-----BEGIN PUBLIC KEY-----",
        ]);
    }

    #[test]
    fn non_secrets_untouched() {
        check(&[
            "nginx|-g|daemon off;",
            "python3|-m|http.server|8080",
            "ls|-p|-pX",
            "mysql|-p",
            "redis-benchmark|-q|-n|1000|-a|x",
            "curl|-u|user", // No colon: curl prompts for the password; the user name is kept.
            "sshpass",
        ]);
        assert_eq!(Redactor::default().redact_argv(&[]), (vec![], 0));
    }

    #[test]
    fn configured_patterns_and_flags() {
        let config = RedactConfig {
            extra_patterns: vec![r"corp-[0-9]{6}".into(), r"\w+".into()],
            secret_flags: vec!["--Vault_Pin".into()],
        };
        let r = Redactor::new(&config).expect("valid config");
        let (out, n) = r.redact_argv(&split("a|--vault-pin|1"));
        assert_eq!(out, [REDACTED, "--<redacted>-<redacted>", REDACTED]);
        assert_eq!((n, r.redact_argv(&out).1), (4, 0));
        let config: RedactConfig =
            serde_json::from_str(r#"{"extra_patterns":["corp-[0-9]{6}"]}"#).expect("valid json");
        let r = Redactor::new(&config).expect("valid config");
        assert_eq!(
            r.redact_str("id=corp-123456;"),
            ("id=<redacted>;".into(), 1)
        );
    }

    #[test]
    fn invalid_pattern_is_named() {
        let extra_patterns = vec!["ok".into(), "(unclosed".into()];
        let config = RedactConfig {
            extra_patterns,
            secret_flags: vec![],
        };
        let err = Redactor::new(&config).expect_err("invalid regex");
        assert_eq!(err.pattern, "(unclosed");
        let shown = err.to_string();
        assert!(
            shown.starts_with("invalid redaction pattern `(unclosed`: "),
            "{shown}"
        );
    }

    /// Argument vectors with `s` in each rule's position.
    fn placements(s: &str) -> Vec<Vec<String>> {
        [
            "app|--password={s}|-Client-Secret|{s}",
            "mysql|-uroot|-p{s}",
            "redis-cli|-a|{s}|ping",
            "sshpass|-p|{s}|ssh|h",
            "curl|-u|bob:{s}|-H|Authorization: Bearer {s}|-H|Authorization: Basic {s}",
            "htpasswd|-b|f|bob|{s}",
            "env|DB_PASSWORD={s}|psql|postgres://u:{s}@db/app",
            "app|-----BEGIN RSA PRIVATE KEY-----\n{s}\n-----END RSA PRIVATE KEY-----",
        ]
        .iter()
        .map(|t| split(&t.replace("{s}", s)))
        .collect()
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            "(AKIA|ASIA)[0-9A-Z]{16}",
            "gh[pousr]_[A-Za-z0-9]{36,40}",
            "xox[baprs]-[A-Za-z0-9-]{10,30}",
            "eyJ[A-Za-z0-9_-]{4,20}\\.eyJ[A-Za-z0-9_-]{4,20}\\.[A-Za-z0-9_-]{0,20}",
        ]
    }

    fn word() -> impl Strategy<Value = Vec<String>> {
        let flags = "-p -a -u -b --password --token aws_secret_access_key".split(' ');
        prop_oneof![
            "[ -~]{0,12}".prop_map(|w| vec![w]),
            prop::sample::select(flags.collect::<Vec<_>>()).prop_map(|f| vec![f.to_owned()]),
            ("[A-Za-z0-9]{8,32}", 0..8usize).prop_map(|(s, k)| placements(&s).swap_remove(k)),
            token().prop_map(|t| vec![format!("x={t} ")]),
        ]
    }

    proptest! {
        #[test]
        fn redaction_is_idempotent(
            prog in prop::sample::select(vec!["mysql", "redis-cli", "sshpass", "curl", "htpasswd"]),
            words in prop::collection::vec(word(), 0..8),
        ) {
            let argv: Vec<String> = [vec![prog.to_owned()], words.concat()].concat();
            let r = Redactor::default();
            let (once, _) = r.redact_argv(&argv);
            let (twice, n) = r.redact_argv(&once);
            prop_assert_eq!(twice, once);
            prop_assert_eq!(n, 0);
        }

        #[test]
        fn secrets_never_survive(
            s in "[A-Za-z0-9]{8,32}", t in token(), aws in "[A-Za-z0-9/+=]{40}",
        ) {
            let formats = split(&format!("app|k:{t},|aws_secret_access_key: {aws}"));
            for argv in placements(&s).into_iter().chain([formats]) {
                let (out, n) = Redactor::default().redact_argv(&argv);
                let joined = out.join(" ");
                let leaked = [&s, &t, &aws].into_iter().any(|x| joined.contains(x.as_str()));
                prop_assert!(n > 0 && !leaked, "{:?} -> {:?}", argv, out);
            }
        }
    }
}
