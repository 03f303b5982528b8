//! The top layer: runs what the command line asks for.

use crate::cli::{Cli, Command, RackCommand};
use crate::commands::{
    access, apps, backup, builds, certs, drains, env, image, logs, oneoff, processes, rack,
    releases, resources, source, volumes,
};
use anyhow::Result;
use berth_api::ScaleRequest;
use berth_client::LogsQuery;
use std::io::Write;

pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Server(args) => crate::server::run(*args).await,
        Command::Router(args) => crate::router::run(args).await,
        Command::Agent(args) => crate::agent::run(args).await,
        Command::Install(args) => crate::install::install(args),
        Command::Uninstall(args) => crate::install::uninstall(args),
        Command::Login {
            url,
            token,
            name,
            ca_cert,
            ca_sha256,
        } => {
            let trust = match (ca_cert, ca_sha256) {
                (Some(file), _) => rack::LoginTrust::CaFile(file),
                (None, Some(fp)) => rack::LoginTrust::Fingerprint(fp),
                (None, None) => rack::LoginTrust::Default,
            };
            rack::login(&url, &token, name.as_deref(), trust).await
        }
        Command::Switch { name, json } => rack::switch(name.as_deref(), json.json),
        Command::Apps { app, json, command } => apps::run(app, json, command).await,
        Command::Build(args) => source::build(args).await,
        Command::Deploy(args) if args.image.is_some() => image::deploy(args).await,
        Command::Deploy(args) => source::deploy(args).await,
        Command::Start(args) => crate::start::run(args).await,
        Command::Builds { app, json, command } => builds::run(app, json, command).await,
        Command::Releases { app, json, command } => releases::run(app, json, command).await,
        Command::Env {
            app,
            json,
            effective,
            command,
        } => env::run(app, json, effective, command).await,
        Command::Scale {
            app,
            service,
            count,
            memory,
            cpu,
        } => processes::scale(app, service, ScaleRequest { count, memory, cpu }).await,
        Command::Ps { app, json, command } => processes::ps(app, json, command).await,
        Command::Top { sort, json } => processes::top(sort, json).await,
        Command::Run(args) => oneoff::run(args).await,
        Command::Exec(args) => oneoff::exec(args).await,
        Command::Timers { app, json } => oneoff::timers(app, json).await,
        Command::Restart { app, service } => processes::restart(app, service).await,
        Command::Logs {
            app,
            json,
            follow,
            tail,
            since,
            until,
            service,
            process,
            source,
            grep,
        } => {
            let query = LogsQuery {
                since,
                until,
                service,
                process,
                source,
                grep,
                tail: None,
                follow,
            };
            logs::run(app, json, tail, query).await
        }
        Command::Rack {
            command:
                Some(RackCommand::Backup {
                    with_key,
                    passphrase_file,
                }),
            ..
        } => backup::backup(with_key, passphrase_file).await,
        Command::Rack {
            command:
                Some(RackCommand::Restore {
                    data_dir,
                    passphrase_file,
                    master_key,
                }),
            ..
        } => backup::restore(data_dir, passphrase_file, master_key).await,
        Command::Rack {
            json,
            command: Some(RackCommand::Logs { follow, tail }),
        } => logs::rack(json.json, tail, follow).await,
        Command::Rack { json, command } => rack::run(json, command).await,
        Command::Instances { json, command } => rack::instances(json, command).await,
        Command::Volumes { app, json, command } => volumes::run(app, json, command).await,
        Command::Resources { app, json, command } => resources::run(app, json, command).await,
        Command::Services { app, json } => apps::services(app, json).await,
        Command::Tokens { json, command } => access::tokens(json, command).await,
        Command::Certs { json, command } => certs::run(json, command).await,
        Command::Drains { app, json, command } => drains::run(app, json, command).await,
        Command::Audit { json, limit } => access::audit(json, limit).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Into memory first: clap_complete panics when it cannot write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "berth", &mut script);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)?;
            out.flush()?;
            Ok(())
        }
    }
}
