//! The fuzz harness: one embedded server per fuzzing process (SQLite in a temporary directory),
//! its complete router called in-process, and the credentials an attacker could hold. Targets
//! send their input through the same layers a network request crosses (request-id sanitising,
//! rate limits, CORS, the credential layer, the handlers) and fail on any panic and on any answer
//! that is not a clear refusal: gRPC `INTERNAL` or `UNKNOWN`, HTTP 500.

pub mod seeds;

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use sentinel::app::AppState;
use sentinel::config::{Config, ProviderConfig, ProviderKind};
use tower::ServiceExt;

/// Placeholders a seed may carry where an id of this server belongs; the harness swaps them
/// for the real ids before sending (all are 36 bytes, so protobuf lengths stay right).
pub const WORKSPACE_PLACEHOLDER: &str = "00000000-0000-4000-8000-00000000000a";
/// Replaced by the signed-in user's id.
pub const USER_PLACEHOLDER: &str = "00000000-0000-4000-8000-00000000000b";
/// Replaced by the second user's id.
pub const OTHER_USER_PLACEHOLDER: &str = "00000000-0000-4000-8000-00000000000c";

/// The origin of the service app, for the browser tier.
pub const ORIGIN: &str = "https://app.fuzz.test";
/// The client app's redirect URI.
pub const REDIRECT_URI: &str = "https://app.fuzz.test/cb";

/// One server and the credentials to call it with.
pub struct Harness {
    /// Runs every request.
    pub runtime: tokio::runtime::Runtime,
    /// The server's complete router.
    pub router: axum::Router,
    /// The server's state.
    pub state: AppState,
    /// Header sets an attacker may hold, chosen by a byte of the input.
    pub credentials: Vec<Vec<(&'static str, String)>>,
    /// A valid access token (seeds of the token target start from it).
    pub access_token: String,
    /// Ids swapped for the placeholders.
    substitutions: Vec<(Vec<u8>, Vec<u8>)>,
    _dir: tempfile::TempDir,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The process's harness, started on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(start)
}

/// Called by each target before fuzzing: with `SENTINEL_FUZZ_SEEDS=<dir>` set, writes the
/// starting corpus of every target under that directory and exits.
pub fn init() {
    if let Some(root) = std::env::var_os("SENTINEL_FUZZ_SEEDS") {
        seeds::write_all(std::path::Path::new(&root));
        std::process::exit(0);
    }
    harness();
}

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url: Some(format!("sqlite://{}", dir.join("fuzz.db").display())),
        log: "off".into(),
        issuer: Some("http://127.0.0.1:8080".into()),
        ..Config::default()
    };
    // Every input comes from one address: limits high enough never to hide a handler.
    config.rate_limit.per_address = u32::MAX / 2;
    config.rate_limit.per_user = u32::MAX / 2;
    config.rate_limit.per_key = u32::MAX / 2;
    config.rate_limit.sensitive_per_address = u32::MAX / 2;
    config.rate_limit.login_states_per_address = u32::MAX / 2;
    config.rate_limit.trust_forwarded_for = true;
    // GitHub needs no discovery; its endpoints point at a closed port.
    let github = ProviderConfig {
        kind: ProviderKind::Github,
        display_name: String::new(),
        client_id: "fuzz".into(),
        client_secret: "fuzz-secret".into(),
        client_secret_file: None,
        issuer: None,
        tenant: None,
        scopes: Vec::new(),
        audiences: Vec::new(),
        authorize_url: Some("http://127.0.0.1:9/login/oauth/authorize".into()),
        token_url: Some("http://127.0.0.1:9/login/oauth/access_token".into()),
        api_url: Some("http://127.0.0.1:9".into()),
        authz_mode: Some(true),
        trust_email_for_linking: None,
        allowed_domains: Vec::new(),
        allow_signup: None,
    };
    config.providers.insert("github".into(), github);
    config
}

fn start() -> Harness {
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (state, router, issued) = runtime.block_on(async {
        let state = AppState::initialize(config(dir.path()))
            .await
            .expect("server state");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let router = sentinel::server::router(&state, health).expect("router");
        let issue = |email: &str, role: &str, admin: bool| {
            let state = state.clone();
            let request = sentinel::operator::IssueTokenRequest {
                email: email.into(),
                workspace: "fuzz".into(),
                role: Some(role.into()),
                create: true,
                admin,
            };
            async move {
                sentinel::operator::issue_token(&state, &request)
                    .await
                    .expect("token")
            }
        };
        let admin = issue("admin@fuzz.test", "owner", true).await;
        let user = issue("user@fuzz.test", "editor", false).await;
        let other = issue("other@fuzz.test", "viewer", false).await;
        let (_, key) = state
            .apps
            .create("fuzz", "fuzz", &[ORIGIN.to_string()])
            .await
            .expect("service app");
        state
            .client_apps
            .create(
                &sentinel::model::Caller::default(),
                "web",
                &[REDIRECT_URI.to_string()],
                &[],
            )
            .await
            .expect("client app");
        (state, router, (admin, user, other, key))
    });
    let (admin, user, other, key) = issued;
    let bearer = |t: &str| format!("Bearer {t}");
    let credentials = vec![
        vec![],
        vec![("authorization", bearer(&user.access_token))],
        vec![("authorization", bearer(&admin.access_token))],
        vec![("x-service-key", key.clone())],
        vec![
            ("x-service-key", key.clone()),
            ("authorization", bearer(&user.access_token)),
        ],
        vec![
            ("origin", ORIGIN.to_string()),
            ("authorization", bearer(&user.access_token)),
        ],
        vec![("origin", ORIGIN.to_string())],
    ];
    let workspace = user
        .scope
        .as_ref()
        .map(|s| s.workspace.id.to_string())
        .unwrap_or_default();
    let substitutions = vec![
        (WORKSPACE_PLACEHOLDER, workspace),
        (USER_PLACEHOLDER, user.user.id.to_string()),
        (OTHER_USER_PLACEHOLDER, other.user.id.to_string()),
    ]
    .into_iter()
    .map(|(from, to)| (from.as_bytes().to_vec(), to.into_bytes()))
    .collect();
    let harness = Harness {
        runtime,
        router,
        state,
        credentials,
        access_token: user.access_token.clone(),
        substitutions,
        _dir: dir,
    };
    // The harness must reach the handlers, or every run would pass without testing anything.
    let me = harness.grpc(
        "/sentinel.v1.UserService/GetMe",
        &harness.credentials[1],
        &[],
    );
    assert_eq!(me.code, Some(0), "GetMe through the harness: {me:?}");
    let refused = harness.grpc("/sentinel.v1.UserService/GetMe", &[], &[]);
    assert_eq!(refused.code, Some(16), "GetMe without a token: {refused:?}");
    harness
}

/// What a gRPC call answered.
#[derive(Debug)]
pub struct GrpcAnswer {
    /// The HTTP status.
    pub http: u16,
    /// `grpc-status` (None: a stream still open when the harness stopped reading).
    pub code: Option<u32>,
    /// `grpc-message`.
    pub message: String,
}

impl Harness {
    async fn send(&self, request: http::Request<Body>) -> axum::response::Response {
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Swaps the placeholders of `bytes` for this server's ids.
    pub fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (from, to) in &self.substitutions {
            let mut at = 0;
            while let Some(found) = out[at..].windows(from.len()).position(|w| w == from) {
                let start = at + found;
                out[start..start + from.len()].copy_from_slice(to);
                at = start + from.len();
            }
        }
        out
    }

    /// Calls gRPC method `path` with one framed message and the given headers.
    pub fn grpc(&self, path: &str, headers: &[(&str, String)], message: &[u8]) -> GrpcAnswer {
        let mut body = Vec::with_capacity(message.len() + 5);
        body.push(0);
        body.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        body.extend_from_slice(message);
        let mut request = http::Request::builder()
            .method("POST")
            .version(http::Version::HTTP_2)
            .uri(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let Ok(request) = request.body(Body::from(body)) else {
            return GrpcAnswer {
                http: 400,
                code: Some(3),
                message: "unusable header".into(),
            };
        };
        self.runtime.block_on(async {
            let response = self.send(request).await;
            let http = response.status().as_u16();
            let header = |name: &str, map: &http::HeaderMap| {
                map.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if let Some(code) = header("grpc-status", response.headers()) {
                return GrpcAnswer {
                    http,
                    code: code.parse().ok(),
                    message: header("grpc-message", response.headers()).unwrap_or_default(),
                };
            }
            // Streams stay open: read what arrives within a moment.
            let collected =
                tokio::time::timeout(Duration::from_millis(200), response.into_body().collect())
                    .await;
            match collected {
                Ok(Ok(collected)) => {
                    let trailers = collected.trailers().cloned().unwrap_or_default();
                    GrpcAnswer {
                        http,
                        code: header("grpc-status", &trailers).and_then(|c| c.parse().ok()),
                        message: header("grpc-message", &trailers).unwrap_or_default(),
                    }
                }
                _ => GrpcAnswer {
                    http,
                    code: None,
                    message: String::new(),
                },
            }
        })
    }

    /// Sends a plain HTTP request; the status and body.
    pub fn http(&self, request: http::Request<Body>) -> (u16, Vec<u8>) {
        self.runtime.block_on(async {
            let response = self.send(request).await;
            let status = response.status().as_u16();
            let body = tokio::time::timeout(Duration::from_secs(2), response.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|c| c.to_bytes().to_vec())
                .unwrap_or_default();
            (status, body)
        })
    }
}

/// Fails the run on an answer that is not a clear refusal. A message body that does not decode
/// is the transport's INTERNAL (tonic's choice), not the service's.
pub fn assert_clear(method: &str, answer: &GrpcAnswer) {
    let decode_failure = answer
        .message
        .replace("%20", " ")
        .starts_with("failed to decode Protobuf message");
    match answer.code {
        Some(13) if !decode_failure => {
            panic!("{method}: INTERNAL: {answer:?}")
        }
        Some(2) => panic!("{method}: UNKNOWN: {answer:?}"),
        _ => {}
    }
    assert!(answer.http < 500, "{method}: HTTP {}", answer.http);
}
