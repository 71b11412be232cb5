//! The embedded store (sled): profiles per workload and revision with their learning state,
//! and workload modes. Values go through [`crate::codec`]. Writes are batched; a value is
//! durable once [`Store::flush`] returns.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    codec::{self, CodecError},
    learning::Learning,
    mode::Mode,
    model::Profile,
    rates::RateSamples,
    revision::Revisions,
};

/// A store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled failed (I/O, or the store is locked by another process).
    #[error("store: {0}")]
    Sled(sled::Error),
    /// A stored value could not be read back.
    #[error("store value {key:?}: {source}")]
    Codec {
        /// The key whose value is bad.
        key: String,
        /// What is wrong with it.
        #[source]
        source: CodecError,
    },
    /// A workload or revision name that cannot be a key.
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        /// "workload" or "revision".
        what: &'static str,
        /// The rejected name.
        value: String,
        /// Why.
        why: &'static str,
    },
}

impl StoreError {
    /// True when another process (or another handle in this one) holds the store.
    pub fn is_locked(&self) -> bool {
        match self {
            StoreError::Sled(sled::Error::Io(e)) => {
                e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock")
            }
            _ => false,
        }
    }
}

// Not `#[from]`: the message already includes sled's, and a source would repeat it.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

/// A profile with its learning state, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProfile {
    /// The learned entries.
    pub profile: Profile,
    /// Learning progress.
    pub learning: Learning,
}

/// Identifies a stored profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileKey {
    /// Workload id.
    pub workload: String,
    /// Revision (host: a hash of the executable set; Kubernetes: pod-template-hash / digest).
    pub revision: String,
}

const SEP: char = '\u{0}';

/// sled page cache size.
const CACHE_BYTES: u64 = 8 << 20;

/// Key in the `meta` tree of the agent's last sign of life.
const LAST_ALIVE: &[u8] = b"last_alive_ns";

fn check(what: &'static str, value: &str) -> Result<(), StoreError> {
    let why = if value.is_empty() {
        "empty"
    } else if value.contains(SEP) {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        what,
        value: value.to_string(),
        why,
    })
}

impl ProfileKey {
    /// A key, validated.
    pub fn new(workload: &str, revision: &str) -> Result<ProfileKey, StoreError> {
        check("workload", workload)?;
        check("revision", revision)?;
        Ok(ProfileKey {
            workload: workload.into(),
            revision: revision.into(),
        })
    }

    fn bytes(&self) -> Vec<u8> {
        format!("{}{SEP}{}", self.workload, self.revision).into_bytes()
    }

    fn from_bytes(b: &[u8]) -> Option<ProfileKey> {
        let s = std::str::from_utf8(b).ok()?;
        let (w, r) = s.split_once(SEP)?;
        Some(ProfileKey {
            workload: w.into(),
            revision: r.into(),
        })
    }
}

/// A JSON record under `key` could not be written or read.
fn json_error(key: &[u8], e: serde_json::Error) -> StoreError {
    StoreError::Codec {
        key: String::from_utf8_lossy(key).into_owned(),
        source: CodecError::Json(e.to_string()),
    }
}

/// The agent's embedded store.
pub struct Store {
    db: sled::Db,
    profiles: sled::Tree,
    modes: sled::Tree,
    meta: sled::Tree,
    revisions: sled::Tree,
    rates: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in directory `path`. Only one process may hold it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // sled's page cache defaults to 1 GiB; profiles are read once and then live in the
        // recorder, so a small cache keeps the agent's memory low.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let profiles = db.open_tree("profiles")?;
        let modes = db.open_tree("modes")?;
        let meta = db.open_tree("meta")?;
        let revisions = db.open_tree("revisions")?;
        let rates = db.open_tree("rates")?;
        Ok(Store {
            db,
            profiles,
            modes,
            meta,
            revisions,
            rates,
        })
    }

    /// Opens the store, waiting up to `wait` while another holder releases it (sled lets go of
    /// its lock only once its background flusher has stopped, shortly after the holder closed).
    pub fn open_waiting(path: &Path, wait: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Store::open(path) {
                Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T, StoreError> {
        codec::decode(v).map_err(|source| StoreError::Codec {
            key: String::from_utf8_lossy(key).replace(SEP, "/"),
            source,
        })
    }

    /// Encodes values by profile key into one batch; `what` follows the key in errors.
    fn batch<'a, T: Serialize + 'a>(
        items: impl IntoIterator<Item = (&'a ProfileKey, &'a T)>,
        what: &str,
    ) -> Result<sled::Batch, StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in items {
            let bytes = codec::encode(value).map_err(|source| StoreError::Codec {
                key: format!("{}/{}{what}", key.workload, key.revision),
                source,
            })?;
            batch.insert(key.bytes(), bytes);
        }
        Ok(batch)
    }

    /// The stored profile for `key`, if any.
    pub fn load(&self, key: &ProfileKey) -> Result<Option<StoredProfile>, StoreError> {
        let k = key.bytes();
        self.profiles
            .get(&k)?
            .map(|v| Self::decode(&k, &v))
            .transpose()
    }

    /// Writes several profiles in one atomic batch (not yet flushed to disk).
    pub fn save_batch<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a ProfileKey, &'a StoredProfile)>,
    ) -> Result<(), StoreError> {
        self.profiles.apply_batch(Self::batch(items, "")?)?;
        Ok(())
    }

    /// Removes a profile and its rate samples; true when the profile existed.
    pub fn remove(&self, key: &ProfileKey) -> Result<bool, StoreError> {
        self.rates.remove(key.bytes())?;
        Ok(self.profiles.remove(key.bytes())?.is_some())
    }

    /// The rate samples learned beside the profile `key`, if any.
    pub fn load_rates(&self, key: &ProfileKey) -> Result<Option<RateSamples>, StoreError> {
        let k = key.bytes();
        self.rates
            .get(&k)?
            .map(|v| Self::decode(&k, &v))
            .transpose()
    }

    /// Writes the rate samples of several profiles in one atomic batch (not yet flushed).
    pub fn save_rates<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a ProfileKey, &'a RateSamples)>,
    ) -> Result<(), StoreError> {
        self.rates.apply_batch(Self::batch(items, " rates")?)?;
        Ok(())
    }

    /// Every stored profile key, sorted.
    pub fn keys(&self) -> Result<Vec<ProfileKey>, StoreError> {
        let mut out = Vec::new();
        for kv in self.profiles.iter() {
            let (k, _) = kv?;
            if let Some(key) = ProfileKey::from_bytes(&k) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// The mode set for `workload`, if one was set.
    pub fn mode(&self, workload: &str) -> Result<Option<Mode>, StoreError> {
        self.modes
            .get(workload.as_bytes())?
            .map(|v| Self::decode(workload.as_bytes(), &v))
            .transpose()
    }

    /// Sets and flushes the mode of `workload` (a mode change is acknowledged only once durable).
    pub fn set_mode(&self, workload: &str, mode: Mode) -> Result<(), StoreError> {
        check("workload", workload)?;
        let bytes = codec::encode(&mode).map_err(|source| StoreError::Codec {
            key: workload.into(),
            source,
        })?;
        self.modes.insert(workload.as_bytes(), bytes)?;
        self.flush()
    }

    /// Every workload with a mode set, sorted.
    pub fn modes(&self) -> Result<Vec<(String, Mode)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.modes.iter() {
            let (k, v) = kv?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                Self::decode(&k, &v)?,
            ));
        }
        Ok(out)
    }

    /// The revision state of `workload`, if any.
    pub fn revisions(&self, workload: &str) -> Result<Option<Revisions>, StoreError> {
        self.revisions
            .get(workload.as_bytes())?
            .map(|v| Self::decode(workload.as_bytes(), &v))
            .transpose()
    }

    /// Writes several workloads' revision states in one atomic batch (not yet flushed).
    pub fn save_revisions<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a str, &'a Revisions)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (workload, value) in items {
            check("workload", workload)?;
            let bytes = codec::encode(value).map_err(|source| StoreError::Codec {
                key: workload.into(),
                source,
            })?;
            batch.insert(workload.as_bytes(), bytes);
        }
        self.revisions.apply_batch(batch)?;
        Ok(())
    }

    /// Writes `value` as JSON under `key` in the tree `tree` (records of higher layers, such as
    /// alerts, whose types this crate does not know); durable after the next flush.
    pub fn put_json<T: Serialize>(
        &self,
        tree: &str,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| json_error(key, e))?;
        self.db.open_tree(tree)?.insert(key, bytes)?;
        Ok(())
    }

    /// The JSON record under `key` in `tree`, if any.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let Some(v) = self.db.open_tree(tree)?.get(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| json_error(key, e))
    }

    /// Removes the JSON record under `key` in `tree`; durable after the next flush.
    pub fn remove_json(&self, tree: &str, key: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(tree)?.remove(key)?;
        Ok(())
    }

    /// Every JSON record of `tree`, in key order.
    pub fn all_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.open_tree(tree)?.iter() {
            let (k, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| json_error(&k, e))?);
        }
        Ok(out)
    }

    /// The sled tree `name` (created when missing), for layers that keep their own binary
    /// records, such as [`crate::evidence`]; durable after the next flush.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// When the agent last showed it was alive (Unix-epoch nanoseconds), if ever.
    pub fn last_alive_ns(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.meta.get(LAST_ALIVE)?.and_then(|v| {
            let b: [u8; 8] = v.as_ref().try_into().ok()?;
            Some(u64::from_le_bytes(b))
        }))
    }

    /// Records that the agent is alive at `now_ns` (durable with the next flush).
    pub fn set_last_alive_ns(&self, now_ns: u64) -> Result<(), StoreError> {
        self.meta.insert(LAST_ALIVE, &now_ns.to_le_bytes())?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Temporary store directories for the crate's tests.
#[cfg(test)]
pub(crate) mod temp {
    use std::path::PathBuf;

    /// A directory removed when dropped.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let p = std::env::temp_dir().join(format!(
                "baseliner-test-{label}-{}-{nanos}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }

        /// The store in this directory (waiting for a previous holder to let go).
        pub(crate) fn open(&self) -> super::Store {
            super::Store::open_waiting(&self.0, std::time::Duration::from_secs(10)).unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests;
