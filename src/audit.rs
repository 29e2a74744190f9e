//! Audit events: built here, written by the store inside the transaction of the change.

use chrono::Utc;
use uuid::Uuid;

use crate::store::AuditRow;

pub use crate::model::Actor;

/// A successful action on a target.
pub fn event(
    action: &str,
    actor: &Actor,
    target_type: &str,
    target_id: impl ToString,
    details: serde_json::Value,
) -> AuditRow {
    AuditRow {
        id: Uuid::new_v4(),
        occurred_at: crate::model::now(),
        action: action.to_string(),
        actor_user_id: actor.user_id,
        actor_service: actor.service.clone(),
        target_type: Some(target_type.to_string()),
        target_id: Some(target_id.to_string()),
        workspace_id: None,
        client_address: actor.client_address.clone(),
        request_id: actor.request_id.clone(),
        outcome: "success".into(),
        details: details.to_string(),
    }
}

/// Distinct (action, client address) pairs counted at once; beyond it, new addresses share one
/// tally, so a flood from many addresses costs bounded memory and one row.
const MAX_TALLIES: usize = 10_000;
/// Distinct reasons kept per tally; further ones are counted under `other`.
const MAX_REASONS: usize = 16;
/// The address recorded for the shared tally past [`MAX_TALLIES`].
const MANY_ADDRESSES: &str = "(many)";

#[derive(Debug)]
struct Tally {
    count: u64,
    first: chrono::DateTime<Utc>,
    last: chrono::DateTime<Utc>,
    outcome: &'static str,
    target_type: String,
    target_id: String,
    request_id: Option<String>,
    reasons: std::collections::BTreeMap<String, u64>,
}

/// Refused or failed attempts (bad credentials, failed sign-ins), counted per action and client
/// address and written as one audit row per pair and window (a minute), so that a flood of
/// failures is visible in the trail without writing a row per request.
#[derive(Debug, Default)]
pub struct FailureLog {
    tallies: std::sync::Mutex<std::collections::HashMap<(String, String), Tally>>,
}

/// One failed attempt, for [`FailureLog::record`].
pub struct Failure<'a> {
    /// The audit action (`auth.denied`, `login.failed`).
    pub action: &'static str,
    /// `denied` (refused credential) or `failure` (a step that failed).
    pub outcome: &'static str,
    /// What was attempted: target type and id (`rpc` and its path, `provider` and its id).
    pub target: (&'a str, &'a str),
    /// Short machine-readable reason.
    pub reason: &'a str,
}

impl FailureLog {
    /// Counts one failure by `actor`.
    pub fn record(&self, actor: &Actor, failure: &Failure<'_>) {
        let now = crate::model::now();
        let address = actor.client_address.as_deref().unwrap_or("unknown");
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (failure.action.to_string(), address.to_string());
        if !tallies.contains_key(&key) && tallies.len() >= MAX_TALLIES {
            key.1 = MANY_ADDRESSES.to_string();
        }
        let tally = tallies.entry(key).or_insert_with(|| Tally {
            count: 0,
            first: now,
            last: now,
            outcome: failure.outcome,
            target_type: failure.target.0.to_string(),
            target_id: failure.target.1.to_string(),
            request_id: actor.request_id.clone(),
            reasons: std::collections::BTreeMap::new(),
        });
        tally.count += 1;
        tally.last = now;
        let reason =
            if tally.reasons.len() < MAX_REASONS || tally.reasons.contains_key(failure.reason) {
                failure.reason
            } else {
                "other"
            };
        *tally.reasons.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// Takes every tally as an audit row: `details` holds the count, the reasons with their
    /// counts, the first and last time; the target and request id are those of the first.
    pub fn drain(&self) -> Vec<AuditRow> {
        let tallies = std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|p| p.into_inner()));
        tallies
            .into_iter()
            .map(|((action, address), tally)| AuditRow {
                id: Uuid::new_v4(),
                occurred_at: tally.first,
                action,
                actor_user_id: None,
                actor_service: None,
                target_type: Some(tally.target_type),
                target_id: Some(tally.target_id),
                workspace_id: None,
                client_address: Some(address),
                request_id: tally.request_id,
                outcome: tally.outcome.into(),
                details: serde_json::json!({
                    "count": tally.count,
                    "reasons": tally.reasons,
                    "first_at": tally.first.to_rfc3339(),
                    "last_at": tally.last.to_rfc3339(),
                })
                .to_string(),
            })
            .collect()
    }

    /// Writes what was counted since the last flush; rows that cannot be written are logged.
    pub async fn flush(&self, store: &dyn crate::store::Store) {
        for row in self.drain() {
            if let Err(err) = store.insert_audit(&row).await {
                tracing::warn!(error = %err, action = %row.action, "failure tally not audited");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(address: &str) -> Actor {
        Actor {
            client_address: Some(address.into()),
            ..Actor::default()
        }
    }

    fn denied(reason: &str) -> Failure<'_> {
        Failure {
            action: "auth.denied",
            outcome: "denied",
            target: ("rpc", "/sentinel.v1.AuthService/Introspect"),
            reason,
        }
    }

    #[test]
    fn failures_are_one_row_per_action_and_address() {
        let log = FailureLog::default();
        for _ in 0..12 {
            log.record(&from("10.0.0.1"), &denied("missing"));
        }
        log.record(&from("10.0.0.1"), &denied("invalid"));
        log.record(&from("10.0.0.2"), &denied("invalid"));
        let mut rows = log.drain();
        rows.sort_by(|a, b| a.client_address.cmp(&b.client_address));
        assert_eq!(rows.len(), 2);
        let details: serde_json::Value = serde_json::from_str(&rows[0].details).unwrap();
        assert_eq!(details["count"], 13);
        assert_eq!(details["reasons"]["missing"], 12);
        assert_eq!(details["reasons"]["invalid"], 1);
        assert_eq!(rows[0].outcome, "denied");
        assert!(log.drain().is_empty(), "drained");
    }

    #[test]
    fn a_flood_from_many_addresses_stays_bounded() {
        let log = FailureLog::default();
        for i in 0..(MAX_TALLIES + 500) {
            log.record(
                &from(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)),
                &denied("x"),
            );
        }
        for i in 0..100 {
            log.record(&from("10.0.0.1"), &denied(&format!("reason-{i}")));
        }
        let rows = log.drain();
        assert_eq!(rows.len(), MAX_TALLIES + 1);
        let many = rows
            .iter()
            .find(|r| r.client_address.as_deref() == Some(MANY_ADDRESSES))
            .unwrap();
        let details: serde_json::Value = serde_json::from_str(&many.details).unwrap();
        assert_eq!(details["count"], 500);
        let first = rows
            .iter()
            .find(|r| r.client_address.as_deref() == Some("10.0.0.1"))
            .unwrap();
        let details: serde_json::Value = serde_json::from_str(&first.details).unwrap();
        assert!(details["reasons"].as_object().unwrap().len() <= MAX_REASONS + 1);
        assert_eq!(details["count"], 101);
    }
}
