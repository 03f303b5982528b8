//! `berth server`: runs the server in the foreground until SIGTERM or SIGINT.

use crate::cli::ServerArgs;
use crate::daemon;
use anyhow::{Context, Result, anyhow};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub async fn run(args: ServerArgs) -> Result<()> {
    let data_dir = match args.data {
        Some(dir) => dir,
        None => default_data_dir(
            is_root(),
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
        )
        .ok_or_else(|| {
            anyhow!("cannot choose a data directory: HOME is not set; pass --data DIR")
        })?,
    };
    // The server's log goes to stderr and to DATA/rack-logs/ (`berth rack logs`).
    let file = berth_server::logs::rack::ServerLogFile::open(&data_dir);
    let file_error = file.as_ref().err().map(ToString::to_string);
    daemon::init_logging_to(std::io::stderr().is_terminal(), file.ok());
    if let Some(e) = file_error {
        tracing::warn!(
            "cannot write the server's log to {}: {e}; it goes to stderr only, and `berth rack logs` will not show it",
            berth_server::logs::rack::server_log_path(&data_dir).display()
        );
    }
    let outcome = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || berth_server::init(&dir))
            .await
            .context("the server's initialisation panicked")?
            .with_context(|| {
                format!(
                    "cannot initialise the data directory {}",
                    data_dir.display()
                )
            })?
    };
    let api_tls = berth_server::ApiTls {
        force: args.tls,
        files: args.tls_cert.zip(args.tls_key),
        names: args.api_name,
    };
    let https = api_tls.https(args.api);
    // The CLI entry of an HTTPS API carries the CA that signed its certificate.
    let ca_pem = if https && api_tls.files.is_none() {
        let dir = data_dir.clone();
        let ca = tokio::task::spawn_blocking(move || {
            berth_server::cluster_ca::ClusterCa::load_or_create(&dir)
        })
        .await
        .context("loading the cluster CA panicked")??;
        Some(ca.ca_pem().to_string())
    } else {
        None
    };
    if let Some(token) = outcome.new_admin_token {
        announce_admin_token(&token, &data_dir, args.api, https, ca_pem);
    }

    let shutdown = daemon::shutdown_signal("", "shutting down")?;
    // A server started by `berth rack update` serves the API socket its
    // launcher kept open.
    let api_listener = berth_server::update::inherited_api_socket(args.api).map(Arc::new);
    let config = berth_server::ServerConfig {
        data_dir,
        api_addr: args.api,
        http_addr: args.http,
        domain: args.domain,
        router: berth_server::RouterConfig {
            exe: std::env::current_exe()
                .context("cannot find the berth binary to start the router")?,
            threads: args.router_threads.map(usize::from),
            limits: berth_router::Limits {
                max_body: Some(args.max_body.saturating_mul(1024 * 1024)),
                max_head: usize::try_from(args.max_header_size * 1024).unwrap_or(usize::MAX),
                body_timeout: std::time::Duration::from_secs(args.body_timeout),
            },
            https: args.https,
        },
        acme: args
            .acme_directory
            .map(|directory| berth_server::acme::AcmeConfig {
                directory,
                email: args.acme_email,
                ca_cert: args.acme_ca_cert,
            }),
        network_pool: args.network_pool,
        max_upload: args.max_upload.saturating_mul(1024 * 1024),
        api_tls,
        swarm: args.swarm,
        metrics_addr: args.metrics,
        log_retention: berth_server::logs::Retention {
            max_age_secs: args.log_retention,
            max_bytes: args.log_max_size,
        },
        stop_router: false,
        api_listener,
    };
    // Made now, so that a SIGTERM while the server drains for an update
    // stops the update too.
    let signal = daemon::shutdown_signal("", "stopping")?;
    match berth_server::run(config.clone(), shutdown).await? {
        berth_server::Exit::Stopped => Ok(()),
        berth_server::Exit::Update(api) => {
            // The hand-over replaces this process (exec); it only comes back when
            // told to stop meanwhile, or when even the old binary could not be
            // started again.
            let args: Vec<OsString> = std::env::args_os().skip(1).collect();
            let data_dir = config.data_dir;
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watch = {
                let stop = stop.clone();
                tokio::spawn(async move {
                    signal.await;
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                })
            };
            let ended = tokio::task::spawn_blocking(move || {
                berth_server::update::switch(&data_dir, &api, &args, &stop)
            })
            .await
            .context("the update's hand-over panicked")?;
            watch.abort();
            match ended {
                berth_server::update::Ended::Stopped => Ok(()),
                berth_server::update::Ended::Failed(err) => {
                    Err(anyhow!(err).context("the update could not start a server again"))
                }
            }
        }
    }
}

/// Prints the new admin token once and adds this server to the CLI config, saying
/// whether it became the current server or another one stays current.
fn announce_admin_token(
    token: &str,
    data_dir: &std::path::Path,
    api: SocketAddr,
    https: bool,
    ca_pem: Option<String>,
) {
    let token_file = data_dir.join("admin.token");
    let host = cli_host(api, https);
    match berth_client::config::add_local(&host, token, ca_pem) {
        Ok(saved) => println!(
            "admin token: {token}; saved to {} and to the CLI config {}",
            token_file.display(),
            config_outcome(&saved)
        ),
        Err(e) => {
            println!("admin token: {token}; saved to {}", token_file.display());
            tracing::warn!("could not save the CLI config: {e}");
        }
    }
}

fn config_outcome(saved: &berth_client::config::LocalSaved) -> String {
    let path = saved.path.display();
    match saved.current.as_deref() {
        Some(current) if current == saved.name => {
            format!("({path}) as server {}, now the current one", saved.name)
        }
        Some(current) => format!(
            "({path}) as server {name}; the current server is still {current}: use this one with `berth switch {name}`",
            name = saved.name
        ),
        None => format!(
            "({path}) as server {name}; pick the current server with `berth switch {name}`",
            name = saved.name
        ),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `/var/lib/berth` for root, else `$XDG_DATA_HOME/berth` (absolute only, per the XDG
/// spec), else `~/.local/share/berth`.
pub fn default_data_dir(
    root: bool,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from("/var/lib/berth"));
    }
    match xdg_data_home.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => Some(dir.join("berth")),
        _ => {
            let home = home.filter(|h| !h.is_empty())?;
            Some(PathBuf::from(home).join(".local/share/berth"))
        }
    }
}

/// The URL the CLI should use for an API listening on `addr`: a wildcard address is
/// reached through loopback.
pub fn cli_host(addr: SocketAddr, https: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_defaults() {
        let home = Some(OsString::from("/home/u"));
        assert_eq!(
            default_data_dir(true, None, home.clone()),
            Some("/var/lib/berth".into())
        );
        assert_eq!(
            default_data_dir(false, Some("/x/data".into()), home.clone()),
            Some("/x/data/berth".into())
        );
        assert_eq!(
            default_data_dir(false, Some("rel".into()), home.clone()),
            Some("/home/u/.local/share/berth".into())
        );
        assert_eq!(
            default_data_dir(false, None, home),
            Some("/home/u/.local/share/berth".into())
        );
        assert_eq!(default_data_dir(false, None, None), None);
    }

    #[test]
    fn cli_host_uses_loopback_for_wildcards() -> Result<(), std::net::AddrParseError> {
        assert_eq!(
            cli_host("127.0.0.1:7070".parse()?, false),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            cli_host("0.0.0.0:7070".parse()?, true),
            "https://127.0.0.1:7070"
        );
        assert_eq!(cli_host("[::]:7070".parse()?, false), "http://[::1]:7070");
        assert_eq!(cli_host("10.0.0.5:1".parse()?, true), "https://10.0.0.5:1");
        Ok(())
    }
}
