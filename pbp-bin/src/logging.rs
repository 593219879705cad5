//! Logging setup shared by every subcommand.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging options, common to every subcommand.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Log line format.
    #[arg(long, global = true, env = "PBP_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub(crate) log_format: LogFormat,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `pbp_dataflow=debug,info`.
    #[arg(long, global = true, env = "PBP_LOG", default_value = "info")]
    pub(crate) log: String,
}

/// Installs the global tracing subscriber. Logs go to stderr so that stdout stays free for data and the
/// JSON result lines of benchmarks.
pub(crate) fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)?;
    // A failed log write must not take the process down: by default tracing-subscriber reports it with
    // `eprintln!`, which panics when stderr is a closed pipe (`pbp espn serve-fixtures 2>&1 | head -1`).
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    match args.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
