//! cgroup2 discovery and the mapping from cgroup id (what `bpf_get_current_cgroup_id` returns)
//! to the cgroup's path relative to the cgroup2 mount.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an unresolved id suppresses another walk of the cgroup tree, by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(1);

const PROC_MOUNTS: &str = "/proc/mounts";

/// Errors of cgroup2 discovery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/mounts` could not be read.
    #[error("cannot read {PROC_MOUNTS}: {0}")]
    ReadMounts(#[source] io::Error),
    /// No cgroup2 file system is mounted.
    #[error(
        "cgroup2 is not mounted; mount it with `mount -t cgroup2 none /sys/fs/cgroup/unified` \
         (or at /sys/fs/cgroup on a host without cgroup v1)"
    )]
    NotMounted,
}

/// Finds the first cgroup2 mount point in `/proc/mounts` text, decoding its octal escapes.
pub fn parse_cgroup2_mount(proc_mounts: &str) -> Option<PathBuf> {
    proc_mounts.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let _source = fields.next()?;
        let target = fields.next()?;
        (fields.next()? == "cgroup2").then(|| unescape_mount_field(target))
    })
}

/// Decodes the `\ooo` octal escapes the kernel writes for space, tab, newline and backslash.
fn unescape_mount_field(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d[0] <= b'3' && d.iter().all(|b| (b'0'..=b'7').contains(b))
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The cgroup2 mount point of this host, from `/proc/mounts`.
pub fn cgroup2_mount() -> Result<PathBuf, Error> {
    let mounts = fs::read_to_string(PROC_MOUNTS).map_err(Error::ReadMounts)?;
    parse_cgroup2_mount(&mounts).ok_or(Error::NotMounted)
}

/// The cgroup id of a cgroup2 directory: its inode number.
pub fn cgroup_id(path: &Path) -> io::Result<u64> {
    Ok(fs::metadata(path)?.ino())
}

/// The cgroup2 path of a process, from its `/proc/PID/cgroup` text (the `0::` line).
pub fn parse_proc_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

/// The cgroup2 path (relative to the mount) of process `pid`.
pub fn cgroup_of_pid(pid: u32) -> io::Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    parse_proc_cgroup(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {pid} has no cgroup2 entry"),
        )
    })
}

/// Maps cgroup ids to paths relative to the cgroup2 mount (`/` for the root cgroup).
///
/// Known ids are answered from a cache. An unknown id triggers a walk of the whole tree, but at
/// most one walk per negative TTL: an id that never resolves (a removed cgroup) costs a walk
/// only once per TTL, and a cgroup created since the last walk is found after the TTL.
#[derive(Debug)]
pub struct CgroupResolver {
    root: PathBuf,
    paths: HashMap<u64, String>,
    last_walk: Option<Instant>,
    negative_ttl: Duration,
    warned: bool,
}

impl CgroupResolver {
    /// A resolver for the cgroup2 tree mounted at `root`. The tree is walked on first use.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            paths: HashMap::new(),
            last_walk: None,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            warned: false,
        }
    }

    /// Sets the minimum time between two walks caused by unknown ids.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The cgroup2 mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of cgroup `id` relative to the mount, walking the tree again when the id is
    /// unknown and the last walk is older than the negative TTL.
    pub fn resolve(&mut self, id: u64) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        let due = self
            .last_walk
            .is_none_or(|at| at.elapsed() >= self.negative_ttl);
        if !due {
            return None;
        }
        self.rescan();
        self.paths.get(&id).cloned()
    }

    /// Drops `id` from the cache; it resolves again only through a new walk.
    pub fn forget(&mut self, id: u64) {
        self.paths.remove(&id);
    }

    /// Walks the tree now and replaces the cache with what it finds.
    pub fn rescan(&mut self) {
        self.last_walk = Some(Instant::now());
        match walk(&self.root) {
            Ok(found) => {
                let paths = found
                    .into_iter()
                    .filter_map(|(id, abs)| Some((id, self.relative(&abs)?)))
                    .collect();
                self.paths = paths;
            }
            Err(e) if !self.warned => {
                self.warned = true;
                tracing::warn!(root = %self.root.display(), "cannot walk the cgroup2 tree: {e}");
            }
            Err(e) => {
                tracing::debug!(root = %self.root.display(), "cannot walk the cgroup2 tree: {e}")
            }
        }
    }

    /// The cgroup at `rel_or_abs` (absolute under the mount, or relative to it, with or without
    /// a leading `/`) and every cgroup below it, as (id, absolute path), sorted by path.
    pub fn descendants(&self, rel_or_abs: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
        let rel = rel_or_abs.strip_prefix(&self.root).unwrap_or(rel_or_abs);
        let mut abs = self.root.clone();
        for component in rel.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => abs.push(name),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("cgroup path may not contain `..`: {}", rel_or_abs.display()),
                    ));
                }
            }
        }
        let mut found = walk(&abs)?;
        found.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(found)
    }

    /// The path of `abs` relative to the mount, starting with `/`; `None` when `abs` is not
    /// below the mount.
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        let mut out = String::new();
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return None;
            };
            out.push('/');
            out.push_str(&name.to_string_lossy());
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

/// Every directory at and below `dir`, with its id. Fails only when `dir` itself cannot be read;
/// directories that vanish during the walk are skipped.
fn walk(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = vec![(cgroup_id(dir)?, dir.to_path_buf())];
    let mut pending = vec![(dir.to_path_buf(), true)];
    while let Some((parent, is_top)) = pending.pop() {
        let entries = match fs::read_dir(&parent) {
            Ok(entries) => entries,
            Err(e) if is_top => return Err(e),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::debug!(path = %parent.display(), "skipping cgroup: {e}");
                }
                continue;
            }
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if let Ok(id) = cgroup_id(&path) {
                found.push((id, path.clone()));
                pending.push((path, false));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod proc_cgroup_tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_line() {
        let hybrid = "9:name=systemd:/\n4:memory:/x/y\n1:cpu:/\n0::/user.slice/session-3.scope\n";
        assert_eq!(
            parse_proc_cgroup(hybrid).as_deref(),
            Some("/user.slice/session-3.scope")
        );
        assert_eq!(parse_proc_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_proc_cgroup("4:memory:/x\n"), None);
        let me = cgroup_of_pid(std::process::id()).unwrap();
        assert!(me.starts_with('/'), "{me}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique temporary directory, removed on drop.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("baseliner-cgroup-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn mkdir(&self, rel: &str) -> u64 {
            let path = self.0.join(rel);
            fs::create_dir_all(&path).unwrap();
            cgroup_id(&path).unwrap()
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const HYBRID: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
";

    const UNIFIED: &str = "\
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
securityfs /sys/kernel/security securityfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
";

    #[test]
    fn finds_cgroup2_on_hybrid_host() {
        assert_eq!(
            parse_cgroup2_mount(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn finds_cgroup2_on_unified_host() {
        assert_eq!(
            parse_cgroup2_mount(UNIFIED),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn no_cgroup2_on_v1_only_host() {
        let v1 = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(parse_cgroup2_mount(v1), None);
        assert_eq!(parse_cgroup2_mount(""), None);
    }

    #[test]
    fn decodes_octal_escapes_in_mount_point() {
        let text = "none /mnt/my\\040cgroups\\011x\\134y cgroup2 rw 0 0\n";
        assert_eq!(
            parse_cgroup2_mount(text),
            Some(PathBuf::from("/mnt/my cgroups\tx\\y"))
        );
        // A backslash not followed by three octal digits is kept.
        assert_eq!(
            unescape_mount_field("/a\\9b\\04"),
            PathBuf::from("/a\\9b\\04")
        );
    }

    #[test]
    fn not_mounted_error_says_how_to_mount() {
        let msg = Error::NotMounted.to_string();
        assert!(
            msg.contains("mount -t cgroup2 none /sys/fs/cgroup/unified"),
            "{msg}"
        );
    }

    #[test]
    fn relative_paths_start_with_slash() {
        let r = CgroupResolver::new(PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(r.root(), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(
            r.relative(Path::new("/sys/fs/cgroup/unified")).as_deref(),
            Some("/")
        );
        assert_eq!(
            r.relative(Path::new("/sys/fs/cgroup/unified/")).as_deref(),
            Some("/")
        );
        assert_eq!(
            r.relative(Path::new(
                "/sys/fs/cgroup/unified/user.slice/user-0.slice/session-3.scope"
            ))
            .as_deref(),
            Some("/user.slice/user-0.slice/session-3.scope")
        );
        assert_eq!(r.relative(Path::new("/sys/fs/cgroup/memory/x")), None);
        assert_eq!(r.relative(Path::new("/sys/fs/cgroup/unified/../x")), None);
    }

    #[test]
    fn resolves_every_directory_of_the_tree() {
        let tree = TempTree::new();
        let session = tree.mkdir("user.slice/user-0.slice/session-3.scope");
        let nginx = tree.mkdir("system.slice/nginx.service");
        fs::write(tree.0.join("system.slice/cgroup.procs"), "1\n").unwrap();
        let root = cgroup_id(&tree.0).unwrap();

        let mut r = CgroupResolver::new(tree.0.clone());
        assert_eq!(r.resolve(root).as_deref(), Some("/"));
        assert_eq!(
            r.resolve(session).as_deref(),
            Some("/user.slice/user-0.slice/session-3.scope")
        );
        assert_eq!(
            r.resolve(nginx).as_deref(),
            Some("/system.slice/nginx.service")
        );
        let file = cgroup_id(&tree.0.join("system.slice/cgroup.procs")).unwrap();
        assert_eq!(r.resolve(file), None, "files are not cgroups");
    }

    #[test]
    fn new_cgroup_resolves_after_negative_ttl() {
        let tree = TempTree::new();
        tree.mkdir("system.slice");
        let mut r = CgroupResolver::new(tree.0.clone()).with_negative_ttl(Duration::ZERO);
        assert_eq!(r.resolve(u64::MAX), None);
        let fresh = tree.mkdir("system.slice/fresh.service");
        assert_eq!(
            r.resolve(fresh).as_deref(),
            Some("/system.slice/fresh.service")
        );
    }

    #[test]
    fn unknown_ids_do_not_rewalk_within_ttl() {
        let tree = TempTree::new();
        let mut r =
            CgroupResolver::new(tree.0.clone()).with_negative_ttl(Duration::from_millis(200));
        assert_eq!(r.resolve(u64::MAX), None);
        let fresh = tree.mkdir("late.scope");
        // Within the TTL the miss is answered without a walk, so the new cgroup is not seen yet.
        assert_eq!(r.resolve(u64::MAX), None);
        assert_eq!(r.resolve(fresh), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(r.resolve(fresh).as_deref(), Some("/late.scope"));
    }

    #[test]
    fn removed_cgroup_is_dropped_on_rescan() {
        let tree = TempTree::new();
        let gone = tree.mkdir("gone.scope");
        let mut r = CgroupResolver::new(tree.0.clone()).with_negative_ttl(Duration::ZERO);
        assert_eq!(r.resolve(gone).as_deref(), Some("/gone.scope"));
        fs::remove_dir(tree.0.join("gone.scope")).unwrap();
        r.rescan();
        assert_eq!(r.resolve(gone), None);

        let kept = tree.mkdir("kept.scope");
        assert_eq!(r.resolve(kept).as_deref(), Some("/kept.scope"));
        r.forget(kept);
        assert_eq!(r.resolve(kept).as_deref(), Some("/kept.scope"));
    }

    #[test]
    fn missing_root_resolves_nothing() {
        let tree = TempTree::new();
        let mut r = CgroupResolver::new(tree.0.join("absent")).with_negative_ttl(Duration::ZERO);
        assert_eq!(r.resolve(1), None);
        assert_eq!(r.resolve(1), None);
    }

    #[test]
    fn descendants_lists_the_subtree() {
        let tree = TempTree::new();
        let slice = tree.mkdir("kubepods.slice");
        let pod = tree.mkdir("kubepods.slice/kubepods-pod1.slice");
        let ctr = tree.mkdir("kubepods.slice/kubepods-pod1.slice/cri-containerd-a.scope");
        tree.mkdir("system.slice/other.service");
        let r = CgroupResolver::new(tree.0.clone());

        let expected = vec![
            (slice, tree.0.join("kubepods.slice")),
            (pod, tree.0.join("kubepods.slice/kubepods-pod1.slice")),
            (
                ctr,
                tree.0
                    .join("kubepods.slice/kubepods-pod1.slice/cri-containerd-a.scope"),
            ),
        ];
        assert_eq!(
            r.descendants(Path::new("/kubepods.slice")).unwrap(),
            expected
        );
        assert_eq!(
            r.descendants(Path::new("kubepods.slice/")).unwrap(),
            expected
        );
        assert_eq!(
            r.descendants(&tree.0.join("kubepods.slice")).unwrap(),
            expected
        );
        assert_eq!(r.descendants(Path::new("/")).unwrap().len(), 6);
        assert_eq!(
            r.descendants(Path::new("/absent")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            r.descendants(Path::new("/kubepods.slice/../system.slice"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn cgroup_id_is_the_inode() {
        let tree = TempTree::new();
        assert_eq!(
            cgroup_id(&tree.0).unwrap(),
            fs::metadata(&tree.0).unwrap().ino()
        );
        assert!(cgroup_id(&tree.0.join("absent")).is_err());
    }
}
