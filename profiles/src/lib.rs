//! Baseliner's behaviour data: the event contract shared by capture, datasets, replay and
//! scoring, and the behaviour profiles (learned baselines) built from those events: the model,
//! path and argument generalisation, and secret redaction.

pub mod bound;
pub mod codec;
pub mod diff;
pub mod event;
pub mod evidence;
pub mod export;
pub mod generalize;
pub mod learning;
pub mod mode;
pub mod model;
pub mod rates;
pub mod redact;
pub mod review;
pub mod revision;
pub mod store;

pub use event::{
    Access, Endpoint, Event, EventDetail, Family, KubeMeta, Protocol, SCHEMA_VERSION, Workload,
};
