//! The audit log: every response the agent took, with the alert that caused it, in the store's
//! `audit` tree (keys ordered by time).

use api::AuditRecord;
use profiles::store::{Store, StoreError};
use scorer::alert::{ActionTaken, Alert};

/// The store tree of the audit log.
pub const AUDIT_TREE: &str = "audit";

/// Appends `action`, caused by `alert`, to the audit log (durable with the alert's flush).
pub fn record(store: &Store, alert: &Alert, action: &ActionTaken) -> Result<(), StoreError> {
    let rec = AuditRecord {
        actor: "agent".into(),
        workload: alert.workload.clone(),
        action: action.clone(),
        alert_key: alert.key.clone(),
        alert_summary: alert.summary.clone(),
    };
    // Time first, then the alert: one alert's actions at one instant keep their order.
    let key = format!("{:020}-{}-{}", action.at_ns, alert.key, action.action);
    store.put_json(AUDIT_TREE, key.as_bytes(), &rec)
}

/// Every audit record, oldest first.
pub fn all(store: &Store) -> Result<Vec<AuditRecord>, StoreError> {
    store.all_json(AUDIT_TREE)
}
