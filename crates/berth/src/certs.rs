//! `berth certs`: the TLS certificates the router serves over `--https`.

use crate::commands::print_json;
use crate::output::table;
use anyhow::{Context, Result};
use berth_client::Client;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Store a certificate chain and its private key (PEM files)
    Import {
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
        #[arg(value_name = "KEY.pem")]
        key: PathBuf,
    },
    /// Make a self-signed certificate for DOMAINs (`*.example.com` allowed)
    Generate {
        #[arg(value_name = "DOMAIN", required = true)]
        domains: Vec<String>,
    },
    /// Remove a certificate
    Delete { id: String },
}

pub async fn certs(client: &Client, json: bool, command: Option<CertsCommand>) -> Result<()> {
    match command {
        None => {
            let certs = client.certs().await?;
            if json {
                return print_json(&certs);
            }
            let rows: Vec<Vec<String>> = certs
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.domains.join(","),
                        c.not_after.clone(),
                        c.source.clone(),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "DOMAINS", "EXPIRES", "SOURCE"], &rows));
            Ok(())
        }
        Some(CertsCommand::Import { cert, key }) => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the private key {}", key.display()))?;
            let c = client.import_cert(cert_pem, key_pem).await?;
            println!(
                "imported {} for {} (expires {})",
                c.id,
                c.domains.join(", "),
                c.not_after
            );
            Ok(())
        }
        Some(CertsCommand::Generate { domains }) => {
            let c = client.generate_cert(domains).await?;
            println!(
                "generated self-signed {} for {} (expires {}); browsers will not trust it",
                c.id,
                c.domains.join(", "),
                c.not_after
            );
            Ok(())
        }
        Some(CertsCommand::Delete { id }) => {
            client.delete_cert(&id).await?;
            println!("deleted {id}");
            Ok(())
        }
    }
}
