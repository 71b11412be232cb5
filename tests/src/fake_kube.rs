//! A fake Kubernetes API server on loopback for tests without a cluster.
