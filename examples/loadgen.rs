//! Load generator: starts a server in-process on an ephemeral loopback port, creates fixtures,
//! then drives gRPC calls from concurrent clients and reports throughput and latency.
//!
//! ```sh
//! cargo run --release --example loadgen -- --seconds 10 --concurrency 32
//! cargo run --release --example loadgen -- --database-url postgres://postgres@127.0.0.1/bench \
//!     --redis-url redis://127.0.0.1:6379
//! ```
//! Client and server share the machine's cores: the figures are a floor for a dedicated server.

#[path = "loadgen/import.rs"]
mod import;

use std::time::{Duration, Instant};

use clap::Parser;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{
    CheckBulkItem, CheckBulkRequest, CheckRequest, GetJwksRequest, Grantee, IntrospectRequest,
    LookupResourcesRequest, Permission, RefreshRequest, RegisterResourceRequest, ResourceRef,
    ShareRequest, Visibility, WriteBatchRequest, WriteOperation, grantee, write_operation,
};
use sentinel::{Application, Config};
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// PostgreSQL URL (a dedicated, disposable database); default: embedded SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Redis URL (with --database-url).
    #[arg(long)]
    redis_url: Option<String>,
    /// Signing algorithm: RS256, ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    algorithm: String,
    /// Scenarios to run: jwks, introspect, refresh, check, checkbulk, lookup, register (new
    /// resources), share (grants on existing ones), batch (WriteBatch of 100 new resources a
    /// call), mixed (90% check, 10% register; check and write latencies reported apart), import
    /// (a file of --import-items items and two grants each through ImportResources, with
    /// Checks beside it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "jwks,introspect,refresh,check"
    )]
    scenarios: Vec<String>,
    /// Items of the `import` scenario (each with two grants; one folder per 1,000).
    #[arg(long, default_value_t = 1_000_000)]
    import_items: usize,
    /// Resources registered for the permission scenarios (half shared with the users' group).
    #[arg(long, default_value_t = 2000)]
    resources: usize,
}

/// What one client did.
#[derive(Default)]
struct Tally {
    calls: usize,
    errors: usize,
    /// Latencies of the scenario's calls (of the checks, in `mixed`).
    latencies: Vec<Duration>,
    /// Latencies of the writes of `mixed`.
    writes: Vec<Duration>,
}

struct Report {
    calls: usize,
    errors: usize,
    latencies: Vec<Duration>,
    writes: Vec<Duration>,
    elapsed: Duration,
}

fn percentile(latencies: &[Duration], p: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[index]
}

async fn drive<F, Fut>(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    make: F,
) -> Report
where
    F: Fn(usize, Channel) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| tokio::spawn(make(i, channels[i % channels.len()].clone())))
        .collect();
    let mut report = Report {
        calls: 0,
        errors: 0,
        latencies: Vec::new(),
        writes: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let tally = task.await.expect("worker");
        report.calls += tally.calls;
        report.errors += tally.errors;
        report.latencies.extend(tally.latencies);
        report.writes.extend(tally.writes);
    }
    report.elapsed = started.elapsed().min(duration + Duration::from_millis(500));
    report.latencies.sort_unstable();
    report.writes.sort_unstable();
    let _ = duration;
    report
}

/// Adds the dual-tier credentials: service key and user token.
fn authorize<T>(request: &mut tonic::Request<T>, key: &str, token: &str) {
    let metadata = request.metadata_mut();
    metadata.insert("x-service-key", key.parse().expect("ascii"));
    metadata.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
}

fn print(name: &str, report: &Report) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let per_second = |n: usize| n as f64 / report.elapsed.as_secs_f64();
    if report.writes.is_empty() {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            per_second(report.calls),
            ms(percentile(&report.latencies, 0.50)),
            ms(percentile(&report.latencies, 0.99)),
            report.errors
        );
        return;
    }
    println!(
        "| {name}: checks | {:.0} | {:.2} | {:.2} | {} |",
        per_second(report.latencies.len()),
        ms(percentile(&report.latencies, 0.50)),
        ms(percentile(&report.latencies, 0.99)),
        report.errors
    );
    println!(
        "| {name}: writes | {:.0} | {:.2} | {:.2} | |",
        per_second(report.writes.len()),
        ms(percentile(&report.writes, 0.50)),
        ms(percentile(&report.writes, 0.99)),
    );
}

/// One permission call of a scenario, as its client makes it.
#[derive(Clone)]
struct Call {
    key: String,
    workspace: String,
    /// Fixture resources `doc-000000` … (half shared with the load users' group).
    resources: usize,
    kind: String,
}

impl Call {
    fn request<T>(&self, message: T, token: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        match token {
            Some(token) => authorize(&mut request, &self.key, token),
            None => {
                request
                    .metadata_mut()
                    .insert("x-service-key", self.key.parse().expect("ascii"));
            }
        }
        request
    }

    /// Makes one call of `kind`; whether it succeeded. `nth` = (client, call number) names a
    /// new resource.
    async fn once(
        &self,
        kind: &str,
        client: &mut PermissionServiceClient<Channel>,
        rng: &mut fastrand::Rng,
        token: &str,
        user: &str,
        nth: (usize, usize),
    ) -> bool {
        let doc = |n: usize| {
            Some(ResourceRef {
                resource_type: "doc".into(),
                resource_id: format!("doc-{n:06}"),
            })
        };
        match kind {
            "check" => {
                let message = CheckRequest {
                    resource: doc(rng.usize(..self.resources)),
                    action: "view".into(),
                    consistency: None,
                };
                client
                    .check(self.request(message, Some(token)))
                    .await
                    .is_ok()
            }
            "checkbulk" => {
                let items = (0..100)
                    .map(|_| CheckBulkItem {
                        resource: doc(rng.usize(..self.resources)),
                        action: "view".into(),
                    })
                    .collect();
                let message = CheckBulkRequest {
                    items,
                    consistency: None,
                };
                let request = self.request(message, Some(token));
                client.check_bulk(request).await.is_ok()
            }
            "lookup" => {
                let message = LookupResourcesRequest {
                    resource_type: "doc".into(),
                    action: "view".into(),
                    page_size: 500,
                    ..Default::default()
                };
                let request = self.request(message, Some(token));
                client.lookup_resources(request).await.is_ok()
            }
            "batch" => {
                let operations = (0..100)
                    .map(|k| WriteOperation {
                        operation: Some(write_operation::Operation::Register(
                            RegisterResourceRequest {
                                resource_type: "doc".into(),
                                resource_id: format!(
                                    "batch-{}-{}-{k}-{}",
                                    nth.0,
                                    nth.1,
                                    rng.u32(..)
                                ),
                                workspace_id: self.workspace.clone(),
                                owner_id: user.into(),
                                visibility: Visibility::Private as i32,
                                ..Default::default()
                            },
                        )),
                    })
                    .collect();
                let request = self.request(WriteBatchRequest { operations }, None);
                client.write_batch(request).await.is_ok()
            }
            "register" => {
                let message = RegisterResourceRequest {
                    resource_type: "doc".into(),
                    resource_id: format!("new-{}-{}-{}", nth.0, nth.1, rng.u32(..)),
                    workspace_id: self.workspace.clone(),
                    owner_id: user.into(),
                    visibility: Visibility::Private as i32,
                    ..Default::default()
                };
                let request = self.request(message, None);
                client.register_resource(request).await.is_ok()
            }
            _ => {
                // share: the client's own user on a random fixture, view or edit (a real
                // change most of the time).
                let message = ShareRequest {
                    resource: doc(rng.usize(..self.resources)),
                    grantee: Some(Grantee {
                        grantee: Some(grantee::Grantee::UserId(user.into())),
                    }),
                    permission: if rng.bool() {
                        Permission::View
                    } else {
                        Permission::Edit
                    } as i32,
                    expires_at: None,
                };
                client.share(self.request(message, None)).await.is_ok()
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        log: "error".into(),
        ..Config::default()
    };
    config.rate_limit.enabled = false;
    config.signing_algorithm = sentinel::tokens::keys::SigningAlgorithm::parse(&args.algorithm)
        .ok_or_else(|| anyhow::anyhow!("--algorithm must be RS256, ES256 or EdDSA"))?;
    if let Some(url) = &args.database_url {
        config.database_url = Some(url.clone());
        config.redis_url = args.redis_url.clone();
        config.kek = Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into());
    }
    let app = Application::start(config).await?;
    let state = app.state().clone();
    let url = format!("http://{}", app.local_addr());
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(Channel::from_shared(url.clone())?.connect().await?);
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (_, service_key) = state
        .apps
        .create("load", &format!("load-{}", &suffix[..8]), &[])
        .await?;
    let mut chains = Vec::new();
    for i in 0..args.concurrency {
        let issued = sentinel::operator::issue_token(
            &state,
            &sentinel::operator::IssueTokenRequest {
                email: format!("load{i}-{}@example.com", &suffix[..8]),
                workspace: format!("load-{}", &suffix[..8]),
                role: Some("editor".into()),
                create: true,
                admin: false,
            },
        )
        .await?;
        chains.push(issued);
    }
    // Permission fixtures: resources in the users' workspace, private, half of them shared
    // with a group every load user belongs to.
    let workspace = chains[0].scope.as_ref().expect("scoped").workspace.id;
    let needs_resources = args.scenarios.iter().any(|s| {
        matches!(
            s.as_str(),
            "check" | "checkbulk" | "lookup" | "share" | "mixed"
        )
    });
    if needs_resources {
        // The fixtures are made as the service itself (the load users are editors).
        let caller = sentinel::model::Caller {
            service: Some("load".into()),
            ..sentinel::model::Caller::default()
        };
        let group = state
            .workspaces
            .create_group(&caller, workspace, "load", "")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for chain in &chains {
            state
                .workspaces
                .set_group_member(&caller, group.id, chain.user.id, true)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let started = Instant::now();
        let mut client = PermissionServiceClient::new(channels[0].clone());
        for i in 0..args.resources {
            let id = format!("doc-{i:06}");
            let mut request = tonic::Request::new(RegisterResourceRequest {
                resource_type: "doc".into(),
                resource_id: id.clone(),
                workspace_id: workspace.to_string(),
                visibility: Visibility::Private as i32,
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("x-service-key", service_key.parse()?);
            client.register_resource(request).await?;
            if i % 2 == 0 {
                let mut request = tonic::Request::new(ShareRequest {
                    resource: Some(ResourceRef {
                        resource_type: "doc".into(),
                        resource_id: id,
                    }),
                    grantee: Some(Grantee {
                        grantee: Some(grantee::Grantee::GroupId(group.id.to_string())),
                    }),
                    permission: Permission::View as i32,
                    expires_at: None,
                });
                request
                    .metadata_mut()
                    .insert("x-service-key", service_key.parse()?);
                client.share(request).await?;
            }
        }
        println!(
            "fixtures: {} resources registered ({} shared) in {:.1} s",
            args.resources,
            args.resources.div_ceil(2),
            started.elapsed().as_secs_f64()
        );
    }
    let duration = Duration::from_secs(args.seconds);
    println!(
        "backend: {} + {}; {}; {} clients over {} connections; {} s per scenario",
        state.store.backend(),
        state.cache.backend(),
        args.algorithm,
        args.concurrency,
        channels.len(),
        args.seconds
    );
    println!("| scenario | calls/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    for scenario in &args.scenarios {
        if scenario == "import" {
            let users: Vec<(String, String)> = chains
                .iter()
                .map(|c| (c.access_token.clone(), c.user.id.to_string()))
                .collect();
            import::run(import::Setup {
                url: url.clone(),
                key: service_key.clone(),
                workspace: workspace.to_string(),
                users: &users,
                channels: &channels,
                items: args.import_items,
                dir: dir.path(),
            })
            .await?;
            continue;
        }
        let report = match scenario.as_str() {
            "jwks" => {
                drive(
                    &channels,
                    args.concurrency,
                    duration,
                    |_, channel| async move {
                        let mut client = AuthServiceClient::new(channel);
                        let mut tally = Tally::default();
                        let end = Instant::now() + duration;
                        while Instant::now() < end {
                            let t = Instant::now();
                            match client.get_jwks(GetJwksRequest {}).await {
                                Ok(_) => tally.latencies.push(t.elapsed()),
                                Err(_) => tally.errors += 1,
                            }
                            tally.calls += 1;
                        }
                        tally
                    },
                )
                .await
            }
            "introspect" => {
                let token = chains[0].access_token.clone();
                let key = service_key.clone();
                drive(&channels, args.concurrency, duration, move |_, channel| {
                    let token = token.clone();
                    let key = key.clone();
                    async move {
                        let mut client = AuthServiceClient::new(channel);
                        let mut tally = Tally::default();
                        let end = Instant::now() + duration;
                        while Instant::now() < end {
                            let mut request = tonic::Request::new(IntrospectRequest {
                                token: token.clone(),
                            });
                            request
                                .metadata_mut()
                                .insert("x-service-key", key.parse().expect("ascii"));
                            let t = Instant::now();
                            match client.introspect(request).await {
                                Ok(r) if r.get_ref().active => tally.latencies.push(t.elapsed()),
                                _ => tally.errors += 1,
                            }
                            tally.calls += 1;
                        }
                        tally
                    }
                })
                .await
            }
            "refresh" => {
                let tokens: Vec<String> = chains.iter().map(|c| c.refresh_token.clone()).collect();
                drive(&channels, args.concurrency, duration, move |i, channel| {
                    let mut token = tokens[i].clone();
                    async move {
                        let mut client = AuthServiceClient::new(channel);
                        let mut tally = Tally::default();
                        let end = Instant::now() + duration;
                        while Instant::now() < end {
                            let t = Instant::now();
                            match client
                                .refresh(RefreshRequest {
                                    refresh_token: token.clone(),
                                    workspace_id: String::new(),
                                })
                                .await
                            {
                                Ok(r) => {
                                    tally.latencies.push(t.elapsed());
                                    if let Some(pair) = r.into_inner().tokens {
                                        token = pair.refresh_token;
                                    }
                                }
                                Err(_) => tally.errors += 1,
                            }
                            tally.calls += 1;
                        }
                        tally
                    }
                })
                .await
            }
            "check" | "checkbulk" | "lookup" | "register" | "share" | "batch" | "mixed" => {
                let users: Vec<(String, String)> = chains
                    .iter()
                    .map(|c| (c.access_token.clone(), c.user.id.to_string()))
                    .collect();
                let call = Call {
                    key: service_key.clone(),
                    workspace: workspace.to_string(),
                    resources: args.resources.max(1),
                    kind: scenario.clone(),
                };
                drive(&channels, args.concurrency, duration, move |i, channel| {
                    let (token, user) = users[i].clone();
                    let call = call.clone();
                    async move {
                        let mut client = PermissionServiceClient::new(channel);
                        let mut rng = fastrand::Rng::with_seed(i as u64);
                        let mut tally = Tally::default();
                        let end = Instant::now() + duration;
                        while Instant::now() < end {
                            let kind = match call.kind.as_str() {
                                "mixed" if rng.u32(..10) == 0 => "register",
                                "mixed" => "check",
                                other => other,
                            };
                            let t = Instant::now();
                            let n = tally.calls;
                            let ok = call
                                .once(kind, &mut client, &mut rng, &token, &user, (i, n))
                                .await;
                            match (ok, call.kind == "mixed" && kind == "register") {
                                (false, _) => tally.errors += 1,
                                (true, true) => tally.writes.push(t.elapsed()),
                                (true, false) => tally.latencies.push(t.elapsed()),
                            }
                            tally.calls += 1;
                        }
                        tally
                    }
                })
                .await
            }
            other => anyhow::bail!("unknown scenario {other}"),
        };
        print(scenario, &report);
    }
    app.shutdown().await?;
    Ok(())
}
