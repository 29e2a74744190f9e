//! The client's address as the audit trail records it: the connection's peer, or behind a
//! trusted proxy (`rate_limit.trust_forwarded_for`) the last `X-Forwarded-For` hop, for every
//! RPC alike (Refresh included).

mod common;

use std::time::Duration;

use common::{Backend, TestApp, TestDatabase, sign_in};
use sentinel::proto::v1::RefreshRequest;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::store::AuditFilter;
use tonic::Code;

both_backends!(a_detected_reuse_names_the_forwarded_client);

fn forwarded(token: &str) -> tonic::Request<RefreshRequest> {
    let mut request = tonic::Request::new(RefreshRequest {
        refresh_token: token.into(),
        workspace_id: String::new(),
    });
    request.metadata_mut().insert(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.7".parse().unwrap(),
    );
    request
}

async fn a_detected_reuse_names_the_forwarded_client(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.rate_limit.trust_forwarded_for = true;
    let app = TestApp::start(config).await;
    let issued = sign_in(&app, "victim@example.com", "acme", "viewer").await;
    let mut auth = AuthServiceClient::new(app.channel.clone());
    auth.refresh(forwarded(&issued.refresh_token))
        .await
        .unwrap();
    // Past the reuse grace (5 s by default) on the server's clock.
    app.clock.advance(Duration::from_secs(6));
    let err = auth
        .refresh(forwarded(&issued.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let filter = AuditFilter {
        action: Some("token.reuse_detected".into()),
        ..AuditFilter::default()
    };
    let events = app
        .app
        .state()
        .store
        .list_audit(&filter, None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].client_address.as_deref(),
        Some("203.0.113.7"),
        "the proxy's last hop, not the proxy"
    );
    app.stop().await;
}
