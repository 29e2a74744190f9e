//! What a request's log lines carry: the request span with its id and, once the credential
//! layer verified them, the user, the token's workspace and the calling service; never the
//! credentials themselves.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Backend, TestApp, dual, service_key, sign_in};
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{CheckRequest, ResourceRef};

both_backends!(request_logs_name_the_caller);

/// Every JSON log line of this test binary.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Lines::default();
            let writer = lines.clone();
            tracing_subscriber::fmt()
                .json()
                .with_env_filter("sentinel=info,tower_http=debug")
                .with_writer(move || writer.clone())
                .init();
            lines
        })
        .clone()
}

async fn request_logs_name_the_caller(backend: Backend) {
    let lines = captured();
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let mut request = dual(
        CheckRequest {
            resource: Some(ResourceRef {
                resource_type: "doc".into(),
                resource_id: "a".into(),
            }),
            action: "view".into(),
            consistency: None,
        },
        &key,
        &ann.access_token,
    );
    let request_id = uuid::Uuid::new_v4().to_string();
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    PermissionServiceClient::new(app.channel.clone())
        .check(request)
        .await
        .unwrap();

    // The response line is written as the call finishes: wait for it.
    let finished = || {
        String::from_utf8(lines.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .find(|l| l.contains(&request_id) && l.contains("finished processing request"))
            .map(String::from)
    };
    common::wait::eventually("the request's log line", || async { finished().is_some() }).await;
    let line = finished().expect("the line stays");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    let span = &entry["span"];
    assert_eq!(span["request_id"], request_id.as_str(), "{line}");
    assert_eq!(span["path"], "/sentinel.v1.PermissionService/Check");
    assert_eq!(span["user"], ann.user.id.to_string().as_str(), "{line}");
    assert_eq!(span["workspace"], workspace.as_str(), "{line}");
    assert_eq!(span["service"], "docs", "{line}");
    let all = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(!all.contains(&ann.access_token), "no token in the logs");
    assert!(!all.contains(&key), "no service key in the logs");
}
