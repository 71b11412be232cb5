//! The Baseliner agent library: kernel loading, event decoding, workload attribution and the
//! capture session that ties them together.

pub mod alerting;
pub mod attribution;
pub mod capture;
pub mod config;
pub mod control;
pub mod decode;
pub mod delivery;
pub mod digest;
pub mod doctor;
pub mod enforce;
pub mod enrich;
pub mod evaluate;
pub mod evidence;
pub mod kernel;
pub mod kubernetes;
pub mod recorder;
pub mod respond;
pub mod running;
pub mod sockets;
pub mod view;
