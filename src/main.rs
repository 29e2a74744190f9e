//! The `sentinel` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sentinel::tokens::keys::SigningAlgorithm;
use sentinel::{AppState, Application, Config, operator, store, telemetry};

/// Sentinel: identity and authorization for your services.
#[derive(Parser)]
#[command(name = "sentinel", version, about)]
struct Cli {
    /// Configuration file (default: ./sentinel.toml when present). Environment variables
    /// SENTINEL_* override it.
    #[arg(long, global = true, env = "SENTINEL_CONFIG")]
    config: Option<PathBuf>,
    /// Print log lines of commands other than `serve` (they are quiet by default).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (gRPC, gRPC-web and HTTP on one port).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// ADMIN TOOL: mint tokens directly, bypassing sign-in (development and smoke tests).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Platform administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Service apps (backends that call with x-service-key).
    ServiceApp {
        #[command(subcommand)]
        command: ServiceAppCommand,
    },
    /// Bulk imports into a running server (migrations and backfills).
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import resources and grants from a JSON-lines or CSV file through ImportResources
    /// (docs/permissions.md, "Bulk import"). Every line is checked before anything is sent.
    Resources {
        /// The file: `.csv` is read as CSV (a header row naming the columns), anything else as
        /// JSON lines.
        #[arg(long)]
        file: PathBuf,
        /// `jsonl` or `csv`, when the extension does not say.
        #[arg(long, value_parser = ["jsonl", "csv"])]
        format: Option<String>,
        /// The server's address.
        #[arg(long, env = "SENTINEL_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The service key to import as (the items belong to its service).
        #[arg(long, env = "SENTINEL_SERVICE_KEY", hide_env_values = true)]
        service_key: String,
        /// Items per message (1 to 5000).
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Items per stream; after each, the line reached is kept in <file>.import-progress.
        #[arg(long, default_value_t = 100_000)]
        checkpoint: u64,
        /// Start after the line kept by the last run.
        #[arg(long)]
        resume: bool,
        /// No progress lines on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue an access and refresh token for a user in a workspace.
    Issue {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The workspace slug.
        #[arg(long)]
        workspace: String,
        /// Role for a membership created (or changed) with --create.
        #[arg(long, value_parser = ["owner", "admin", "editor", "viewer"])]
        role: Option<String>,
        /// Create the user, workspace and membership when missing.
        #[arg(long)]
        create: bool,
        /// Make the user a platform admin first (audited): the way to a first admin credential.
        #[arg(long)]
        admin: bool,
        /// Print JSON: {"access_token","refresh_token","expires_in","user_id","workspace_id"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make an existing user a platform admin (or, with --revoke, take it away).
    Grant {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Remove platform admin instead.
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key active; the previous one stays in the JWKS for the overlap.
    Rotate {
        /// How long the previous key keeps verifying (at least the access-token lifetime).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        overlap: std::time::Duration,
        /// Algorithm of the new key (default: the configured signing_algorithm).
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
        algorithm: Option<String>,
        /// Sign with the new key at once instead of after key_publish_delay (key compromise).
        #[arg(long)]
        immediate: bool,
    },
    /// End a key that no longer signs before its overlap is over (key compromise): it leaves
    /// the JWKS, stops verifying and its private key is deleted. Rotate with --immediate first
    /// when the active key leaked.
    Retire {
        /// Retire now (required: this cannot be undone).
        #[arg(long, required = true)]
        now: bool,
        /// The key id (`kid`).
        kid: String,
    },
}

#[derive(Subcommand)]
enum ServiceAppCommand {
    /// Create a service app and print its API key (shown only once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// The service it acts for (lowercase, digits, dashes).
        #[arg(long)]
        service_name: String,
        /// Browser origin allowed to call on its behalf (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Print JSON: {"id","service_name","api_key","key_prefix"}.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new API key (shown only once); the key it replaces keeps working for the grace.
    /// Rotating during a grace ends the older key at once; `--grace 0s` ends every old key now.
    Rotate {
        /// The service app's service name.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        service_name: Option<String>,
        /// The service app's id.
        #[arg(long)]
        id: Option<uuid::Uuid>,
        /// How long the replaced key keeps working (at most 30 days).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Print JSON: {"id","service_name","api_key","key_prefix","old_key_expires_at"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client of a running server: it needs no configuration.
    if let Command::Import { command } = cli.command {
        return import(command);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sentinel: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        print!("{}", config.redacted_toml());
        return ExitCode::SUCCESS;
    }
    // The server logs as configured; other commands print their result and stay quiet unless
    // asked (their errors are printed plainly below).
    let serving = matches!(cli.command, Command::Serve);
    let filter = if serving || cli.verbose {
        config.log.clone()
    } else {
        "error".to_string()
    };
    telemetry::init(&filter, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sentinel: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Config { .. } => Ok(()),
            Command::Token { command } => token(config, command).await,
            Command::ServiceApp { command } => service_app(config, command).await,
            Command::Admin {
                command: AdminCommand::Grant { email, revoke },
            } => grant_admin(config, email, !revoke).await,
            Command::Keys {
                command:
                    KeysCommand::Rotate {
                        overlap,
                        algorithm,
                        immediate,
                    },
            } => rotate_keys(config, overlap, algorithm, immediate).await,
            Command::Keys {
                command: KeysCommand::Retire { kid, .. },
            } => retire_key(config, kid).await,
            Command::Import { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if serving => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("sentinel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn import(command: ImportCommand) -> ExitCode {
    let ImportCommand::Resources {
        file,
        format,
        server,
        service_key,
        batch,
        checkpoint,
        resume,
        quiet,
    } = command;
    let format = format.map(|f| match f.as_str() {
        "csv" => sentinel::import::file::Format::Csv,
        _ => sentinel::import::file::Format::JsonLines,
    });
    let options = sentinel::import::Options {
        file,
        format,
        server,
        service_key,
        batch,
        checkpoint,
        resume,
        progress: !quiet,
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(sentinel::import::run(&options)));
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("sentinel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::start(config).await?;
    app.run_until(shutdown_signal()).await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = store::connect(&config).await?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    tracing::info!(backend = store.backend(), "migrations applied");
    store.close().await;
    Ok(())
}

async fn token(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Issue {
        email,
        workspace,
        role,
        create,
        admin,
        json,
    } = command;
    let state = AppState::initialize(config).await?;
    let issued = operator::issue_token(
        &state,
        &operator::IssueTokenRequest {
            email,
            workspace,
            role,
            create,
            admin,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let workspace_id = issued
        .scope
        .as_ref()
        .map(|s| s.workspace.id.to_string())
        .unwrap_or_default();
    if json {
        let out = serde_json::json!({
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_in": issued.expires_in,
            "user_id": issued.user.id.to_string(),
            "workspace_id": workspace_id,
        });
        println!("{out}");
    } else {
        println!("access_token:  {}", issued.access_token);
        println!("refresh_token: {}", issued.refresh_token);
        println!("expires_in:    {}s", issued.expires_in);
        println!("user_id:       {}", issued.user.id);
        println!("workspace_id:  {workspace_id}");
    }
    state.store.close().await;
    Ok(())
}

async fn grant_admin(config: Config, email: String, admin: bool) -> anyhow::Result<()> {
    let state = AppState::initialize(config).await?;
    let email = sentinel::model::Email::parse(&email)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_string();
    let user = state
        .store
        .user_by_email(&email)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    operator::set_platform_admin(&state, &user, admin)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{email} is {} a platform admin",
        if admin { "now" } else { "no longer" }
    );
    state.store.close().await;
    Ok(())
}

async fn rotate_keys(
    config: Config,
    overlap: std::time::Duration,
    algorithm: Option<String>,
    immediate: bool,
) -> anyhow::Result<()> {
    let delay = if immediate {
        std::time::Duration::ZERO
    } else {
        config.key_publish_delay
    };
    let state = AppState::initialize(config).await?;
    state
        .tokens
        .validate_overlap(overlap)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let algorithm = match algorithm {
        Some(name) => SigningAlgorithm::parse(&name)
            .ok_or_else(|| anyhow::anyhow!("algorithm must be RS256, ES256 or EdDSA"))?,
        None => state.keys.default_algorithm(),
    };
    let embedded = state.config.redis_url.is_none();
    let (key, activate_at) = state
        .key_rotation
        .rotate(
            &sentinel::model::Caller::operator(),
            algorithm,
            delay,
            overlap,
        )
        .await?;
    println!(
        "new key:    {} ({}) signs from {}",
        key.kid,
        key.algorithm.as_str(),
        activate_at.to_rfc3339()
    );
    for (kid, algorithm, at) in state.keys.retiring() {
        let until = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        println!(
            "retiring:   {kid} ({algorithm}) until {}",
            until.to_rfc3339()
        );
    }
    if embedded {
        // Replicas on Redis are told at once; an embedded server has no channel to this process.
        println!("a running embedded server loads the new key within 30 s");
    }
    state.store.close().await;
    Ok(())
}

async fn retire_key(config: Config, kid: String) -> anyhow::Result<()> {
    use sentinel::tokens::keys::RetireOutcome;
    let state = AppState::initialize(config).await?;
    let embedded = state.config.redis_url.is_none();
    let outcome = state
        .key_rotation
        .retire(&sentinel::model::Caller::operator(), &kid)
        .await;
    let result = match outcome {
        Ok(RetireOutcome::Retired) => {
            println!("retired:    {kid} (no longer in the JWKS; its private key is deleted)");
            if embedded {
                println!("a running embedded server stops accepting its tokens within 30 s");
            }
            Ok(())
        }
        Ok(RetireOutcome::InUse) => Err(anyhow::anyhow!(
            "{kid} is the active or a pending key: run `sentinel keys rotate --immediate` first"
        )),
        Ok(RetireOutcome::Unknown) => Err(anyhow::anyhow!("no signing key {kid}")),
        Err(err) => Err(err.into()),
    };
    state.store.close().await;
    result
}

async fn service_app(config: Config, command: ServiceAppCommand) -> anyhow::Result<()> {
    let state = AppState::initialize(config).await?;
    let result = match command {
        ServiceAppCommand::Create {
            name,
            service_name,
            origins,
            json,
        } => create_service_app(&state, &name, &service_name, &origins, json).await,
        ServiceAppCommand::Rotate {
            service_name,
            id,
            grace,
            json,
        } => rotate_service_app(&state, service_name, id, grace, json).await,
    };
    state.store.close().await;
    result
}

async fn rotate_service_app(
    state: &AppState,
    service_name: Option<String>,
    id: Option<uuid::Uuid>,
    grace: std::time::Duration,
    json: bool,
) -> anyhow::Result<()> {
    let app = match (id, service_name) {
        (Some(id), _) => state.apps.get(id).await,
        (None, Some(name)) => state.apps.by_service_name(&name).await,
        (None, None) => anyhow::bail!("give --service-name or --id"),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (app, key) = state
        .apps
        .rotate_key(&sentinel::model::Caller::operator(), app.id, grace)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let old_until = app
        .previous_key_expires_at
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    if json {
        let out = serde_json::json!({
            "id": app.id.to_string(),
            "service_name": app.service_name,
            "api_key": key,
            "key_prefix": app.key_prefix,
            "old_key_expires_at": old_until,
        });
        println!("{out}");
    } else {
        println!("id:           {}", app.id);
        println!("service_name: {}", app.service_name);
        println!("api_key:      {key}   (shown only once: store it now)");
        println!("old key ends: {old_until}");
    }
    Ok(())
}

async fn create_service_app(
    state: &AppState,
    name: &str,
    service_name: &str,
    origins: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let (app, key) = state
        .apps
        .create(name, service_name, origins)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        let out = serde_json::json!({
            "id": app.id.to_string(),
            "service_name": app.service_name,
            "api_key": key,
            "key_prefix": app.key_prefix,
        });
        println!("{out}");
    } else {
        println!("id:           {}", app.id);
        println!("service_name: {}", app.service_name);
        println!("api_key:      {key}   (shown only once: store it now)");
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
