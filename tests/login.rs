//! Sign-in end to end, on both backends, against a REAL OpenID provider process
//! (`oidc-provider`, configured as the "google" and "entra" presets) and a local stand-in of
//! GitHub's OAuth and API endpoints: login → callback → ExchangeCode → tokens → GetMe, PKCE,
//! single-use codes, state and nonce checks, verified emails, redirect URIs, account linking,
//! invitations, deactivated users, admin bootstrap, and authz mode (ResolveIdpToken).

mod common;

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use common::contract::refused;
use common::oidc::{OidcProvider, start_on_free_port};
use common::{
    Backend, TestApp, TestDatabase, audit_count, audit_failure_total, service_key, sign_in,
    with_bearer,
};
use sentinel::config::{ProviderConfig, ProviderKind};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    AcceptInvitationRequest, AddMemberRequest, ExchangeCodeRequest, GetMeRequest,
    ListMyInvitationsRequest, ListMyWorkspacesRequest, ListProvidersRequest,
    ResolveIdpTokenRequest, StartLoginRequest, WorkspaceRole, add_member_request::Invitee,
    resolve_idp_token_response::Resolution,
};
use tonic::Code;

both_backends!(oidc_login_end_to_end, github_login_and_authz_mode);

const APP_REDIRECT: &str = "http://127.0.0.1:9/app/callback";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abcdef";

fn provider(kind: ProviderKind, issuer: Option<String>) -> ProviderConfig {
    common::oidc::provider_config(kind, issuer)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Follows redirects from `url` until one leaves for the client app (returns that URL) or a
/// page answers (returns its status and body).
async fn drive(browser: &reqwest::Client, url: &str) -> Result<String, (StatusCode, String)> {
    let mut url = url.to_string();
    for _ in 0..12 {
        if url.starts_with(APP_REDIRECT) {
            return Ok(url);
        }
        let response = browser.get(&url).send().await.unwrap();
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_string();
            url = if location.starts_with('/') {
                let base = reqwest::Url::parse(&url).unwrap();
                base.join(&location).unwrap().to_string()
            } else {
                location
            };
            continue;
        }
        return Err((status, response.text().await.unwrap_or_default()));
    }
    panic!("too many redirects from {url}");
}

fn login_url(app: &TestApp, provider: &str, hint: &str, redirect: &str) -> String {
    let challenge = sentinel::login::s256(VERIFIER);
    format!(
        "{}/oauth/{provider}/login?redirect_uri={}&code_challenge={challenge}&\
         code_challenge_method=S256&state=client-state&login_hint={hint}",
        app.base_url,
        urlencode(redirect)
    )
}

fn urlencode(text: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("v", text)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("v=")
        .to_string()
}

fn query(url: &str, key: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

async fn exchange(
    app: &TestApp,
    code: &str,
    verifier: &str,
) -> Result<sentinel::proto::v1::ExchangeCodeResponse, tonic::Status> {
    AuthServiceClient::new(app.channel.clone())
        .exchange_code(ExchangeCodeRequest {
            code: code.into(),
            code_verifier: verifier.into(),
            workspace_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

/// An ID token the provider issued to the client `client` (a direct code flow with PKCE).
async fn id_token_for(
    issuer: &str,
    client: &str,
    secret: &str,
    account: &str,
    nonce: &str,
) -> String {
    let browser = browser();
    let challenge = sentinel::login::s256(VERIFIER);
    let mut url = format!(
        "{issuer}/auth?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20email&\
         nonce={nonce}&state=s&code_challenge={challenge}&code_challenge_method=S256&login_hint={account}",
        urlencode("http://127.0.0.1:9/cb")
    );
    let code = loop {
        let response = browser.get(&url).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "{:?}",
            response.text().await
        );
        let location = response.headers()["location"].to_str().unwrap().to_string();
        if location.starts_with("http://127.0.0.1:9/cb") {
            break query(&location, "code");
        }
        url = if location.starts_with('/') {
            format!("{issuer}{location}")
        } else {
            location
        };
    };
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
    tokens["id_token"]
        .as_str()
        .expect("an id_token")
        .to_string()
}

async fn oidc_login_end_to_end(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let idp = OidcProvider::start().await;
    let mut config = db.config();
    config.providers.insert(
        "google".into(),
        provider(ProviderKind::Google, Some(idp.issuer.clone())),
    );
    config.providers.insert(
        "entra".into(),
        provider(ProviderKind::Entra, Some(idp.issuer.clone())),
    );
    // An issuer trusted with nothing: no linking by email, no sign-up, one domain.
    let mut corp = provider(ProviderKind::Oidc, Some(idp.issuer.clone()));
    corp.allow_signup = Some(false);
    corp.allowed_domains = vec!["example.com".into()];
    config.providers.insert("corp".into(), corp);
    config.admin_emails = vec!["Ann@Example.com".into(), "late@example.com".into()];
    let app = start_on_free_port(config).await;
    let callback = |p: &str| format!("{}/oauth/{p}/callback", app.base_url);
    let client = |id: &str, secret: &str, uris: Vec<String>| {
        serde_json::json!({
            "client_id": id, "client_secret": secret, "redirect_uris": uris,
            "grant_types": ["authorization_code"], "response_types": ["code"],
        })
    };
    idp.setup(
        serde_json::json!([
            client(
                "sentinel",
                "s3cret",
                vec![callback("google"), callback("entra"), callback("corp")]
            ),
            client("webapp", "w3b", vec!["http://127.0.0.1:9/cb".into()]),
            client("other", "0ther", vec!["http://127.0.0.1:9/cb".into()]),
        ]),
        serde_json::json!({
            "ann": {
                "email": "ann@example.com", "email_verified": true, "xms_edov": true, "name": "Ann"
            },
            "erin": { "email": "erin@example.com", "email_verified": true, "name": "Erin" },
            "late": { "email": "late@example.com", "email_verified": true, "name": "Late" },
            "newbie": { "email": "newbie@example.com", "email_verified": true, "name": "New" },
            "mal": { "email": "mal@evil.example", "email_verified": true, "name": "Mal" },
            "carl": { "email": "carl@example.com", "email_verified": false, "name": "Carl" },
            "dora": { "email": "dora@example.com", "email_verified": true, "name": "Dora" },
        }),
        600,
    )
    .await;
    let state = app.app.state().clone();
    state
        .client_apps
        .create(
            &sentinel::model::Caller::default(),
            "web",
            &[APP_REDIRECT.to_string()],
            &[],
        )
        .await
        .unwrap();
    let auth = || AuthServiceClient::new(app.channel.clone());

    let listed = auth()
        .list_providers(ListProvidersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .providers;
    let names: Vec<&str> = listed.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(names, ["corp", "Microsoft", "Google"]);

    // Ann is invited to acme before she ever signs in.
    let owner = sign_in(&app, "owner@example.com", "acme", "owner").await;
    let acme = owner.scope.as_ref().unwrap().workspace.id.to_string();
    WorkspaceServiceClient::new(app.channel.clone())
        .add_member(with_bearer(
            AddMemberRequest {
                workspace_id: acme.clone(),
                invitee: Some(Invitee::Email("ann@example.com".into())),
                role: WorkspaceRole::Editor as i32,
            },
            &owner.access_token,
        ))
        .await
        .unwrap();

    // login → provider → callback → the app's redirect with a one-time code.
    let landed = drive(&browser(), &login_url(&app, "google", "ann", APP_REDIRECT))
        .await
        .expect("the flow reaches the app");
    assert_eq!(query(&landed, "state"), "client-state");
    let code = query(&landed, "code");
    // The code lets the app show the workspaces first; it stays usable.
    let choices = auth()
        .list_my_workspaces(ListMyWorkspacesRequest {
            code: code.clone(),
            code_verifier: VERIFIER.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .workspaces;
    assert!(
        choices.is_empty(),
        "an invitation is not a membership until it is accepted"
    );
    // A wrong verifier does not burn the code.
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, &code, &format!("{}x", VERIFIER)).await,
    );
    let exchanged = exchange(&app, &code, VERIFIER).await.unwrap();
    let tokens = exchanged.tokens.unwrap();
    assert_eq!(exchanged.user.as_ref().unwrap().email, "ann@example.com");
    // Replayed code: refused.
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, &code, VERIFIER).await,
    );
    let me = UserServiceClient::new(app.channel.clone())
        .get_me(with_bearer(GetMeRequest {}, &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    let me_user = me.user.unwrap();
    assert_eq!(me_user.email, "ann@example.com");
    assert!(me_user.is_admin, "admin bootstrapped from admin_emails");
    // The identity she signed in with is linked and shown.
    assert_eq!(me.identities.len(), 1, "{:?}", me.identities);
    let identity = &me.identities[0];
    assert_eq!(identity.provider, "google");
    assert!(!identity.subject.is_empty());
    assert_eq!(identity.email, "ann@example.com");
    assert!(identity.linked_at.is_some() && identity.last_used_at.is_some());
    let payload = tokens.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert!(
        claims["wid"].is_null(),
        "signed in to no workspace: {claims}"
    );
    // She sees the invitation (Google vouched for her email) and accepts it.
    let invitations = WorkspaceServiceClient::new(app.channel.clone())
        .list_my_invitations(with_bearer(
            ListMyInvitationsRequest::default(),
            &tokens.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0].workspace_id, acme);
    WorkspaceServiceClient::new(app.channel.clone())
        .accept_invitation(with_bearer(
            AcceptInvitationRequest {
                invitation_id: invitations[0].id.clone(),
            },
            &tokens.access_token,
        ))
        .await
        .unwrap();

    // The same verified email through the second provider: one user, two identities, now in
    // acme by default.
    let landed = drive(&browser(), &login_url(&app, "entra", "ann", APP_REDIRECT))
        .await
        .unwrap();
    let again = exchange(&app, &query(&landed, "code"), VERIFIER)
        .await
        .unwrap();
    assert_eq!(again.user.unwrap().id, me_user.id);
    let payload = again.tokens.unwrap().access_token;
    let payload = payload.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["wid"], acme, "her only workspace by default");
    assert_eq!(claims["wrole"], "editor");
    assert_eq!(audit_count(&db, "identity.linked").await, 2);
    let me = UserServiceClient::new(app.channel.clone())
        .get_me(with_bearer(GetMeRequest {}, &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    let mut providers: Vec<&str> = me.identities.iter().map(|i| i.provider.as_str()).collect();
    providers.sort_unstable();
    assert_eq!(providers, ["entra", "google"], "{:?}", me.identities);

    // Account rules per provider. Erin has an account; Entra without xms_edov does not prove she
    // owns the email, so it may not take the account over.
    let erin = sign_in(&app, "erin@example.com", "erin-home", "owner").await;
    let (status, body) = drive(&browser(), &login_url(&app, "entra", "erin", APP_REDIRECT))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("already has an account"), "{body}");
    // Nor may a generic issuer, trusted with nothing, even for a listed domain.
    let (status, _) = drive(&browser(), &login_url(&app, "corp", "erin", APP_REDIRECT))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::CONFLICT);
    // It may not sign anyone up, and refuses other domains outright.
    for account in ["newbie", "mal"] {
        let (status, body) = drive(&browser(), &login_url(&app, "corp", account, APP_REDIRECT))
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN, "{account}: {body}");
    }
    let erin_now = state.store.user_by_id(erin.user.id).await.unwrap().unwrap();
    assert_eq!(erin_now.email, "erin@example.com", "untouched");
    assert!(
        state
            .store
            .user_by_email("newbie@example.com")
            .await
            .unwrap()
            .is_none(),
        "no account created"
    );
    // admin_emails made Ann the first admin; with an admin in place it promotes nobody.
    let landed = drive(&browser(), &login_url(&app, "google", "late", APP_REDIRECT))
        .await
        .unwrap();
    let late = exchange(&app, &query(&landed, "code"), VERIFIER)
        .await
        .unwrap()
        .user
        .unwrap();
    assert!(!late.is_admin, "admin_emails only bootstraps");

    // Refusals, each shown as a page and counted in the audit trail (one row per address and
    // minute, written by the minute or at shutdown; flushed here to read them now).
    state.failures.flush(state.store.as_ref()).await;
    let failures_before = audit_failure_total(&db, "login.failed").await;
    let rows_before = audit_count(&db, "login.failed").await;
    let (status, body) = drive(&browser(), &login_url(&app, "google", "carl", APP_REDIRECT))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("not verified"), "{body}");
    let (status, _) = drive(
        &browser(),
        &login_url(&app, "google", "ann", "http://127.0.0.1:9/elsewhere"),
    )
    .await
    .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST, "unregistered redirect_uri");
    let (status, _) = drive(&browser(), &login_url(&app, "nope", "ann", APP_REDIRECT))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Tampered state: the callback knows nothing of it.
    let tampered = browser()
        .get(format!(
            "{}/oauth/google/callback?code=abc&state=forged",
            app.base_url
        ))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), StatusCode::PRECONDITION_FAILED);
    let body: serde_json::Value = tampered.json().await.unwrap();
    assert_eq!(body["code"], "session_expired");
    // Deactivated users are refused at the callback.
    let dora = sign_in(&app, "dora@example.com", "dora-home", "owner").await;
    state
        .store
        .set_user_flags(dora.user.id, false, false)
        .await
        .unwrap();
    let (status, _) = drive(&browser(), &login_url(&app, "google", "dora", APP_REDIRECT))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    state.failures.flush(state.store.as_ref()).await;
    assert_eq!(
        audit_failure_total(&db, "login.failed").await,
        failures_before + 5
    );
    assert_eq!(audit_count(&db, "login.failed").await, rows_before + 1);
    // StartLogin over gRPC gives the same kind of authorization URL, and checks its input.
    let started = auth()
        .start_login(StartLoginRequest {
            provider: "google".into(),
            redirect_uri: APP_REDIRECT.into(),
            code_challenge: sentinel::login::s256(VERIFIER),
            code_challenge_method: "S256".into(),
            state: String::new(),
            login_hint: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        started
            .authorization_url
            .starts_with(&format!("{}/auth?", idp.issuer))
    );
    assert!(!query(&started.authorization_url, "nonce").is_empty());
    let bad = refused(
        "AuthService/StartLogin",
        Code::InvalidArgument,
        auth()
            .start_login(StartLoginRequest {
                provider: "google".into(),
                redirect_uri: APP_REDIRECT.into(),
                code_challenge: sentinel::login::s256(VERIFIER),
                code_challenge_method: "plain".into(),
                state: String::new(),
                login_hint: String::new(),
            })
            .await,
    );
    assert!(bad.message().contains("code_challenge_method"));

    // Nonce: an ID token minted by the provider for another login does not pass.
    let http = reqwest::Client::new();
    let issuer = sentinel::login::oidc::Issuer::new(&idp.issuer);
    let minted = id_token_for(&idp.issuer, "webapp", "w3b", "ann", "nonce-one").await;
    let audiences = vec!["webapp".to_string()];
    let now = chrono::Utc::now();
    let validate = |nonce: &'static str, at: chrono::DateTime<chrono::Utc>| {
        issuer.validate(&http, "google", &minted, &audiences, Some(nonce), at)
    };
    assert!(validate("nonce-one", now).await.is_ok());
    let mismatch = validate("nonce-two", now).await.unwrap_err();
    assert!(mismatch.to_string().contains("nonce"), "{mismatch}");
    // Expiry is weighed against the time the server passes in (its clock).
    let late = now + chrono::Duration::seconds(600 + 3);
    let expired = validate("nonce-one", late).await.unwrap_err();
    assert!(expired.to_string().contains("expired"), "{expired}");

    // Authz mode: an ID token the app obtained itself ("webapp" client).
    let key = service_key(&app, "docs").await;
    let resolve = |token: String, workspace: String| {
        let mut request = tonic::Request::new(ResolveIdpTokenRequest {
            provider: "google".into(),
            idp_token: token,
            workspace_id: workspace,
        });
        request
            .metadata_mut()
            .insert("x-service-key", key.parse().unwrap());
        let mut client = auth();
        async move {
            client
                .resolve_idp_token(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let webapp_token = id_token_for(&idp.issuer, "webapp", "w3b", "ann", "n").await;
    let resolved = resolve(webapp_token.clone(), String::new()).await.unwrap();
    let Some(Resolution::Identity(identity)) = resolved.resolution else {
        panic!("identity without a workspace");
    };
    assert_eq!(identity.user.unwrap().id, me_user.id);
    assert_eq!(identity.workspaces.len(), 1);
    let resolved = resolve(webapp_token.clone(), acme.clone()).await.unwrap();
    let Some(Resolution::AuthzToken(authz)) = resolved.resolution else {
        panic!("an authz token for a workspace");
    };
    assert_eq!(authz.service_name, "docs");
    // The authz token names the user's subject at the provider, not only the provider.
    let mut request = tonic::Request::new(sentinel::proto::v1::IntrospectRequest {
        token: authz.token.clone(),
    });
    request
        .metadata_mut()
        .insert("x-service-key", key.parse().unwrap());
    let claims = auth().introspect(request).await.unwrap().into_inner();
    assert!(claims.active);
    assert_eq!(claims.idp_sub, "google|ann");
    assert_eq!(claims.aud, vec!["docs".to_string()]);
    // A browser calling by origin may resolve the identity, never mint an authz token.
    app.app
        .state()
        .apps
        .create(
            "Docs web",
            "docs-web",
            &["https://docs.example.com".to_string()],
        )
        .await
        .unwrap();
    let by_origin = |workspace: String| {
        let mut request = tonic::Request::new(ResolveIdpTokenRequest {
            provider: "google".into(),
            idp_token: webapp_token.clone(),
            workspace_id: workspace,
        });
        request
            .metadata_mut()
            .insert("origin", "https://docs.example.com".parse().unwrap());
        let mut client = auth();
        async move { client.resolve_idp_token(request).await }
    };
    assert!(matches!(
        by_origin(String::new())
            .await
            .unwrap()
            .into_inner()
            .resolution,
        Some(Resolution::Identity(_))
    ));
    let err = by_origin(acme.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("service key"), "{}", err.message());
    // Oversized provider tokens are refused before any work.
    let err = resolve(
        "x".repeat(sentinel::login::MAX_IDP_TOKEN_LEN + 1),
        String::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("idp_token"));
    let foreign = id_token_for(&idp.issuer, "other", "0ther", "ann", "n").await;
    // An ID token issued to another client of the provider (a foreign audience): refused.
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve(foreign, String::new()).await,
    );
    // Deactivating the client app ends its unredeemed codes at once.
    let landed = drive(&browser(), &login_url(&app, "google", "ann", APP_REDIRECT))
        .await
        .unwrap();
    let web = state
        .store
        .list_client_apps(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "web")
        .unwrap();
    state
        .client_apps
        .update(
            &sentinel::model::Caller::default(),
            web.id,
            sentinel::apps::client::ClientAppUpdate {
                name: None,
                redirect_uris: None,
                services: None,
                is_active: Some(false),
                revoke_sessions: false,
            },
        )
        .await
        .unwrap();
    refused(
        "AuthService/ExchangeCode",
        Code::Unauthenticated,
        exchange(&app, &query(&landed, "code"), VERIFIER).await,
    );
    // The provider's ID tokens live 10 minutes here; past that (and the 2 s leeway) they are
    // refused. Last, as the server's clock stays moved.
    app.clock.advance(Duration::from_secs(10 * 60 + 3));
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve(webapp_token, String::new()).await,
    );
    app.stop().await;
    drop(idp);
}

/// A stand-in of GitHub's OAuth and user API (no real GitHub is reachable): the account is the
/// authorization request's `login`.
#[derive(Clone)]
struct GithubStandIn;

async fn gh_authorize(Query(q): Query<std::collections::HashMap<String, String>>) -> Redirect {
    let target = format!(
        "{}?code=gh-{}&state={}",
        q["redirect_uri"],
        q.get("login").cloned().unwrap_or_default(),
        q["state"]
    );
    Redirect::to(&target)
}

async fn gh_token(body: String) -> impl IntoResponse {
    let code = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap_or_default()
        .to_string();
    let has_verifier = body.contains("code_verifier=");
    match code.strip_prefix("gh-") {
        Some(login) if has_verifier => axum::Json(serde_json::json!({
            "access_token": format!("tok-{login}"), "token_type": "bearer"
        }))
        .into_response(),
        _ => (StatusCode::BAD_REQUEST, "bad code").into_response(),
    }
}

/// The account behind a bearer token: `tok-<login>` was issued to our OAuth app,
/// `foreign-<login>` to some other site's app (GitHub's user API accepts both alike).
fn gh_login(headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    token
        .strip_prefix("tok-")
        .or_else(|| token.strip_prefix("foreign-"))
        .map(String::from)
}

/// `POST /applications/{client_id}/token`: 200 only for tokens of that app, authenticated with
/// its client id and secret (GitHub answers 404 for other tokens).
async fn gh_check_token(
    axum::extract::Path(client_id): axum::extract::Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> impl IntoResponse {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("sentinel:s3cret")
    );
    let authenticated = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if client_id != "sentinel" || !authenticated {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match body["access_token"].as_str() {
        Some(token) if token.starts_with("tok-") => {
            axum::Json(serde_json::json!({ "token": token })).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn gh_user(State(_): State<GithubStandIn>, headers: HeaderMap) -> impl IntoResponse {
    match gh_login(&headers).as_deref() {
        Some("octo") => {
            axum::Json(serde_json::json!({"id": 4242, "login": "octo", "name": "Octo Cat"}))
                .into_response()
        }
        Some("nover") => {
            axum::Json(serde_json::json!({"id": 5151, "login": "nover", "name": null}))
                .into_response()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn gh_emails(State(_): State<GithubStandIn>, headers: HeaderMap) -> impl IntoResponse {
    match gh_login(&headers).as_deref() {
        Some("octo") => axum::Json(serde_json::json!([
            {"email": "octo@old.example.com", "primary": false, "verified": true},
            {"email": "octo@example.com", "primary": true, "verified": true},
        ]))
        .into_response(),
        Some("nover") => axum::Json(serde_json::json!([
            {"email": "nover@example.com", "primary": true, "verified": false},
            {"email": "nover@other.example.com", "primary": false, "verified": true},
        ]))
        .into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_login_and_authz_mode(backend: Backend) {
    use axum::routing::{get, post};
    let router = axum::Router::new()
        .route("/login/oauth/authorize", get(gh_authorize))
        .route("/login/oauth/access_token", post(gh_token))
        .route("/user", get(gh_user))
        .route("/user/emails", get(gh_emails))
        .route("/applications/{client_id}/token", post(gh_check_token))
        .with_state(GithubStandIn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gh = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    let mut github = provider(ProviderKind::Github, None);
    github.authorize_url = Some(format!("{gh}/login/oauth/authorize"));
    github.token_url = Some(format!("{gh}/login/oauth/access_token"));
    github.api_url = Some(gh.clone());
    // The same app without authz mode: ResolveIdpToken refuses its tokens.
    config
        .providers
        .insert("github-login-only".into(), github.clone());
    github.authz_mode = Some(true);
    config.providers.insert("github".into(), github);
    let app = start_on_free_port(config).await;
    app.app
        .state()
        .client_apps
        .create(
            &sentinel::model::Caller::default(),
            "web",
            &[APP_REDIRECT.to_string()],
            &[],
        )
        .await
        .unwrap();

    let landed = drive(&browser(), &login_url(&app, "github", "octo", APP_REDIRECT))
        .await
        .expect("the GitHub flow reaches the app");
    let exchanged = exchange(&app, &query(&landed, "code"), VERIFIER)
        .await
        .unwrap();
    let user = exchanged.user.unwrap();
    assert_eq!(user.email, "octo@example.com", "the primary verified email");
    assert!(exchanged.tokens.is_some());
    // A primary email that is not verified is refused.
    let (status, body) = drive(
        &browser(),
        &login_url(&app, "github", "nover", APP_REDIRECT),
    )
    .await
    .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("verified"));
    // Authz mode with a GitHub access token.
    let key = service_key(&app, "docs").await;
    let mut request = tonic::Request::new(ResolveIdpTokenRequest {
        provider: "github".into(),
        idp_token: "tok-octo".into(),
        workspace_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-service-key", key.parse().unwrap());
    let resolved = AuthServiceClient::new(app.channel.clone())
        .resolve_idp_token(request)
        .await
        .unwrap()
        .into_inner();
    let Some(Resolution::Identity(identity)) = resolved.resolution else {
        panic!("an identity");
    };
    assert_eq!(identity.user.unwrap().id, user.id);
    let resolve = |provider: &str, token: &str| {
        let mut request = tonic::Request::new(ResolveIdpTokenRequest {
            provider: provider.into(),
            idp_token: token.into(),
            workspace_id: String::new(),
        });
        request
            .metadata_mut()
            .insert("x-service-key", key.parse().unwrap());
        let mut client = AuthServiceClient::new(app.channel.clone());
        async move { client.resolve_idp_token(request).await }
    };
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("github", "tok-unknown").await,
    );
    // A valid GitHub token of the same account, issued to another site's OAuth app, is refused.
    refused(
        "AuthService/ResolveIdpToken",
        Code::Unauthenticated,
        resolve("github", "foreign-octo").await,
    );
    // A GitHub provider without authz mode accepts no token at all.
    let err = resolve("github-login-only", "tok-octo").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    app.stop().await;
}
