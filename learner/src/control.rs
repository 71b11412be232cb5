//! The agent's state as the API sees it ([`api::Agent`]): the recorder, shared with the event
//! loop, plus what the running agent reports about itself. With no agent running, the CLI
//! builds the same over the store, without a runtime.

use std::{
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use api::{Agent, AgentRuntime, ApiError, Settings};
use profiles::{
    mode::Mode,
    rates::RateSamples,
    store::{ProfileKey, StoredProfile},
};

use crate::recorder::Recorder;

/// The recorder as shared by the event loop and the API.
pub type SharedRecorder = Arc<Mutex<Recorder>>;

/// The agent behind the API.
pub struct Control {
    recorder: SharedRecorder,
    runtime: Option<Arc<Mutex<AgentRuntime>>>,
    cgroup_mount: Option<PathBuf>,
}

impl Control {
    /// Over `recorder`; `runtime` is `None` when no agent runs (the CLI reading the store).
    pub fn new(recorder: SharedRecorder, runtime: Option<Arc<Mutex<AgentRuntime>>>) -> Control {
        Control {
            recorder,
            runtime,
            cgroup_mount: crate::attribution::cgroup::cgroup2_mount().ok(),
        }
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panic while holding the lock leaves the recorder usable: every method keeps it
        // consistent between statements that can fail.
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

/// The cgroup directory a host workload id names, when it is a plain path under the mount.
fn cgroup_dir(mount: &Path, workload: &str) -> Option<PathBuf> {
    let rel = Path::new(workload.strip_prefix('/')?);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| mount.join(rel))
}

impl Agent for Control {
    fn settings(&self) -> Settings {
        self.recorder().settings().clone()
    }

    fn runtime(&self) -> Option<AgentRuntime> {
        self.runtime
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn modes(&self) -> Result<Vec<(String, Mode)>, ApiError> {
        self.recorder().modes().map_err(internal)
    }

    fn set_mode(&self, workload: &str, mode: Mode) -> Result<Option<Mode>, ApiError> {
        self.recorder().set_mode(workload, mode).map_err(internal)
    }

    fn workload_exists(&self, workload: &str) -> bool {
        self.cgroup_mount
            .as_deref()
            .and_then(|m| cgroup_dir(m, workload))
            .is_some_and(|d| d.is_dir())
    }

    fn profile_keys(&self) -> Result<Vec<ProfileKey>, ApiError> {
        self.recorder().profile_keys().map_err(internal)
    }

    fn profile(&self, key: &ProfileKey) -> Result<Option<StoredProfile>, ApiError> {
        self.recorder().profile(key).map_err(internal)
    }

    fn rate_samples(&self, key: &ProfileKey) -> Result<Option<RateSamples>, ApiError> {
        self.recorder().rate_samples(key).map_err(internal)
    }

    fn import(
        &self,
        key: &ProfileKey,
        profile: StoredProfile,
        rates: Option<RateSamples>,
    ) -> Result<(), ApiError> {
        self.recorder()
            .import(key, profile, rates)
            .map_err(internal)
    }

    fn alerts(&self) -> Result<Vec<scorer::alert::Alert>, ApiError> {
        Ok(self
            .recorder()
            .store()
            .all_json(crate::alerting::ALERTS_TREE)?)
    }

    fn audit(&self) -> Result<Vec<api::AuditRecord>, ApiError> {
        Ok(crate::respond::audit::all(self.recorder().store())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_map_to_cgroup_dirs_without_escaping() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(
            cgroup_dir(m, "/system.slice/nginx.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/nginx.service"))
        );
        assert_eq!(cgroup_dir(m, "/"), Some(PathBuf::from("/sys/fs/cgroup/")));
        assert_eq!(cgroup_dir(m, "/../../etc"), None);
        assert_eq!(
            cgroup_dir(m, "/a/./b"),
            Some(PathBuf::from("/sys/fs/cgroup/a/b"))
        );
        assert_eq!(cgroup_dir(m, "relative"), None);
    }
}
