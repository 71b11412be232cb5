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
    append(store, &rec)
}

/// Appends `rec` to the audit log (durable with the next flush).
pub fn append(store: &Store, rec: &AuditRecord) -> Result<(), StoreError> {
    // Time first, then the alert or workload: one alert's actions at one instant keep their
    // order.
    let about = if rec.alert_key.is_empty() {
        &rec.workload
    } else {
        &rec.alert_key
    };
    let key = format!("{:020}-{about}-{}", rec.action.at_ns, rec.action.action);
    store.put_json(AUDIT_TREE, key.as_bytes(), rec)
}

/// Every audit record, oldest first.
pub fn all(store: &Store) -> Result<Vec<AuditRecord>, StoreError> {
    store.all_json(AUDIT_TREE)
}
