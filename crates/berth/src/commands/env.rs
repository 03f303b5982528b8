//! `berth env`: print, get, set and unset an app's environment.

use crate::cli::{AppArg, EnvCommand, JsonArg};
use crate::output::print_json;
use crate::progress::finish;
use crate::resolve;
use anyhow::{Result, bail};
use berth_api::EnvChange;
use berth_client::Client;
use std::io::Write;

pub async fn run(app: AppArg, json: JsonArg, command: Option<EnvCommand>) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    match command {
        None => {
            let env = Client::from_config()?.env(&app).await?;
            if json.json {
                return print_json(&env);
            }
            let mut out = std::io::stdout().lock();
            for (k, v) in &env {
                writeln!(out, "{k}={v}")?;
            }
            Ok(())
        }
        Some(EnvCommand::Get { key }) => {
            resolve::check_env_key(&key)?;
            let env = Client::from_config()?.env(&app).await?;
            match env.get(&key) {
                Some(v) => {
                    println!("{v}");
                    Ok(())
                }
                None => bail!("{key} is not set in the environment of app {app}"),
            }
        }
        Some(EnvCommand::Set { pairs, promote }) => {
            let mut change = EnvChange {
                promote,
                ..EnvChange::default()
            };
            for pair in &pairs {
                let (k, v) = resolve::parse_env_pair(pair)?;
                change.set.insert(k, v);
            }
            finish(Client::from_config()?.change_env(&app, &change).await?).await
        }
        Some(EnvCommand::Unset { keys, promote }) => {
            for key in &keys {
                resolve::check_env_key(key)?;
            }
            let mut unset = keys;
            unset.sort();
            unset.dedup();
            let change = EnvChange {
                unset,
                promote,
                ..EnvChange::default()
            };
            finish(Client::from_config()?.change_env(&app, &change).await?).await
        }
    }
}
