//! `berth certs`: the TLS certificates the router serves over `--https`.

use crate::cli::{CertsCommand, JsonArg};
use crate::output::print_list;
use anyhow::{Context, Result};
use berth_client::Client;

pub async fn run(json: JsonArg, command: Option<CertsCommand>) -> Result<()> {
    let client = Client::from_config()?;
    match command {
        None => {
            let certs = client.certs().await?;
            print_list(
                &certs,
                json.json,
                &[
                    "ID",
                    "DOMAINS",
                    "EXPIRES",
                    "SOURCE",
                    "DEFAULT",
                    "OCSP STAPLED UNTIL",
                ],
                |c| {
                    vec![
                        c.id.clone(),
                        c.domains.join(","),
                        c.not_after.clone(),
                        c.source.clone(),
                        if c.default { "yes" } else { "-" }.to_string(),
                        c.ocsp_good_until.clone().unwrap_or_else(|| "-".into()),
                    ]
                },
            )
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
        Some(CertsCommand::Default { id }) => {
            let c = client.default_cert(&id).await?;
            println!(
                "{} ({}) is served to clients that send no server name",
                c.id,
                c.domains.join(", ")
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
