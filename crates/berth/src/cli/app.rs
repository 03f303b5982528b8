//! The subcommands and arguments of commands about one app.

use super::flags::{AppArg, JsonArg};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The source directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The manifest: in DIR, else from the current directory (it may live outside DIR; one
    /// that builds nothing, like a Pod spec, is sent alone)
    #[arg(
        short = 'f',
        long = "manifest",
        value_name = "FILE",
        default_value = "berth.yml"
    )]
    pub manifest: PathBuf,
    /// Deploy this image from the local Docker engine instead of building DIR
    /// (with DIR's berth.yml if there is one)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The source directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The manifest, in DIR
    #[arg(
        short = 'f',
        long = "manifest",
        value_name = "FILE",
        default_value = "berth.yml"
    )]
    pub manifest: PathBuf,
    /// Show only this service's lines (and events about it)
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Do not watch DIR: changed files are neither copied into the containers nor rebuilt
    #[arg(long)]
    pub no_sync: bool,
    /// Keep the private data dir (DIR/.berth/start: the store and the logs) after exit;
    /// the next `berth start` replaces it
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app
    Create {
        /// The new app's name: lowercase letters, digits and '-'
        name: String,
    },
    /// Delete an app, its processes, builds, releases and environment; on a terminal,
    /// asks you to type the app's name first
    Delete {
        /// The app to delete
        name: String,
        /// Delete the app's volumes, and the data in them, too
        #[arg(long)]
        volumes: bool,
        /// Do not ask for confirmation on a terminal
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Show an app's status, release and services
    Info {
        /// The app (default: --app, else berth.yml's `app:`, else the directory's name)
        name: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// Print a build's output (--json: a JSON array of its lines)
    Logs {
        /// The build (an ID from `berth builds`, e.g. B2)
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// Roll a release out, making it the active one
    Promote {
        /// The release (an ID from `berth releases`, e.g. R4)
        id: String,
        /// Replace the processes even if the release is already the active one
        #[arg(long)]
        force: bool,
    },
    /// Make a new release with an older release's build and environment, and roll it out
    Rollback {
        /// The older release whose build and environment to copy (e.g. R1)
        id: String,
        /// Roll back even to a release that failed
        #[arg(long)]
        force: bool,
    },
    /// Show a release: its build, the env keys and manifest lines changed since the one before
    Info {
        /// The release (an ID from `berth releases`, e.g. R4)
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Print one variable's value as the app's processes get it (set, or berth.yml's default)
    Get {
        /// The variable's name
        key: String,
        /// The value this service gets, when berth.yml gives services different defaults
        #[arg(short = 's', long, value_name = "SERVICE")]
        service: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Set variables (a new release; rolled out with --promote)
    Set {
        /// The variables and their new values
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Roll the new release out
        #[arg(long)]
        promote: bool,
    },
    /// Remove variables (a new release; rolled out with --promote)
    Unset {
        /// The variables' names
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// Roll the new release out
        #[arg(long)]
        promote: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PsCommand {
    /// Stop a process (the supervisor replaces it if its service still wants it) or a one-off (removed)
    Stop {
        /// The process or one-off (an ID from `berth ps`, e.g. web-3f9a2c)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The service whose image, env and volumes the process gets
    pub service: String,
    /// Run this release instead of the promoted one
    #[arg(long, value_name = "R")]
    pub release: Option<String>,
    /// Leave it running in the background and print its id (its output goes to `berth logs`)
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Stop it after this many seconds
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// The command and its arguments, after `--` (default: the service's command)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The process (an ID from `berth ps`)
    pub process: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Write a tar of a volume's content to stdout: `berth volumes backup data > data.tar`
    Backup {
        /// The volume, as named in berth.yml
        name: String,
    },
    /// Extract a tar from stdin into a volume: `berth volumes restore data < data.tar`
    /// (files in the tar replace those of the same name; others are kept)
    Restore {
        /// The volume, as named in berth.yml
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// Show one resource: type, image, status, process, volume, env names, users
    Info {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Print the resource's URL with its password (audited; needs the deploy role)
    Url {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Write a logical dump to stdout (postgres: `pg_dump --format=custom`):
    /// `berth resources backup db > db.dump`
    Backup {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
    },
    /// Forward a local port to the resource through the API, for a psql or
    /// redis-cli on this machine: `berth resources proxy db --port 5433`
    Proxy {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
        /// The local port (on 127.0.0.1); default: a free one, printed
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Restore a dump from stdin (`pg_restore --clean --if-exists`):
    /// `berth resources restore db < db.dump`
    Restore {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
    },
    /// Move the resource to another image, a backup taken first (kept on the
    /// server); back on the old image if the new one does not get healthy:
    /// `berth resources upgrade db --image postgres:16`
    Upgrade {
        /// The resource, as named under `resources:` in berth.yml
        name: String,
        /// The image to run it on (the engine must have it: `docker load` or build it there)
        #[arg(long)]
        image: String,
    },
}
