//! Opens of credentials and keys: password hashes, sudo configuration, SSH keys, Kubernetes
//! service account tokens, cloud and registry credentials.
//!
//! Counts only outside the profile (sshd reading `/etc/shadow` is learned). Home directories
//! are wherever they are: `~/.ssh/id_*` matches any `…/.ssh/id_*`.
//!
//! | files | what | read | write / create |
//! |---|---|---|---|
//! | `/etc/shadow`, `/etc/gshadow` (and their `-` backups) | password hashes | 0.65 | 0.8 |
//! | `/etc/sudoers`, `/etc/sudoers.d/*` | sudo configuration | 0.65 | 0.8 |
//! | `…/.ssh/id_*` except `*.pub` | an SSH private key | 0.65 | 0.8 |
//! | `…/.ssh/authorized_keys`, `authorized_keys2` | SSH authorized keys | 0.65 | 0.8 |
//! | `/root/.ssh/*` | root's SSH directory | 0.65 | 0.8 |
//! | `/etc/ssh/ssh_host_*_key` | an SSH host private key | 0.65 | 0.8 |
//! | `/var/run/secrets/…/token`, `/run/secrets/…/token` | a Kubernetes service account token | 0.5 | 0.8 |
//! | `…/.aws/credentials`, `…/.config/gcloud/*`, `…/.azure/*` | cloud credentials | 0.65 | 0.8 |
//! | `…/.kube/config`, `/etc/kubernetes/admin.conf` | a kubeconfig | 0.65 | 0.8 |
//! | `…/.docker/config.json` | container registry credentials | 0.65 | 0.8 |
//! | `…/.git-credentials` | git credentials | 0.65 | 0.8 |
//!
//! A service account token read weighs less: in-cluster clients read it routinely, so a new
//! reader is suspicious but common. Writing any of them (a planted key, a sudoers rule) weighs
//! the most: persistence or privilege escalation.

use profiles::{Access, Event, EventDetail};

use super::{Context, basename, program_shown, under};
use crate::{alert::Reason, entries::primary_entry};

/// The rule name.
pub const RULE: &str = "sensitive-file";

/// Reading credentials or keys.
pub const WEIGHT_READ: f64 = 0.65;
/// Reading a Kubernetes service account token.
pub const WEIGHT_TOKEN_READ: f64 = 0.5;
/// Writing or creating any of them.
pub const WEIGHT_WRITE: f64 = 0.8;

const TOKEN: &str = "a Kubernetes service account token";

/// What a sensitive `path` holds, if it is one.
pub fn classify(path: &str) -> Option<&'static str> {
    let base = basename(path);
    let in_ssh_dir = path.contains("/.ssh/");
    let class = match path {
        "/etc/shadow" | "/etc/shadow-" | "/etc/gshadow" | "/etc/gshadow-" => "password hashes",
        "/etc/sudoers" => "the sudo configuration",
        "/etc/kubernetes/admin.conf" => "a kubeconfig",
        _ if under(path, "/etc/sudoers.d") => "the sudo configuration",
        _ if in_ssh_dir && base.starts_with("id_") && !base.ends_with(".pub") => {
            "an SSH private key"
        }
        _ if in_ssh_dir && matches!(base, "authorized_keys" | "authorized_keys2") => {
            "SSH authorized keys"
        }
        _ if under(path, "/root/.ssh") => "root's SSH directory",
        _ if under(path, "/etc/ssh") && base.starts_with("ssh_host_") && base.ends_with("_key") => {
            "an SSH host private key"
        }
        _ if (under(path, "/var/run/secrets") || under(path, "/run/secrets"))
            && base == "token" =>
        {
            TOKEN
        }
        _ if path.ends_with("/.aws/credentials") => "AWS credentials",
        _ if path.contains("/.config/gcloud/") => "Google Cloud credentials",
        _ if path.contains("/.azure/") => "Azure credentials",
        _ if path.ends_with("/.kube/config") => "a kubeconfig",
        _ if path.ends_with("/.docker/config.json") => "container registry credentials",
        _ if path.ends_with("/.git-credentials") => "git credentials",
        _ => return None,
    };
    Some(class)
}

/// The sensitive-file reason for an open of a sensitive path.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Open { path, access, .. } = &e.detail else {
        return None;
    };
    let class = classify(path)?;
    let (weight, verb) = match access {
        Access::Read if class == TOKEN => (WEIGHT_TOKEN_READ, "reads"),
        Access::Read => (WEIGHT_READ, "reads"),
        Access::Write => (WEIGHT_WRITE, "writes"),
        Access::Create => (WEIGHT_WRITE, "creates or overwrites"),
    };
    let text = format!("{} {verb} {class}: {path}", program_shown(e));
    Some(Reason::new(RULE, weight, text, primary_entry(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{state::WorkloadState, test_support::open};

    fn weight(path: &str, access: Access) -> Option<f64> {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        check(&open(path, access), &ctx).map(|r| r.weight)
    }

    #[test]
    fn credentials_and_keys_are_sensitive() {
        for path in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d/90-cloud-init-users",
            "/root/.ssh/id_rsa",
            "/home/deploy/.ssh/id_ed25519",
            "/var/lib/jenkins/.ssh/id_ecdsa",
            "/home/deploy/.ssh/authorized_keys",
            "/root/.ssh/known_hosts",
            "/etc/ssh/ssh_host_ed25519_key",
            "/home/u/.aws/credentials",
            "/root/.config/gcloud/application_default_credentials.json",
            "/home/u/.azure/accessTokens.json",
            "/root/.kube/config",
            "/home/u/.docker/config.json",
        ] {
            assert_eq!(weight(path, Access::Read), Some(WEIGHT_READ), "{path}");
            assert_eq!(weight(path, Access::Create), Some(WEIGHT_WRITE), "{path}");
        }
        let token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        assert_eq!(weight(token, Access::Read), Some(WEIGHT_TOKEN_READ));
        assert_eq!(
            weight(
                "/run/secrets/kubernetes.io/serviceaccount/token",
                Access::Read
            ),
            Some(WEIGHT_TOKEN_READ)
        );
    }

    #[test]
    fn ordinary_files_are_not() {
        for path in [
            "/etc/passwd",
            "/etc/group",
            "/etc/shadow.bak.d/x",
            "/home/deploy/.ssh/id_ed25519.pub",
            "/home/deploy/.ssh/known_hosts",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/sshd_config",
            "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
            "/home/u/.aws/config",
            "/home/u/.kube/cache/discovery/x.json",
            "/usr/share/doc/sudoers",
            "/etc/nginx/nginx.conf",
        ] {
            assert_eq!(weight(path, Access::Read), None, "{path}");
        }
    }

    #[test]
    fn the_text_names_the_file_and_the_reader() {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let r = check(&open("/etc/shadow", Access::Read), &ctx).unwrap();
        assert_eq!(r.text, "/usr/sbin/nginx reads password hashes: /etc/shadow");
        assert_eq!(r.entry.as_deref(), Some("file /etc/shadow (read)"));
    }
}
