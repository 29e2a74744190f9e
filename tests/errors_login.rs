//! The documented errors of sign-in, on both backends, against the real OpenID provider of
//! tests/login.rs: StartLogin (unknown provider, unregistered or inactive redirect URIs,
//! malformed PKCE input), ExchangeCode and ListMyWorkspaces (missing input, unknown, used or
//! lapsed codes, wrong verifiers, bad access tokens, deactivated users, foreign workspaces) and
//! ResolveIdpToken (unknown provider, invalid, expired or foreign-audience ID tokens,
//! deactivated users, foreign workspaces).

mod common;

use common::clients::auth;
use std::time::Duration;

use common::contract::refused;
use common::oidc::{OidcProvider, start_on_free_port};
use common::wait::eventually;
use common::{Backend, TestApp, TestDatabase, platform_admin, service_key, sign_in, with_bearer};
use sentinel::config::ProviderKind;
use sentinel::proto::v1::service_app_service_client::ServiceAppServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::{
    CreateClientAppRequest, ExchangeCodeRequest, ExchangeCodeResponse, ListMyWorkspacesRequest,
    ListMyWorkspacesResponse, ListSessionsRequest, LogoutRequest, ResolveIdpTokenRequest,
    ResolveIdpTokenResponse, StartLoginRequest, StartLoginResponse, UpdateClientAppRequest,
    UpdateUserRequest, resolve_idp_token_response::Resolution,
};
use tonic::{Code, Status};

both_backends!(login_errors, resolve_errors);

const APP_REDIRECT: &str = "http://127.0.0.1:9/app/callback";
const RETIRED_REDIRECT: &str = "http://127.0.0.1:9/retired/callback";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abcdef";

/// Sentinel with the provider as "google", the client app "web" (APP_REDIRECT) and the
/// deactivated client app "retired" (RETIRED_REDIRECT); returns a platform admin's token too.
async fn start(
    db: &TestDatabase,
    tweak: impl FnOnce(&mut sentinel::Config),
) -> (TestApp, OidcProvider, String) {
    let idp = OidcProvider::start().await;
    let mut config = db.config();
    let google = common::oidc::provider_config(ProviderKind::Google, Some(idp.issuer.clone()));
    config.providers.insert("google".into(), google);
    tweak(&mut config);
    let app = start_on_free_port(config).await;
    let client = |id: &str, secret: &str, uri: String| {
        serde_json::json!({
            "client_id": id, "client_secret": secret, "redirect_uris": [uri],
            "grant_types": ["authorization_code"], "response_types": ["code"],
        })
    };
    let account = |email: &str| serde_json::json!({ "email": email, "email_verified": true });
    idp.setup(
        serde_json::json!([
            client(
                "sentinel",
                "s3cret",
                format!("{}/oauth/google/callback", app.base_url)
            ),
            client("webapp", "w3b", "http://127.0.0.1:9/cb".into()),
            client("other", "0ther", "http://127.0.0.1:9/cb".into()),
        ]),
        serde_json::json!({
            "ann": account("ann@example.com"),
            "dora": account("dora@example.com"),
            "carl": { "email": "carl@example.com", "email_verified": false },
        }),
        600,
    )
    .await;
    let admin = platform_admin(&app).await;
    let mut apps = ServiceAppServiceClient::new(app.channel.clone());
    for (name, uri) in [("web", APP_REDIRECT), ("retired", RETIRED_REDIRECT)] {
        let created = apps
            .create_client_app(with_bearer(
                CreateClientAppRequest {
                    name: name.into(),
                    redirect_uris: vec![uri.into()],
                    services: vec![],
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .app
            .unwrap();
        if name == "retired" {
            let update = UpdateClientAppRequest {
                id: created.id,
                is_active: Some(false),
                ..Default::default()
            };
            apps.update_client_app(with_bearer(update, &admin))
                .await
                .unwrap();
        }
    }
    (app, idp, admin)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn urlencode(text: &str) -> String {
    let url = reqwest::Url::parse_with_params("http://x/", &[("v", text)]).unwrap();
    url.query().unwrap().trim_start_matches("v=").to_string()
}

fn query(url: &str, key: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// Follows the redirects from `url` until one leaves for `target`; returns that URL.
async fn follow(browser: &reqwest::Client, mut url: String, target: &str) -> String {
    for _ in 0..12 {
        if url.starts_with(target) {
            return url;
        }
        let response = browser.get(&url).send().await.unwrap();
        assert!(response.status().is_redirection(), "{url}: {response:?}");
        let location = response.headers()["location"].to_str().unwrap();
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(location)
            .unwrap()
            .to_string();
    }
    panic!("too many redirects from {url}");
}

/// A one-time login code for `account`, through HTTP /oauth/google/login and the callback.
async fn code_for(app: &TestApp, account: &str) -> String {
    let url = format!(
        "{}/oauth/google/login?redirect_uri={}&code_challenge={}&code_challenge_method=S256&\
         login_hint={account}",
        app.base_url,
        urlencode(APP_REDIRECT),
        sentinel::login::s256(VERIFIER)
    );
    query(&follow(&browser(), url, APP_REDIRECT).await, "code")
}

/// An ID token the provider issued for `account` to its client `client` (not to Sentinel).
async fn id_token_for(issuer: &str, client: &str, secret: &str, account: &str) -> String {
    let url = format!(
        "{issuer}/auth?response_type=code&client_id={client}&redirect_uri={}&\
         scope=openid%20email&nonce=n&state=s&code_challenge={}&code_challenge_method=S256&\
         login_hint={account}",
        urlencode("http://127.0.0.1:9/cb"),
        sentinel::login::s256(VERIFIER)
    );
    let code = query(
        &follow(&browser(), url, "http://127.0.0.1:9/cb").await,
        "code",
    );
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["id_token"].as_str().expect("an id_token").into()
}

async fn start_login(
    app: &TestApp,
    provider: &str,
    redirect_uri: &str,
    challenge: &str,
    method: &str,
) -> Result<StartLoginResponse, Status> {
    let request = StartLoginRequest {
        provider: provider.into(),
        redirect_uri: redirect_uri.into(),
        code_challenge: challenge.into(),
        code_challenge_method: method.into(),
        ..Default::default()
    };
    auth(app).start_login(request).await.map(|r| r.into_inner())
}

async fn exchange(
    app: &TestApp,
    code: &str,
    verifier: &str,
    workspace_id: &str,
) -> Result<ExchangeCodeResponse, Status> {
    let request = ExchangeCodeRequest {
        code: code.into(),
        code_verifier: verifier.into(),
        workspace_id: workspace_id.into(),
    };
    auth(app)
        .exchange_code(request)
        .await
        .map(|r| r.into_inner())
}

/// ListMyWorkspaces with a login code, or (when `token` is set) with an access token.
async fn my_workspaces(
    app: &TestApp,
    code: &str,
    verifier: &str,
    token: Option<&str>,
) -> Result<ListMyWorkspacesResponse, Status> {
    let message = ListMyWorkspacesRequest {
        code: code.into(),
        code_verifier: verifier.into(),
        ..Default::default()
    };
    let request = match token {
        Some(token) => with_bearer(message, token),
        None => tonic::Request::new(message),
    };
    auth(app)
        .list_my_workspaces(request)
        .await
        .map(|r| r.into_inner())
}

/// Deactivates `user_id` through UpdateUser, as a platform admin.
async fn deactivate(app: &TestApp, admin: &str, user_id: String) {
    let request = UpdateUserRequest {
        id: user_id,
        is_active: Some(false),
        ..Default::default()
    };
    UserServiceClient::new(app.channel.clone())
        .update_user(with_bearer(request, admin))
        .await
        .unwrap();
}

async fn login_errors(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let (app, _idp, admin) = start(&db, |_| {}).await;
    let ann = sign_in(&app, "ann@example.com", "ann-home", "owner").await;
    let ann_home = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let bob = sign_in(&app, "bob@example.com", "bobs", "owner").await;
    let bobs = bob.scope.as_ref().unwrap().workspace.id.to_string();

    // StartLogin: the same request with the provider, redirect URI or PKCE input spoiled.
    let challenge = sentinel::login::s256(VERIFIER);
    let started = start_login(&app, "google", APP_REDIRECT, &challenge, "S256").await;
    assert!(started.unwrap().authorization_url.contains("/auth?"));
    // An empty method means S256.
    let defaulted = start_login(&app, "google", APP_REDIRECT, &challenge, "").await;
    assert!(
        defaulted
            .unwrap()
            .authorization_url
            .contains("code_challenge_method=S256")
    );
    let missing = start_login(&app, "nope", APP_REDIRECT, &challenge, "S256").await;
    refused("AuthService/StartLogin", Code::NotFound, missing);
    let near_misses = [
        format!("{APP_REDIRECT}/"),
        format!("{APP_REDIRECT}?next=1"),
        APP_REDIRECT.replace("127.0.0.1", "localhost"),
        "http://127.0.0.1:9/elsewhere".into(),
        RETIRED_REDIRECT.into(),
        String::new(),
    ];
    for uri in &near_misses {
        let result = start_login(&app, "google", uri, &challenge, "S256").await;
        let status = refused("AuthService/StartLogin", Code::InvalidArgument, result);
        assert!(
            status.message().contains("redirect_uri"),
            "{uri}: {status:?}"
        );
    }
    let bad_challenges = [
        String::new(),
        challenge[..42].to_string(),
        format!("{}+", &challenge[..43]),
        "a".repeat(129),
    ];
    for bad in &bad_challenges {
        let result = start_login(&app, "google", APP_REDIRECT, bad, "S256").await;
        let status = refused("AuthService/StartLogin", Code::InvalidArgument, result);
        assert!(
            status.message().contains("code_challenge"),
            "{bad}: {status:?}"
        );
    }
    for method in ["plain", "S512", "s256"] {
        let result = start_login(&app, "google", APP_REDIRECT, &challenge, method).await;
        let status = refused("AuthService/StartLogin", Code::InvalidArgument, result);
        assert!(
            status.message().contains("code_challenge_method"),
            "{method}: {status:?}"
        );
    }

    // ListMyWorkspaces: no credential, bad or revoked access tokens, a code with a missing or
    // wrong verifier, an unknown code; the code stays usable.
    let code = code_for(&app, "ann").await;
    let status = refused(
        "AuthService/ListMyWorkspaces",
        Code::InvalidArgument,
        my_workspaces(&app, "", "", None).await,
    );
    assert!(status.message().starts_with("code"), "{status:?}");
    let garbage = my_workspaces(&app, "", "", Some("not-a-jwt")).await;
    refused(
        "AuthService/ListMyWorkspaces",
        Code::Unauthenticated,
        garbage,
    );
    let tampered = format!("{}x", bob.access_token);
    refused(
        "AuthService/ListMyWorkspaces",
        Code::Unauthenticated,
        my_workspaces(&app, "", "", Some(&tampered)).await,
    );
    let logout = with_bearer(LogoutRequest::default(), &bob.access_token);
    auth(&app).logout(logout).await.unwrap();
    let revoked = my_workspaces(&app, "", "", Some(&bob.access_token)).await;
    refused(
        "AuthService/ListMyWorkspaces",
        Code::Unauthenticated,
        revoked,
    );
    let wrong = format!("{VERIFIER}x");
    let attempts = [
        (code.as_str(), ""),
        (code.as_str(), wrong.as_str()),
        ("no-such-code", VERIFIER),
    ];
    for (code, verifier) in attempts {
        let result = my_workspaces(&app, code, verifier, None).await;
        refused(
            "AuthService/ListMyWorkspaces",
            Code::Unauthenticated,
            result,
        );
    }
    let listed = my_workspaces(&app, &code, VERIFIER, None).await.unwrap();
    let ids: Vec<String> = listed
        .workspaces
        .iter()
        .map(|w| w.workspace.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&ann_home),
        "the code still names Ann"
    );

    // ExchangeCode: missing input, unknown code, wrong verifier, a workspace Ann is not in; none
    // of these burns the code.
    let status = refused(
        "AuthService/ExchangeCode",
        Code::InvalidArgument,
        exchange(&app, "", VERIFIER, "").await,
    );
    assert!(status.message().starts_with("code"), "{status:?}");
    let status = refused(
        "AuthService/ExchangeCode",
        Code::InvalidArgument,
        exchange(&app, &code, "", "").await,
    );
    assert!(status.message().contains("code_verifier"), "{status:?}");
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, "no-such-code", VERIFIER, "").await,
    );
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, &code, &wrong, "").await,
    );
    let foreign = exchange(&app, &code, VERIFIER, &bobs).await;
    refused("AuthService/ExchangeCode", Code::PermissionDenied, foreign);
    let unknown_workspace = uuid::Uuid::new_v4().to_string();
    let result = exchange(&app, &code, VERIFIER, &unknown_workspace).await;
    refused("AuthService/ExchangeCode", Code::PermissionDenied, result);
    let exchanged = exchange(&app, &code, VERIFIER, &ann_home).await.unwrap();
    let scope = exchanged.tokens.unwrap().workspace.unwrap();
    assert_eq!(scope.workspace.unwrap().id, ann_home);
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, &code, VERIFIER, "").await,
    );

    // A user deactivated between the callback and the exchange gets no session.
    let dora_code = code_for(&app, "dora").await;
    let dora = my_workspaces(&app, &dora_code, VERIFIER, None).await;
    assert!(
        dora.unwrap().workspaces.is_empty(),
        "Dora signed up just now"
    );
    let dora_id = user_id_of(&app, &admin, "dora@example.com").await;
    deactivate(&app, &admin, dora_id.clone()).await;
    refused(
        "AuthService/ExchangeCode",
        Code::PermissionDenied,
        exchange(&app, &dora_code, VERIFIER, "").await,
    );
    let sessions = ListSessionsRequest {
        user_id: dora_id,
        include_inactive: true,
        ..Default::default()
    };
    let sessions = auth(&app)
        .list_sessions(with_bearer(sessions, &admin))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(sessions.is_empty(), "{sessions:?}");
    app.stop().await;
}

/// The id of the user with `email`, looked up by a platform admin.
async fn user_id_of(app: &TestApp, admin: &str, email: &str) -> String {
    let request = sentinel::proto::v1::ListUsersRequest {
        query: email.into(),
        ..Default::default()
    };
    let users = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(request, admin))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users.len(), 1, "{users:?}");
    users[0].id.clone()
}

async fn resolve_errors(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let (app, idp, admin) = start(&db, |c| c.login_code_ttl = Duration::from_secs(10)).await;
    let ann = sign_in(&app, "ann@example.com", "ann-home", "owner").await;
    let ann_home = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let bob = sign_in(&app, "bob@example.com", "bobs", "owner").await;
    let bobs = bob.scope.as_ref().unwrap().workspace.id.to_string();
    let dora = sign_in(&app, "dora@example.com", "dora-home", "owner").await;
    let dora_home = dora.scope.as_ref().unwrap().workspace.id.to_string();
    // A code left unredeemed, to see it lapse after login_code_ttl.
    let lapsing = code_for(&app, "ann").await;
    assert!(my_workspaces(&app, &lapsing, VERIFIER, None).await.is_ok());
    let key = service_key(&app, "docs").await;
    let resolve = |provider: &str, token: &str, workspace: &str| {
        let request = common::with_service_key(
            ResolveIdpTokenRequest {
                provider: provider.into(),
                idp_token: token.into(),
                workspace_id: workspace.into(),
            },
            &key,
        );
        let mut client = auth(&app);
        async move {
            client
                .resolve_idp_token(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let workspaces = |resolved: ResolveIdpTokenResponse| match resolved.resolution {
        Some(Resolution::Identity(identity)) => identity
            .workspaces
            .into_iter()
            .map(|w| w.workspace.unwrap().id)
            .collect::<Vec<_>>(),
        other => panic!("an identity: {other:?}"),
    };
    let token = id_token_for(&idp.issuer, "webapp", "w3b", "ann").await;
    assert_eq!(
        workspaces(resolve("google", &token, "").await.unwrap()),
        std::slice::from_ref(&ann_home)
    );
    refused(
        "AuthService/ResolveIdpToken",
        Code::NotFound,
        resolve("nope", &token, "").await,
    );
    // An ID token whose email the provider did not verify proves no usable identity.
    let unverified = id_token_for(&idp.issuer, "webapp", "w3b", "carl").await;
    let status = refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("google", &unverified, "").await,
    );
    assert!(status.message().contains("verified email"), "{status:?}");
    // Not an ID token; a signature that does not verify; another client's audience.
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("google", "not.a.jwt", "").await,
    );
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("google", &forged, "").await,
    );
    let foreign = id_token_for(&idp.issuer, "other", "0ther", "ann").await;
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("google", &foreign, "").await,
    );
    // Ann asks for Bob's workspace, and for one that does not exist.
    let result = resolve("google", &token, &bobs).await;
    refused(
        "AuthService/ResolveIdpToken",
        Code::PermissionDenied,
        result,
    );
    let unknown_workspace = uuid::Uuid::new_v4().to_string();
    let result = resolve("google", &token, &unknown_workspace).await;
    refused(
        "AuthService/ResolveIdpToken",
        Code::PermissionDenied,
        result,
    );
    assert_eq!(
        workspaces(resolve("google", &token, "").await.unwrap()),
        [ann_home]
    );

    // Dora, once deactivated, resolves to nothing, even in her own workspace.
    let dora_token = id_token_for(&idp.issuer, "webapp", "w3b", "dora").await;
    let minted = resolve("google", &dora_token, &dora_home).await.unwrap();
    assert!(matches!(minted.resolution, Some(Resolution::AuthzToken(_))));
    deactivate(&app, &admin, dora.user.id.to_string()).await;
    for workspace in ["", dora_home.as_str()] {
        let result = resolve("google", &dora_token, workspace).await;
        refused(
            "AuthService/ResolveIdpToken",
            Code::PermissionDenied,
            result,
        );
    }

    // The provider's ID tokens live 10 minutes; past that (and the leeway) they are refused.
    app.clock.advance(Duration::from_secs(10 * 60 + 3));
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("google", &token, "").await,
    );

    // The code unredeemed since the start lapses after login_code_ttl (10 s, in real time).
    eventually("the login code lapses", || async {
        my_workspaces(&app, &lapsing, VERIFIER, None).await.is_err()
    })
    .await;
    let result = my_workspaces(&app, &lapsing, VERIFIER, None).await;
    refused(
        "AuthService/ListMyWorkspaces",
        Code::Unauthenticated,
        result,
    );
    let result = exchange(&app, &lapsing, VERIFIER, "").await;
    refused("AuthService/ExchangeCode", Code::Unauthenticated, result);
    app.stop().await;
}
