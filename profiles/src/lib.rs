//! Baseliner's behaviour data: the event contract shared by capture, datasets, replay and
//! scoring. Profiles (learned baselines) build on these events.

pub mod event;

pub use event::{Access, Endpoint, Event, EventDetail, Family, Protocol, SCHEMA_VERSION, Workload};
