//! `berth tokens` and `berth audit`.

use crate::cli::{JsonArg, TokensCommand};
use crate::output::{age, or_dash, print_json, print_list};
use anyhow::{Result, bail};
use berth_client::Client;

pub async fn tokens(json: JsonArg, command: Option<TokensCommand>) -> Result<()> {
    let client = Client::from_config()?;
    let json = json.json;
    match command {
        None => {
            let tokens = client.tokens().await?;
            print_list(
                &tokens,
                json,
                &["id", "role", "app", "created", "last-used"],
                |t| {
                    vec![
                        t.id.clone(),
                        t.role.clone(),
                        or_dash(t.app.as_ref()),
                        age(Some(&t.created)),
                        age(t.last_used.as_deref()),
                    ]
                },
            )
        }
        Some(TokensCommand::Create {
            role,
            app,
            json: create_json,
        }) => {
            if let Some(app) = &app {
                if role == "admin" {
                    bail!("an admin token covers every app; drop --app or use --role deploy");
                }
                berth_core::validate_app_name(app)?;
            }
            let created = client.create_token(&role, app.as_deref()).await?;
            if json || create_json.json {
                return print_json(&created);
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

pub async fn audit(json: JsonArg, limit: u32) -> Result<()> {
    let entries = Client::from_config()?.audit(limit).await?;
    print_list(
        &entries,
        json.json,
        &["time", "token", "role", "method", "path", "status"],
        |e| {
            vec![
                e.time.clone(),
                e.token.clone(),
                e.role.clone(),
                e.method.clone(),
                e.path.clone(),
                e.status.to_string(),
            ]
        },
    )
}
