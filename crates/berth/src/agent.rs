//! `berth agent`: the process on every Swarm node (see `berth_agent`).

use crate::cli::AgentArgs;
use crate::daemon;
use anyhow::{Context, Result};

pub async fn run(args: AgentArgs) -> Result<()> {
    daemon::init_logging(false);
    let shutdown =
        daemon::shutdown_signal("agent: ", "stopping (the node's router keeps serving)")?;
    let ca_pem = match (&args.ca_cert, &args.ca_sha256) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?,
        ),
        (None, Some(fingerprint)) => {
            Some(berth_client::fetch_pinned_ca(&args.server, fingerprint).await?)
        }
        (None, None) => None,
    };
    let options = berth_agent::AgentOptions {
        server: args.server,
        token: args.token,
        ca_pem,
        listen: args.listen,
        advertise: args.advertise,
        data_dir: args.data,
        exe: std::env::current_exe().context("cannot find the berth binary")?,
    };
    berth_agent::run(options, shutdown).await?;
    Ok(())
}
