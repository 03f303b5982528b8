//! `berth tokens` and `berth audit`.

use crate::output::{age, or_dash, table};
use anyhow::{Result, bail};
use berth_client::Client;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret (shown this once)
    Create {
        /// admin (everything), deploy (builds, releases, env, scale, restart, ps stop and
        /// reads), or read (read-only, no env values)
        #[arg(long, value_name = "ROLE", value_parser = ["admin", "deploy", "read"])]
        role: String,
        /// Limit the token to this app
        #[arg(long, value_name = "APP")]
        app: Option<String>,
    },
    /// Revoke a token; requests with it are refused from now on
    Revoke { id: String },
}

pub async fn tokens(client: &Client, json: bool, command: Option<TokensCommand>) -> Result<()> {
    match command {
        None => {
            let tokens = client.tokens().await?;
            if json {
                return crate::commands::print_json(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.role.clone(),
                        or_dash(t.app.as_ref()),
                        age(Some(&t.created)),
                        age(t.last_used.as_deref()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["id", "role", "app", "created", "last-used"], &rows)
            );
            Ok(())
        }
        Some(TokensCommand::Create { role, app }) => {
            if let Some(app) = &app {
                if role == "admin" {
                    bail!("an admin token covers every app; drop --app or use --role deploy");
                }
                berth_core::validate_app_name(app)?;
            }
            let created = client.create_token(&role, app.as_deref()).await?;
            if json {
                return crate::commands::print_json(&created);
            }
            let scope = created
                .token
                .app
                .as_ref()
                .map(|a| format!(" for app {a}"))
                .unwrap_or_default();
            eprintln!(
                "created {} token {}{scope}; the secret below is shown only this once:",
                created.token.role, created.token.id
            );
            println!("{}", created.secret);
            Ok(())
        }
        Some(TokensCommand::Revoke { id }) => {
            client.revoke_token(&id).await?;
            println!("revoked token {id}");
            Ok(())
        }
    }
}

pub async fn audit(client: &Client, json: bool, limit: u32) -> Result<()> {
    let entries = client.audit(limit).await?;
    if json {
        return crate::commands::print_json(&entries);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.token.clone(),
                e.role.clone(),
                e.method.clone(),
                e.path.clone(),
                e.status.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["time", "token", "role", "method", "path", "status"],
            &rows
        )
    );
    Ok(())
}
