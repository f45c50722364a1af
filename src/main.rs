//! The `allmende` command: serve, migrate, verify, demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use allmende::config::{Config, Overrides, redact_url};
use allmende::db::Db;

#[derive(Parser)]
#[command(
    name = "allmende",
    version,
    about = "Allmende: organisations pool money to fund the open-source software they depend on"
)]
struct Cli {
    /// A TOML file with settings (see README: Configuration); ALLMENDE_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The database: sqlite://path/to/file.db (default sqlite://data/allmende.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the web server (migrates the database first).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:3000 (overrides ALLMENDE_BIND).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// On an empty database, load the demo cooperative first.
        #[arg(long)]
        demo: bool,
    },
    /// Runs the database migrations that have not run yet.
    Migrate,
    /// Checks the ledger's invariants and prints each check; exits non-zero on any violation.
    Verify,
    /// Fills an empty database with a small demo cooperative.
    Demo,
    /// Runs the background jobs only (deadline expiry, reminders, mail), e.g. on a second
    /// machine; `serve` runs them too.
    Worker,
    /// Runs a voting rule on a Pabulib `.pb` file, without a database: prints the selected
    /// project ids, one per line, then a summary (total cost, budget, time) on stderr.
    Tally {
        /// The election, in the Pabulib format.
        file: PathBuf,
        /// equal-shares (Method of Equal Shares with add1 completion, then greedy; as pabutools)
        /// or greedy (most votes first, skipping what does not fit).
        #[arg(long, default_value = "equal-shares")]
        rule: allmende::voting::Rule,
    },
    /// Platform administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Makes a person a platform admin (creating the account if needed) and prints a link
    /// with which they set their password.
    Create {
        /// The person's email address.
        #[arg(long)]
        email: String,
        /// The person's name (for a new account).
        #[arg(long, default_value = "")]
        name: String,
    },
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ALLMENDE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Tally { file, rule } = &cli.command {
        // The error names the file and the line; its sources would only repeat them.
        let report = allmende::voting::tally_file(file, *rule)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        for id in &report.selected {
            println!("{id}");
        }
        eprintln!("{}", report.summary());
        return Ok(ExitCode::SUCCESS);
    }
    let bind = match &cli.command {
        Command::Serve { bind, .. } => bind.clone(),
        _ => None,
    };
    let config = Config::load(
        cli.config.as_deref(),
        &Overrides {
            database_url: cli.database.clone(),
            bind,
        },
    )?;
    let db = Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            redact_url(&config.database_url)
        )
    })?;
    db.migrate().await.context("cannot migrate the database")?;

    match cli.command {
        Command::Tally { .. } => Ok(ExitCode::SUCCESS),
        Command::Migrate => {
            println!(
                "database {} is up to date",
                redact_url(&config.database_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let mut conn = db.pool().acquire().await?;
            let report = allmende::verify::run(&mut conn).await?;
            println!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo => {
            let summary = allmende::demo::load(&db).await?;
            println!(
                "demo loaded: {} people, {} organisations, {} projects, {} proposals, {} ledger transactions",
                summary.people,
                summary.organisations,
                summary.projects,
                summary.proposals,
                summary.transactions
            );
            println!(
                "demo accounts (password {}): admin@allmende.example, vorstand@allmende.example, kasse@allmende.example, it@musterhausen.example",
                allmende::demo::DEMO_PASSWORD
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command: AdminCommand::Create { email, name },
        } => {
            let mut tx = db.begin().await?;
            let (person, link) =
                allmende::people::create_by_cli(&mut tx, &email, &name, &config.base_url).await?;
            allmende::people::roles::grant_by_cli(
                &mut tx,
                &person.id,
                allmende::authz::PlatformRole::Admin,
            )
            .await?;
            tx.commit().await?;
            println!("{} <{}> is a platform admin.", person.name, person.email);
            println!("They set their password here (valid for 24 hours): {link}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { demo, .. } => {
            if demo {
                match allmende::demo::load(&db).await {
                    Ok(summary) => tracing::info!(
                        organisations = summary.organisations,
                        proposals = summary.proposals,
                        "demo loaded"
                    ),
                    Err(allmende::demo::DemoError::NotEmpty) => {
                        tracing::info!("the database holds data already; demo not loaded")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("cannot listen on {}", config.bind))?;
            let address = listener.local_addr()?;
            tracing::info!(database = %redact_url(&config.database_url), backend = db.backend().name(), "serving");
            println!("Allmende läuft auf / is running at http://{address}/");
            let mailer = allmende::mail::Mailer::from_config(&config).context("mail settings")?;
            let idle_ms = config.session_idle_minutes * 60_000;
            let state = allmende::web::AppState::new(db.clone(), config)
                .context("cannot read the statutes")?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mail_loop = allmende::mail::spawn_delivery_loop(
                db.clone(),
                mailer,
                std::time::Duration::from_secs(5),
                stopped.clone(),
            );
            let jobs = allmende::jobs::spawn_worker(
                db.clone(),
                std::sync::Arc::new(allmende::jobs::SystemClock),
                std::time::Duration::from_secs(30),
                stopped.clone(),
            );
            let housekeeping = allmende::spawn_housekeeping(db.clone(), idle_ms, stopped);
            allmende::web::serve(state, listener, allmende::web::shutdown_signal()).await?;
            let _ = stop.send(true);
            let _ = mail_loop.await;
            let _ = housekeeping.await;
            let _ = jobs.await;
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            let mailer = allmende::mail::Mailer::from_config(&config).context("mail settings")?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mail_loop = allmende::mail::spawn_delivery_loop(
                db.clone(),
                mailer,
                std::time::Duration::from_secs(5),
                stopped.clone(),
            );
            let jobs = allmende::jobs::spawn_worker(
                db.clone(),
                std::sync::Arc::new(allmende::jobs::SystemClock),
                std::time::Duration::from_secs(30),
                stopped,
            );
            println!("worker running; Ctrl-C or SIGTERM stops it");
            allmende::web::shutdown_signal().await;
            let _ = stop.send(true);
            let _ = mail_loop.await;
            let _ = jobs.await;
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
