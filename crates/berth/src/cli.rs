//! The command line, as clap derive types.

use clap::{ArgGroup, Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: a self-hosted PaaS. Deploy apps to your own server with `berth deploy`.",
    after_help = "The server and token come from BERTH_HOST and BERTH_TOKEN, else from the config `berth login` writes.\nThe app is --app/-a, else `app:` in ./berth.yml, else the current directory's name."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the berth server (API, router, deployer) in the foreground
    Server(ServerArgs),

    /// Run the HTTP router process (started by `berth server`, which it outlives)
    #[command(hide = true)]
    Router(crate::router::RouterArgs),

    /// Check a server URL and token, then save them to the CLI config
    Login {
        /// The server's API URL, e.g. http://127.0.0.1:7070
        url: String,
        /// An API token (the server prints the admin token on its first start)
        #[arg(long, value_name = "T")]
        token: String,
    },

    /// List apps, or create, delete and inspect one
    Apps {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<AppsCommand>,
    },

    /// Upload the source in DIR and build it into a new (unpromoted) release
    Build(SourceArgs),

    /// Upload the source in DIR, build it, and roll the new release out
    Deploy(SourceArgs),

    /// List an app's builds, or show one build's output
    Builds {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<BuildsCommand>,
    },

    /// List an app's releases, or promote or roll back to one
    Releases {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<ReleasesCommand>,
    },

    /// Print an app's environment (KEY=VALUE, sorted), or change it
    Env {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<EnvCommand>,
    },

    /// Change a service's process count, memory limit or CPU limit
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["count", "memory", "cpu"])))]
    Scale {
        #[command(flatten)]
        app: AppArg,
        /// The service, as named in berth.yml
        service: String,
        /// Number of processes
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        /// Memory limit per process, in MiB
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
        memory: Option<u64>,
        /// CPU limit per process, in cores (e.g. 0.5)
        #[arg(long, value_name = "CORES", value_parser = crate::resolve::parse_cpu)]
        cpu: Option<f64>,
    },

    /// List an app's processes, or stop one
    Ps {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<PsCommand>,
    },

    /// Run a one-off process of a service, e.g. `berth run web -- ./migrate`; exits with its exit code
    Run(crate::oneoff::RunArgs),

    /// Run a command inside a running process, e.g. `berth exec web-3f9a2c -- sh`
    Exec(crate::oneoff::ExecArgs),

    /// List an app's timers: NAME SCHEDULE SERVICE COMMAND LAST-RUN EXIT NEXT-RUN
    Timers {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },

    /// Replace the processes of one service (or of all) with fresh ones, rolling
    Restart {
        #[command(flatten)]
        app: AppArg,
        /// Only this service
        service: Option<String>,
    },

    /// Print an app's logs: TIME SOURCE TEXT
    Logs {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        /// Keep printing new lines as they come
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines this recent: 30s, 10m, 2h, 1d
        #[arg(long, value_name = "DURATION", value_parser = crate::resolve::parse_duration)]
        since: Option<u64>,
        /// Only lines of this service
        #[arg(short = 's', long, value_name = "SERVICE")]
        service: Option<String>,
    },

    /// Show the server's version, uptime, engine, domain, router and counts
    Rack {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<crate::ops::RackCommand>,
    },

    /// List an app's volumes (NAME SIZE USED-BY), or back one up or restore it
    Volumes {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<crate::ops::VolumesCommand>,
    },

    /// List an app's services (SERVICE DOMAIN PORT COUNT HEALTHY)
    Services {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },

    /// List API tokens (ID ROLE APP CREATED LAST-USED), or create or revoke one (admin only)
    Tokens {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<crate::access::TokensCommand>,
    },

    /// List the router's TLS certificates, or import, generate, delete one
    Certs {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<crate::certs::CertsCommand>,
    },

    /// Show the audit trail: every change made through the API, who made it and when (admin only)
    Audit {
        #[command(flatten)]
        json: JsonArg,
        /// Show the newest N records
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
    },

    /// Print a shell completion script, e.g. `berth completions bash > /etc/bash_completion.d/berth`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Data directory [default: /var/lib/berth as root, else $XDG_DATA_HOME/berth or ~/.local/share/berth]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address of the API
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub api: SocketAddr,
    /// Address of the HTTP router
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Apps get <service>.<app>.<DOMAIN>
    #[arg(long, value_name = "D", default_value = "localhost")]
    pub domain: String,
    /// Largest source upload accepted, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_upload: u64,
    /// Worker threads of the router process [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub router_threads: Option<u16>,
    /// Serve HTTPS on this address too (certificates: `berth certs`)
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// Largest request body the router forwards, in MiB; larger ones get 413
    #[arg(long, value_name = "MIB", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_body: u64,
    /// Obtain and renew certificates for every served domain over ACME HTTP-01 from
    /// this directory, e.g. https://acme-v02.api.letsencrypt.org/directory [default: off]
    #[arg(long, value_name = "URL", requires = "https")]
    pub acme_directory: Option<String>,
    /// Contact email given to the ACME CA (expiry notices)
    #[arg(long, value_name = "E", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// Also trust this PEM CA certificate for the ACME directory's HTTPS (a test CA)
    #[arg(long, value_name = "PEM", requires = "acme_directory")]
    pub acme_ca_cert: Option<PathBuf>,
    /// Give each app network a /24 of this IPv4 pool, e.g. 10.210.0.0/16, instead of
    /// the engine's default pools (which hold about 30 networks)
    #[arg(long, value_name = "CIDR")]
    pub network_pool: Option<berth_runtime::subnets::NetworkPool>,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The source directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The manifest, relative to DIR
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

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app
    Create { name: String },
    /// Delete an app, its processes, builds, releases and environment
    Delete {
        name: String,
        /// Delete the app's volumes, and the data in them, too
        #[arg(long)]
        volumes: bool,
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
    /// Print a build's output
    Logs { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// Roll a release out, making it the active one
    Promote { id: String },
    /// Make a new release with an older release's build and environment, and roll it out
    Rollback { id: String },
    /// Show a release: its build, the env keys and manifest lines changed since the one before
    Info {
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Print one variable's value
    Get { key: String },
    /// Set variables (a new release; rolled out with --promote)
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Roll the new release out
        #[arg(long)]
        promote: bool,
    },
    /// Remove variables (a new release; rolled out with --promote)
    Unset {
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// Roll the new release out
        #[arg(long)]
        promote: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PsCommand {
    /// Stop a process (the supervisor replaces it if its service still wants it)
    Stop { id: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn app_flag_before_or_after_subcommand() -> Result<(), clap::Error> {
        for args in [
            &["env", "-a", "shop", "set", "A=1"][..],
            &["env", "set", "A=1", "-a", "shop"][..],
            &["env", "set", "--app", "shop", "A=1"][..],
        ] {
            match parse(args)?.command {
                Command::Env {
                    app,
                    command: Some(EnvCommand::Set { pairs, promote }),
                    ..
                } => {
                    assert_eq!(app.app.as_deref(), Some("shop"), "{args:?}");
                    assert_eq!(pairs, ["A=1"]);
                    assert!(!promote);
                }
                other => panic!("{other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn scale_needs_a_change() -> Result<(), clap::Error> {
        assert!(parse(&["scale", "web"]).is_err());
        assert!(parse(&["scale", "web", "--cpu", "0"]).is_err());
        assert!(parse(&["scale", "web", "--memory", "0"]).is_err());
        match parse(&["scale", "web", "--count", "3", "--cpu", "0.5"])?.command {
            Command::Scale {
                service,
                count,
                memory,
                cpu,
                ..
            } => {
                assert_eq!(
                    (service.as_str(), count, memory, cpu),
                    ("web", Some(3), None, Some(0.5))
                );
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn deploy_defaults() -> Result<(), clap::Error> {
        match parse(&["deploy"])?.command {
            Command::Deploy(s) => {
                assert_eq!(s.dir, PathBuf::from("."));
                assert_eq!(s.manifest, PathBuf::from("berth.yml"));
                assert_eq!(s.app.app, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["build", "app", "-f", "k8s/pod.yml", "-a", "x"])?.command {
            Command::Build(s) => {
                assert_eq!(s.dir, PathBuf::from("app"));
                assert_eq!(s.manifest, PathBuf::from("k8s/pod.yml"));
                assert_eq!(s.app.app.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn logs_since_is_seconds() -> Result<(), clap::Error> {
        match parse(&["logs", "--since", "10m", "--follow", "-s", "web"])?.command {
            Command::Logs {
                since,
                follow,
                service,
                ..
            } => {
                assert_eq!(
                    (since, follow, service.as_deref()),
                    (Some(600), true, Some("web"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["logs", "--since", "10x"]).is_err());
        Ok(())
    }

    #[test]
    fn server_defaults() -> Result<(), clap::Error> {
        match parse(&["server"])?.command {
            Command::Server(s) => {
                assert_eq!(s.api.to_string(), "127.0.0.1:7070");
                assert_eq!(s.http.to_string(), "127.0.0.1:8080");
                assert_eq!(s.domain, "localhost");
                assert_eq!(s.data, None);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn json_on_read_commands() -> Result<(), clap::Error> {
        for args in [
            &["apps", "--json"][..],
            &["apps", "info", "shop", "--json"][..],
            &["builds", "--json"][..],
            &["releases", "--json"][..],
            &["env", "--json"][..],
            &["ps", "--json"][..],
            &["rack", "--json"][..],
            &["logs", "--json"][..],
        ] {
            parse(args)?;
        }
        Ok(())
    }
}
