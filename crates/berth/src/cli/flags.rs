//! Flags many commands share.

use clap::Args;

/// `--app/-a`, accepted before or after a subcommand's own subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct AppArg {
    /// The app (default: `app:` in ./berth.yml, else the current directory's name)
    #[arg(short = 'a', long = "app", value_name = "APP", global = true)]
    pub app: Option<String>,
}

/// `--json` of read commands.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonArg {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}
