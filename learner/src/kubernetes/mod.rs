//! The Kubernetes integration: pod metadata for events, modes from annotations, the
//! `WorkloadProfile` custom resource, network policies, and the Kubernetes responses.

pub mod attribute;
pub mod crd;
pub mod identity;
pub mod modes;
pub mod netpol;
pub mod pods;
pub mod policy;
pub mod publish;
pub mod respond;
pub mod share;
pub mod watch;
