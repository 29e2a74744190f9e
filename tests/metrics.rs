//! What the domain counts, as a scraper sees it on `/metrics`: check decisions by result (each
//! CheckBulk item once), the permission index's revision and staleness, tokens issued by kind.

mod common;

use common::{Backend, TestApp, dual, metrics_text, service_key, sign_in, with_service_key};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{
    CheckBulkItem, CheckBulkRequest, RefreshRequest, RegisterResourceRequest, ResourceRef,
    Visibility,
};

both_backends!(domain_counters_are_scraped);

/// The value of the one sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
        .collect();
    assert_eq!(values.len(), 1, "one sample of {series} in:\n{text}");
    values[0]
}

fn rref(id: &str) -> Option<ResourceRef> {
    Some(ResourceRef {
        resource_type: "doc".into(),
        resource_id: id.into(),
    })
}

const ALLOWED: &str = "sentinel_check_decisions_total{result=\"allowed\"}";
const DENIED: &str = "sentinel_check_decisions_total{result=\"denied\"}";
const ACCESS: &str = "sentinel_tokens_issued_total{kind=\"access\"}";
const REFRESH: &str = "sentinel_tokens_issued_total{kind=\"refresh\"}";
const AUTHZ: &str = "sentinel_tokens_issued_total{kind=\"authz\"}";

async fn domain_counters_are_scraped(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id;
    let mut perms = PermissionServiceClient::new(app.channel.clone());
    for (id, visibility) in [
        ("open", Visibility::Workspace),
        ("closed", Visibility::Private),
    ] {
        perms
            .register_resource(with_service_key(
                RegisterResourceRequest {
                    resource_type: "doc".into(),
                    resource_id: id.into(),
                    workspace_id: workspace.to_string(),
                    owner_id: ann.user.id.to_string(),
                    visibility: visibility as i32,
                    parent: None,
                    upsert: true,
                },
                &key,
            ))
            .await
            .unwrap();
    }
    let before = metrics_text(&app).await;
    assert!(sample(&before, "sentinel_permission_index_revision") >= 2.0);
    let staleness = sample(&before, "sentinel_permission_index_staleness_seconds");
    assert!(staleness.is_finite() && staleness >= 0.0, "{staleness}");

    // One allowed and one denied Check, each counted as what it answered; then a CheckBulk of
    // one allowed and two denied.
    for (id, expected) in [("open", true), ("closed", false)] {
        let ahead = metrics_text(&app).await;
        let allowed = common::allowed(&app, &key, &bob.access_token, "doc", id, "view").await;
        assert_eq!(allowed, expected, "{id}");
        let behind = metrics_text(&app).await;
        let counted = |name: &str| sample(&behind, name) - sample(&ahead, name);
        let want = if expected { (1.0, 0.0) } else { (0.0, 1.0) };
        assert_eq!((counted(ALLOWED), counted(DENIED)), want, "{id}");
    }
    let items = [("open", "view"), ("closed", "view"), ("open", "edit")]
        .into_iter()
        .map(|(id, action)| CheckBulkItem {
            resource: rref(id),
            action: action.into(),
        })
        .collect();
    let results = perms
        .check_bulk(dual(
            CheckBulkRequest {
                items,
                consistency: None,
            },
            &key,
            &bob.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    let answers: Vec<bool> = results.iter().map(|r| r.allowed).collect();
    assert_eq!(answers, [true, false, false]);

    // A refresh issues one access and one refresh token.
    AuthServiceClient::new(app.channel.clone())
        .refresh(RefreshRequest {
            refresh_token: bob.refresh_token.clone(),
            workspace_id: String::new(),
        })
        .await
        .unwrap();

    let after = metrics_text(&app).await;
    assert_eq!(sample(&after, ALLOWED) - sample(&before, ALLOWED), 2.0);
    assert_eq!(sample(&after, DENIED) - sample(&before, DENIED), 3.0);
    assert_eq!(sample(&after, ACCESS) - sample(&before, ACCESS), 1.0);
    assert_eq!(sample(&after, REFRESH) - sample(&before, REFRESH), 1.0);
    assert_eq!(sample(&after, AUTHZ), sample(&before, AUTHZ));
    assert!(
        sample(&before, ACCESS) >= 2.0,
        "both sign-ins were counted:\n{before}"
    );
}
