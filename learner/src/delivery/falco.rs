//! Alerts in Falco's JSON output format, one line each, so falcosidekick (or anything reading
//! Falco's `json_output`) can forward them.

use profiles::EventDetail;
use scorer::alert::{Alert, Severity};

use super::alertmanager::rfc3339;

/// Falco's priority of a severity.
pub fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
        Severity::Info => "Informational",
    }
}

/// Falco's `evt.type` of an event kind.
fn evt_type(detail: &EventDetail) -> &str {
    match detail {
        EventDetail::Exec { .. } => "execve",
        EventDetail::Open { .. } => "openat",
        EventDetail::Setuid { call, .. } | EventDetail::Setgid { call, .. } => call,
        other => other.kind(),
    }
}

/// A random UUID (version 4).
fn uuid() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The Falco JSON record of `alert`, raised on `hostname`.
pub fn record(alert: &Alert, hostname: &str) -> serde_json::Value {
    let e = &alert.event;
    let time = rfc3339(alert.first_ns);
    let prio = priority(alert.severity);
    let rule = alert
        .reasons
        .first()
        .map_or("deviation", |r| r.rule.as_str());
    let cmdline = match &e.detail {
        EventDetail::Exec { argv, .. } if !argv.is_empty() => {
            let name = e.comm.as_str();
            let args = argv[1..].join(" ");
            if args.is_empty() {
                name.to_string()
            } else {
                format!("{name} {args}")
            }
        }
        _ => e.comm.clone(),
    };
    let container = e
        .workload
        .container_id
        .as_deref()
        .map_or("host".to_string(), |c| c.chars().take(12).collect());
    let mut fields = serde_json::json!({
        "container.id": container,
        "proc.name": e.comm,
        "proc.cmdline": cmdline,
        "proc.exepath": e.exe,
        "proc.pid": e.pid,
        "proc.ppid": e.ppid,
        "user.uid": e.uid,
        "evt.type": evt_type(&e.detail),
        "baseliner.workload": alert.workload,
        "baseliner.key": alert.key,
        "baseliner.severity": alert.severity.as_str(),
    });
    match &e.detail {
        EventDetail::Open { path, .. } => fields["fd.name"] = path.as_str().into(),
        EventDetail::Connect { dest } => {
            fields["fd.sip"] = dest.addr.as_str().into();
            fields["fd.sport"] = dest.port.into();
        }
        _ => {}
    }
    let mut tags = vec!["baseliner".to_string()];
    for r in &alert.reasons {
        if !tags.contains(&r.rule) {
            tags.push(r.rule.clone());
        }
    }
    serde_json::json!({
        "uuid": uuid(),
        "output": format!("{time}: {prio} {} (workload={} proc.cmdline={cmdline})",
            alert.summary, alert.workload),
        "priority": prio,
        "rule": rule,
        "time": time,
        "output_fields": fields,
        "source": "syscall",
        "tags": tags,
        "hostname": hostname,
    })
}

#[cfg(test)]
mod tests {
    use profiles::{Event, SCHEMA_VERSION, Workload};
    use scorer::alert::Reason;

    use super::*;

    #[test]
    fn a_miner_alert_is_a_critical_falco_record() {
        let event = Event {
            schema: SCHEMA_VERSION,
            ts_ns: 1_500_000_000_123_456_789,
            workload: Workload {
                id: "/test/app".into(),
                cgroup_id: 7,
                cgroup: "/test/app".into(),
                runtime: Some("containerd".into()),
                container_id: Some("0123456789abcdef0123".into()),
                pod_uid: None,
                unit: None,
                k8s: None,
            },
            pid: 100,
            tid: 100,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "xmrig".into(),
            exe: Some("/tmp/xmrig".into()),
            parent_exe: Some("/bin/bash".into()),
            existing: false,
            blocked: false,
            detail: EventDetail::Exec {
                filename: "/tmp/xmrig".into(),
                argv: vec![
                    "/tmp/xmrig".into(),
                    "-o".into(),
                    "stratum+tcp://p:3333".into(),
                ],
                argv_truncated: false,
                argv_unknown: false,
            },
        };
        let alert = Alert::new(
            &event,
            "exec /tmp/xmrig",
            vec![
                Reason::new("novelty", 0.5, "new program /tmp/xmrig".into(), None),
                Reason::new(
                    "crypto-miner",
                    0.95,
                    "crypto-miner signature: stratum pool".into(),
                    None,
                ),
            ],
        );
        let r = record(&alert, "node-1");
        assert_eq!(r["priority"], "Critical");
        assert_eq!(r["rule"], "crypto-miner");
        assert_eq!(r["time"], "2017-07-14T02:40:00.123456789Z");
        assert_eq!(r["source"], "syscall");
        assert_eq!(r["hostname"], "node-1");
        assert_eq!(
            r["tags"],
            serde_json::json!(["baseliner", "crypto-miner", "novelty"])
        );
        let f = &r["output_fields"];
        assert_eq!(f["container.id"], "0123456789ab");
        assert_eq!(f["proc.name"], "xmrig");
        assert_eq!(f["proc.cmdline"], "xmrig -o stratum+tcp://p:3333");
        assert_eq!(f["proc.exepath"], "/tmp/xmrig");
        assert_eq!(
            (f["proc.pid"].as_u64(), f["proc.ppid"].as_u64()),
            (Some(100), Some(1))
        );
        assert_eq!(f["user.uid"], 0);
        assert_eq!(f["evt.type"], "execve");
        assert_eq!(f["baseliner.workload"], "/test/app");
        assert_eq!(f["baseliner.key"], alert.key.as_str());
        assert_eq!(f["baseliner.severity"], "critical");
        let output = r["output"].as_str().unwrap();
        assert!(
            output.starts_with("2017-07-14T02:40:00.123456789Z: Critical crypto-miner signature"),
            "{output}"
        );
        assert_eq!(r["uuid"].as_str().unwrap().len(), 36);
        assert_eq!(priority(Severity::High), "Error");
        assert_eq!(priority(Severity::Medium), "Warning");
        assert_eq!(priority(Severity::Low), "Notice");
        assert_eq!(priority(Severity::Info), "Informational");
    }
}
