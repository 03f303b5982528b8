//! `berth drains`: where app logs are forwarded (syslog, OTLP).

use crate::cli::{DrainsCommand, JsonArg};
use crate::output::print_list;
use anyhow::{Context, Result};
use berth_api::AddDrain;
use berth_client::Client;

pub async fn run(app: Option<String>, json: JsonArg, command: Option<DrainsCommand>) -> Result<()> {
    let client = Client::from_config()?;
    let app = app.as_deref();
    match command {
        None => {
            let drains = client.drains(app).await?;
            print_list(
                &drains,
                json.json,
                &["ID", "URL", "APP", "SENT", "DROPPED", "BUFFERED", "ERROR"],
                |d| {
                    vec![
                        d.id.clone(),
                        d.url.clone(),
                        d.app.clone().unwrap_or_else(|| "(rack)".into()),
                        d.sent.to_string(),
                        d.dropped.to_string(),
                        format!("{}/{}", d.buffered, d.max_bytes),
                        d.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]
                },
            )
        }
        Some(DrainsCommand::Add {
            url,
            ca,
            max_buffer,
        }) => {
            let ca_pem = match ca {
                Some(path) => Some(std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the CA certificate {}", path.display())
                })?),
                None => None,
            };
            let d = client
                .add_drain(
                    app,
                    &AddDrain {
                        url,
                        ca_pem,
                        max_bytes: max_buffer,
                    },
                )
                .await?;
            match &d.app {
                Some(app) => println!("added {} for app {app}: {}", d.id, d.url),
                None => println!("added {} for every app: {}", d.id, d.url),
            }
            Ok(())
        }
        Some(DrainsCommand::Remove { id }) => {
            client.remove_drain(app, &id).await?;
            println!("removed {id}");
            Ok(())
        }
    }
}
