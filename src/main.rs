//! The `innkeep` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use innkeep::config::Config;
use innkeep::server::{self, Mode};
use innkeep::SyncMode;

#[derive(Parser, Debug)]
#[command(
    name = "innkeep",
    version,
    about = "Actor-based, in-memory hotel reservation engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// TOML configuration file (default: `$INNKEEP_CONFIG`, if set); `INNKEEP_*`
        /// environment variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Load a demo hotel into an empty data dir and print how to try it.
        #[arg(long)]
        demo: bool,
        /// Acknowledge writes without fdatasync. Benchmarks only: a crash can lose
        /// acknowledged bookings.
        #[arg(long)]
        unsafe_no_fsync: bool,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Print a new API key and the SHA-256 to configure for it (`[[api_keys]]`).
    Keygen,
    /// Tools for a cluster of nodes partitioned by hotel.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Print an HAProxy configuration that routes each hotel to the node serving its
    /// partition (checked with `/readyz?partition=`).
    HaproxyConfig {
        /// The cluster file (the same one every node's `[cluster] file` names).
        #[arg(long)]
        file: PathBuf,
        /// Where HAProxy listens for clients (`host:port`).
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The log (stderr) and, when `[telemetry] otlp_endpoint` is set, the OTLP span exporter,
/// which the caller shuts down (flushes) when the server stops.
fn init_tracing(
    format: LogFormat,
    telemetry: &innkeep::config::TelemetrySection,
) -> anyhow::Result<Option<innkeep::telemetry::Exporter>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("INNKEEP_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let log = match format {
        LogFormat::Text => log.with_filter(filter).boxed(),
        LogFormat::Json => log.json().with_filter(filter).boxed(),
    };
    let (otlp, exporter) = match innkeep::telemetry::layer(telemetry)? {
        Some((layer, exporter)) => (Some(layer), Some(exporter)),
        None => (None, None),
    };
    tracing_subscriber::registry().with(log).with(otlp).init();
    Ok(exporter)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            demo,
            unsafe_no_fsync,
            log_format,
        } => serve(config, demo, unsafe_no_fsync, log_format),
        Command::Keygen => keygen(),
        Command::Cluster {
            command: ClusterCommand::HaproxyConfig { file, bind },
        } => haproxy_config(&file, &bind),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("innkeep: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn haproxy_config(file: &std::path::Path, bind: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let cluster = innkeep::config::read_cluster_file(file)?;
    // The bind address goes into the file as written: refuse what HAProxy would misread.
    let valid = bind.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok_and(|p| p != 0)
            && !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
    });
    if !valid {
        anyhow::bail!("--bind {bind:?}: must be host:port");
    }
    write!(
        std::io::stdout().lock(),
        "{}",
        innkeep::cluster::haproxy_config(&cluster, bind)
    )?;
    Ok(())
}

fn keygen() -> anyhow::Result<()> {
    use std::io::Write;
    let (key, hash) = innkeep::keygen::generate()
        .map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        innkeep::keygen::text(&key, &hash).trim_end()
    )?;
    Ok(())
}

fn serve(
    config_path: Option<PathBuf>,
    demo: bool,
    unsafe_no_fsync: bool,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    let config_path = config_path.or_else(|| std::env::var_os("INNKEEP_CONFIG").map(PathBuf::from));
    let config = Config::load(config_path.as_deref(), std::env::vars())?;
    let exporter = init_tracing(log_format, &config.telemetry)?;
    let sync = if unsafe_no_fsync {
        tracing::warn!("--unsafe-no-fsync: acknowledged changes can be lost in a crash");
        SyncMode::None
    } else {
        SyncMode::Fdatasync
    };
    let mode = if demo { Mode::Demo } else { Mode::Plain };
    // This thread only orchestrates start-up, signals and shutdown; requests are served on
    // the shards (see `server`), so it needs no more than a current-thread runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("innkeep-main")
        .build()?;
    let shutdown = {
        let _inside = runtime.enter();
        server::shutdown_signal()?
    };
    let served = runtime.block_on(server::run(config, mode, sync, shutdown));
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    served
}
