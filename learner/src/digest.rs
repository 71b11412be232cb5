//! Content digests of executables, for host revisions. A file is hashed once per identity
//! (device, inode, size, modification time); later lookups cost one `fstat`.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read},
    os::unix::fs::MetadataExt,
};

use sha2::{Digest, Sha256};

/// What a file that cannot be read digests to.
pub const UNREADABLE: &str = "unreadable";

type Identity = (u64, u64, u64, i64, i64);

/// Digests of executables, cached by file identity.
#[derive(Default)]
pub struct Digests {
    cache: HashMap<Identity, String>,
    /// The identity each path had when last looked at, so a known file costs one `stat`.
    paths: HashMap<String, Identity>,
    /// Files hashed (cache misses).
    pub hashed: u64,
}

impl Digests {
    /// The digest of the file at `path`, or [`UNREADABLE`]. The path is read rather than
    /// `/proc/PID/exe`: by the time an event is handled its process may have exec'd again.
    pub fn of_path(&mut self, path: &str) -> String {
        if let Some(id) = self.paths.get(path)
            && let Ok(m) = std::fs::metadata(path)
            && identity(&m) == *id
            && let Some(d) = self.cache.get(id)
        {
            return d.clone();
        }
        match File::open(path).and_then(|f| self.of_file(path, f)) {
            Ok(d) => d,
            Err(_) => UNREADABLE.to_string(),
        }
    }

    fn of_file(&mut self, path: &str, mut f: File) -> io::Result<String> {
        let id = identity(&f.metadata()?);
        self.paths.insert(path.to_string(), id);
        if let Some(d) = self.cache.get(&id) {
            return Ok(d.clone());
        }
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.hashed += 1;
        self.cache.insert(id, d.clone());
        Ok(d)
    }
}

fn identity(m: &std::fs::Metadata) -> Identity {
    (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_content_and_are_cached() {
        let dir = std::env::temp_dir().join(format!("baseliner-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("prog");
        std::fs::write(&p, b"one").unwrap();
        let path = p.to_str().unwrap();
        let mut d = Digests::default();
        let a = d.of_path(path);
        assert_eq!(d.of_path(path), a);
        assert_eq!(d.hashed, 1, "the second lookup is cached");
        std::fs::write(&p, b"two, longer").unwrap();
        let b = d.of_path(path);
        assert_ne!(a, b, "new content, new digest");
        assert_eq!(d.of_path("/nonexistent/prog"), UNREADABLE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
