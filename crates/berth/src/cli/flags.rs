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

/// How many stored lines `berth logs --tail` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Every stored line.
    All,
    /// The last this many.
    Last(usize),
}

/// `--tail N` or `--tail all`.
pub fn parse_tail(text: &str) -> Result<Tail, String> {
    if text == "all" {
        return Ok(Tail::All);
    }
    text.parse().map(Tail::Last).map_err(|_| {
        format!("invalid line count {text:?}: use a number of lines, such as 100, or `all`")
    })
}
