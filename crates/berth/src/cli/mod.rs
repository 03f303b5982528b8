//! The command line, as clap derive types: every type clap parses is here, and this
//! layer uses nothing of the crate but the value parsers in `resolve`.

mod app;
mod flags;
mod rack;

pub use app::{
    AppsCommand, BuildsCommand, EnvCommand, ExecArgs, PsCommand, ReleasesCommand, ResourcesCommand,
    RunArgs, SourceArgs, StartArgs, VolumesCommand,
};
pub use flags::{AppArg, JsonArg, Tail};
pub use rack::{
    AgentArgs, CertsCommand, DrainsCommand, InstallArgs, InstancesCommand, RackCommand, RouterArgs,
    ServerArgs, TokensCommand, UninstallArgs,
};

use clap::{ArgGroup, Parser, Subcommand};

/// The order of `berth top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopSort {
    /// CPU share, highest first
    Cpu,
    /// Memory used, highest first
    Mem,
}

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version = berth_core::version::version(),
    about = "berth: a self-hosted PaaS. Deploy apps to your own server with `berth deploy`.",
    after_help = "The server and token come from BERTH_HOST and BERTH_TOKEN, else from the current server of the CLI config (`berth login` adds servers, `berth switch` picks one).\nThe app is --app/-a, else `app:` in ./berth.yml, else the current directory's name."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the berth server (API, router, deployer) in the foreground
    Server(Box<ServerArgs>),

    /// Run the agent of a Swarm node: it gives the server this node's engine and runs
    /// the node's router (the command is printed by `berth instances join`)
    Agent(AgentArgs),

    /// Set berth up as a systemd service on this machine (as root): the server, or with
    /// --agent the agent of a Swarm node; safe to run again (new flags, new binary)
    Install(InstallArgs),

    /// Remove what `berth install` set up; the data stays unless --purge
    Uninstall(UninstallArgs),

    /// Run the HTTP router process (started by `berth server`, which it outlives)
    #[command(hide = true)]
    Router(RouterArgs),

    /// Check a server URL and token, then save them to the CLI config as the current server
    Login {
        /// The server's API URL (the --api of `berth server`), e.g. http://127.0.0.1:7070
        url: String,
        /// An API token (the server prints the admin token on its first start)
        #[arg(long, value_name = "T")]
        token: String,
        /// Save it under this name [default: the name it has, else one made from URL]
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// Trust only this PEM CA certificate for the server's HTTPS (its DATA/ca/ca.pem)
        #[arg(long, value_name = "FILE", conflicts_with = "ca_sha256")]
        ca_cert: Option<std::path::PathBuf>,
        /// Fetch the server's CA certificate (URL/ca.pem), check that its SHA-256 is FP
        /// (as `berth instances join` prints it) and trust only it from now on
        #[arg(long, value_name = "FP")]
        ca_sha256: Option<String>,
    },

    /// List the servers saved in the CLI config (the current one marked *), or make one current
    Switch {
        /// The server to use from now on, as named in the list
        name: Option<String>,
        #[command(flatten)]
        json: JsonArg,
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

    /// Run the app in DIR on this machine's Docker engine, as a server would run it:
    /// builds, runs every service, streams their logs, copies changed files into the
    /// running containers (rebuilding when the Dockerfile, berth.yml or other files
    /// change); Ctrl-C stops and removes it all (no `berth server` or token needed)
    Start(StartArgs),

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

    /// Print an app's environment (KEY=VALUE, sorted, with berth.yml's defaults, grouped
    /// by where each value comes from), or change it
    Env {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        /// With --json: every value the processes get (berth.yml's defaults too), each with
        /// its source, instead of the {KEY: VALUE} object of the values set with `env set`
        #[arg(long)]
        effective: bool,
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
        /// Memory limit per process, in MiB (at least 1)
        #[arg(long, value_name = "MIB", value_parser = crate::resolve::parse_memory)]
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

    /// Every process of the rack, busiest first: APP ID SERVICE STATE CPU MEM; refreshed
    /// every 2 s on a terminal, printed once with --json or when piped
    Top {
        /// What to sort by
        #[arg(long, value_enum, default_value_t = TopSort::Cpu)]
        sort: TopSort,
        #[command(flatten)]
        json: JsonArg,
    },

    /// Run a one-off process of a service, e.g. `berth run web -- ./migrate`; exits with its exit code
    Run(RunArgs),

    /// Run a command inside a running process, e.g. `berth exec web-3f9a2c -- sh`
    Exec(ExecArgs),

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

    /// Print an app's logs in time order: TIME SOURCE TEXT
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// Print NDJSON: one JSON object a line ({"ts", "source", "text"}, and
        /// "service" on events about a service), not one JSON array
        #[arg(long)]
        json: bool,
        /// Keep printing new lines as they come (each is held up to 1 s to be printed in time order)
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines, or `all` [default: a screenful on a terminal, all when piped]
        #[arg(short = 'n', long, value_name = "N", value_parser = flags::parse_tail)]
        tail: Option<Tail>,
        /// Only lines this recent: 30s, 10m, 2h, 1d
        #[arg(long, value_name = "DURATION", value_parser = crate::resolve::parse_duration)]
        since: Option<u64>,
        /// Only lines older than this: 30s, 10m, 2h, 1d (with --since, a window)
        #[arg(long, value_name = "DURATION", value_parser = crate::resolve::parse_duration)]
        until: Option<u64>,
        /// Only lines of this service
        #[arg(short = 's', long, value_name = "SERVICE")]
        service: Option<String>,
        /// Only the output of this process (an ID from `berth ps`)
        #[arg(short = 'p', long, value_name = "ID")]
        process: Option<String>,
        /// Only lines from build, process, timer, router or system (berth's events)
        #[arg(long, value_name = "KIND", value_parser = ["build", "process", "timer", "router", "system"])]
        source: Option<String>,
        /// Only lines whose text holds TEXT (case-sensitive)
        #[arg(short = 'g', long, value_name = "TEXT")]
        grep: Option<String>,
    },

    /// Show the server's version, uptime, engine, domain, router and counts
    Rack {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<RackCommand>,
    },

    /// List the rack's machines (ID HOSTNAME ROLE STATUS AVAILABILITY AGENT PROCESSES CPU MEM),
    /// or join, drain or re-activate a node of a swarm
    Instances {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<InstancesCommand>,
    },

    /// List an app's volumes (NAME SIZE USED-BY), or back one up or restore it
    Volumes {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<VolumesCommand>,
    },

    /// List an app's resources (NAME TYPE STATUS URL, the password masked), or show,
    /// reveal, back up or restore one
    Resources {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<ResourcesCommand>,
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
        command: Option<TokensCommand>,
    },

    /// List the router's TLS certificates, or import, generate, delete one
    Certs {
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<CertsCommand>,
    },

    /// List log drains (ID URL APP SENT DROPPED BUFFERED ERROR), or add or remove one
    Drains {
        /// This app's drains only (without: every drain; adding or removing
        /// one without an app makes or removes a rack-wide drain, admin only)
        #[arg(short = 'a', long = "app", value_name = "APP", global = true)]
        app: Option<String>,
        #[command(flatten)]
        json: JsonArg,
        #[command(subcommand)]
        command: Option<DrainsCommand>,
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
        /// The shell the script is for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;

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

    /// `--help` describes every positional argument of every command.
    #[test]
    fn every_positional_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_positionals() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{}>", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "berth", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }

    #[test]
    fn memory_is_at_least_one_mib() {
        let e = parse(&["scale", "web", "--memory", "0"])
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("at least 1 MiB")),
            "{e:?}"
        );
        assert!(parse(&["scale", "web", "--memory", "256"]).is_ok());
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
    fn logs_tail_is_a_count_or_all() -> Result<(), clap::Error> {
        for (args, want) in [
            (&["logs", "--tail", "50"][..], Some(Tail::Last(50))),
            (&["logs", "-n", "all", "-f"][..], Some(Tail::All)),
            (&["logs"][..], None),
        ] {
            match parse(args)?.command {
                Command::Logs { tail, .. } => assert_eq!(tail, want, "{args:?}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(parse(&["logs", "--tail", "-3"]).is_err());
        assert!(parse(&["logs", "--tail", "some"]).is_err());
        Ok(())
    }

    #[test]
    fn logs_help_says_json_is_ndjson() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("logs")
            .map(|logs| logs.render_long_help().to_string())
            .unwrap_or_default();
        assert!(help.contains("NDJSON"), "{help}");
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

    /// The parsed command of a line that must parse.
    fn command(args: &[&str]) -> Command {
        match Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied())) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn day_two_command_lines() {
        match command(&["volumes", "backup", "data", "-a", "shop"]) {
            Command::Volumes {
                app,
                command: Some(VolumesCommand::Backup { name }),
                ..
            } => assert_eq!((app.app.as_deref(), name.as_str()), (Some("shop"), "data")),
            other => panic!("{other:?}"),
        }
        match command(&["rack", "prune", "--json"]) {
            Command::Rack {
                command: Some(RackCommand::Prune { json }),
                ..
            } => assert!(json.json),
            other => panic!("{other:?}"),
        }
        match command(&["rack", "restore", "--data-dir", "/d", "--master-key", "/k"]) {
            Command::Rack {
                command:
                    Some(RackCommand::Restore {
                        data_dir,
                        master_key,
                        passphrase_file: None,
                    }),
                ..
            } => assert_eq!(
                (
                    data_dir.to_str(),
                    master_key.as_deref().and_then(|k| k.to_str())
                ),
                (Some("/d"), Some("/k"))
            ),
            other => panic!("{other:?}"),
        }
        // A passphrase file only makes sense with the key in the archive.
        assert!(
            Cli::try_parse_from(["berth", "rack", "backup", "--passphrase-file", "p"]).is_err()
        );
        match command(&["deploy", "--image", "shop:dev", "-a", "shop"]) {
            Command::Deploy(s) => assert_eq!(s.image.as_deref(), Some("shop:dev")),
            other => panic!("{other:?}"),
        }
        match command(&["apps", "delete", "shop", "--volumes"]) {
            Command::Apps {
                command: Some(AppsCommand::Delete { name, volumes, yes }),
                ..
            } => assert!(name == "shop" && volumes && !yes),
            other => panic!("{other:?}"),
        }
        match command(&["releases", "info", "R2", "--json"]) {
            Command::Releases {
                command: Some(ReleasesCommand::Info { id, json }),
                ..
            } => assert!(id == "R2" && json.json),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            command(&["services", "--json"]),
            Command::Services { json, .. } if json.json
        ));
        for (args, want) in [
            (&["releases", "promote", "R1"][..], false),
            (&["releases", "promote", "R1", "--force"][..], true),
        ] {
            match command(args) {
                Command::Releases {
                    command: Some(ReleasesCommand::Promote { id, force }),
                    ..
                } => assert!(id == "R1" && force == want, "{args:?}"),
                other => panic!("{other:?}"),
            }
        }
        match command(&["releases", "rollback", "R4", "--force", "-a", "shop"]) {
            Command::Releases {
                command: Some(ReleasesCommand::Rollback { id, force }),
                ..
            } => assert!(id == "R4" && force),
            other => panic!("{other:?}"),
        }
        match command(&["env", "get", "PORT", "--service", "web", "--json"]) {
            Command::Env {
                command: Some(EnvCommand::Get { key, service, json }),
                ..
            } => assert!(key == "PORT" && service.as_deref() == Some("web") && json.json),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            command(&["env", "--json", "--effective"]),
            Command::Env { json, effective: true, .. } if json.json
        ));
    }

    #[test]
    fn json_on_read_commands() -> Result<(), clap::Error> {
        for args in [
            &["apps", "--json"][..],
            &["apps", "info", "shop", "--json"][..],
            &["apps", "--json", "info", "shop"][..],
            &["builds", "--json"][..],
            &["builds", "logs", "B1", "--json"][..],
            &["builds", "--json", "logs", "B1"][..],
            &["releases", "--json"][..],
            &["releases", "info", "R1", "--json"][..],
            &["env", "--json"][..],
            &["env", "get", "K", "--json"][..],
            &["env", "--json", "get", "K"][..],
            &["ps", "--json"][..],
            &["rack", "--json"][..],
            &["rack", "prune", "--json"][..],
            &["logs", "--json"][..],
            &["services", "--json"][..],
            &["volumes", "--json"][..],
            &["resources", "--json"][..],
            &["resources", "info", "db", "--json"][..],
            &["timers", "--json"][..],
            &["tokens", "--json"][..],
            &["audit", "--json"][..],
            &["certs", "--json"][..],
            &["drains", "--json"][..],
            &["drains", "-a", "shop", "--json"][..],
        ] {
            parse(args)?;
        }
        Ok(())
    }

    /// `--json` is taken where JSON is printed, and nowhere it would be ignored.
    #[test]
    fn json_after_tokens_create_and_not_after_writes() -> Result<(), clap::Error> {
        for args in [
            &["tokens", "create", "--role", "read", "--json"][..],
            &["tokens", "--json", "create", "--role", "read"][..],
        ] {
            match parse(args)?.command {
                Command::Tokens {
                    json,
                    command: Some(TokensCommand::Create { json: inner, .. }),
                } => assert!(json.json || inner.json, "{args:?}"),
                other => panic!("{other:?}"),
            }
        }
        for args in [
            &["apps", "create", "shop", "--json"][..],
            &["env", "set", "A=1", "--json"][..],
            &["tokens", "revoke", "t1", "--json"][..],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted --json");
        }
        Ok(())
    }
}
