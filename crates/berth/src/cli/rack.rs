//! The subcommands and arguments of rack-wide commands, and of the server and router
//! processes.

use super::flags::JsonArg;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Data directory [default: /var/lib/berth as root, else $XDG_DATA_HOME/berth or ~/.local/share/berth]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address of the API; served over HTTPS unless it is a loopback address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub api: SocketAddr,
    /// Serve the API over HTTPS on a loopback address too
    #[arg(long)]
    pub tls: bool,
    /// Serve the API with this PEM certificate chain instead of one of the cluster CA
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Another name (DNS name or IP address) for the API's certificate from the
    /// cluster CA, e.g. the name agents reach this machine by (repeatable)
    #[arg(long, value_name = "NAME", conflicts_with = "tls_cert")]
    pub api_name: Vec<String>,
    /// Address of the HTTP router
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Apps get <service>.<app>.<DOMAIN>
    #[arg(long, value_name = "D", default_value = "localhost")]
    pub domain: String,
    /// Largest source upload accepted, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_upload: u64,
    /// Worker threads of the router process [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub router_threads: Option<u16>,
    /// Serve HTTPS on this address too (certificates: `berth certs`)
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// Largest request body the router forwards, in MiB; larger ones get 413
    #[arg(long, value_name = "MIB", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_body: u64,
    /// Largest request head (request line and headers) the router accepts, in KiB;
    /// larger ones get 431 and the connection closes
    #[arg(long, value_name = "KIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(8..=1024))]
    pub max_header_size: u64,
    /// Longest pause the router allows between two parts of a request body, in
    /// seconds; a body that stalls longer gets 408
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// Obtain and renew certificates for every served domain over ACME HTTP-01 from
    /// this directory, e.g. https://acme-v02.api.letsencrypt.org/directory [default: off]
    #[arg(long, value_name = "URL", requires = "https")]
    pub acme_directory: Option<String>,
    /// Contact email given to the ACME CA (expiry notices)
    #[arg(long, value_name = "E", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// Also trust this PEM CA certificate for the ACME directory's HTTPS (a test CA)
    #[arg(long, value_name = "PEM", requires = "acme_directory")]
    pub acme_ca_cert: Option<PathBuf>,
    /// Give each app network a /24 of this IPv4 pool, e.g. 10.210.0.0/16, instead of
    /// the engine's default pools (which hold about 30 networks)
    #[arg(long, value_name = "CIDR")]
    pub network_pool: Option<berth_runtime::subnets::NetworkPool>,
    /// Run apps on the Docker Swarm whose manager the engine is (DOCKER_HOST), with a
    /// router on every node; nodes join with `berth instances join`
    #[arg(long)]
    pub swarm: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics, without a token: bind it to
    /// a private address, e.g. 127.0.0.1:9180
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Remove app log lines older than this (s, m, h, d); a value set with
    /// `berth rack set log-retention=...` wins
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = crate::resolve::parse_duration)]
    pub log_retention: u64,
    /// Keep each app's log under this size, plus one segment (KiB, MiB, GiB); a
    /// value set with `berth rack set log-max-size=...` wins
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::resolve::parse_size)]
    pub log_max_size: u64,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server's API URL, e.g. https://manager:7070
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A node token (printed by `berth instances join`)
    #[arg(
        long,
        value_name = "T",
        env = "BERTH_NODE_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Trust the server's certificate if its CA has this SHA-256 fingerprint
    /// (printed by `berth instances join`)
    #[arg(long, value_name = "HEX", conflicts_with = "ca_cert")]
    pub ca_sha256: Option<String>,
    /// Trust the server's certificate if this PEM CA certificate signed it
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Address the server's tunnel to this node's engine and router listens on
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7071")]
    pub listen: SocketAddr,
    /// Host or address the server reaches this node at [default: this machine's
    /// address towards the server]
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// The agent's files (the router's control socket)
    #[arg(long, value_name = "DIR", default_value = "/var/lib/berth-agent")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install the agent of a Swarm node (berth-agent.service) instead of the server
    #[arg(long)]
    pub agent: bool,
    /// Write every file under DIR instead of / and start nothing (to package berth,
    /// or to look at the files first)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the files and enable the unit, but do not (re)start it
    #[arg(long)]
    pub no_start: bool,
    /// Run by the Debian package's postinst, after its scripts started the unit:
    /// keeps the flags file if there is one, waits for the unit and prints the
    /// admin token, or without systemd the command that starts the server
    #[arg(long, hide = true, conflicts_with_all = ["root", "no_start"])]
    pub package: bool,
    /// The flags of `berth server` (with --agent: of `berth agent`), after `--`,
    /// e.g. `-- --api 0.0.0.0:7070 --domain example.com`
    #[arg(last = true, value_name = "FLAGS")]
    pub flags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Remove the agent's unit (berth-agent.service) instead of the server's
    #[arg(long)]
    pub agent: bool,
    /// Remove the files under DIR instead of / (as `install --root` wrote them)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Also delete the data directory (apps, releases, tokens, certificates, the
    /// master key) and the installed binary
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Address to serve HTTP on
    #[arg(long, value_name = "ADDR")]
    pub http: SocketAddr,
    /// The server's control socket
    #[arg(long, value_name = "PATH")]
    pub control: PathBuf,
    /// Event loops, each on a thread of its own [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Largest request body forwarded, in bytes
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Largest request head (request line and headers), in bytes; larger ones get 431
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8 * 1024..=1 << 20))]
    pub max_header_size: usize,
    /// Longest pause of a streamed request body, in seconds; a longer one gets 408
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// Address to serve HTTPS on
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// Count nothing for metrics (only to measure what counting costs)
    #[arg(long, hide = true)]
    pub no_metrics: bool,
    /// Take the listening sockets and the routes over from the router running on
    /// --control (same --http and --https), which then stops accepting, finishes its
    /// requests and exits: an update with no refused or reset connection
    #[arg(long)]
    pub takeover: bool,
    /// With --takeover: how long the old router may finish long requests and
    /// WebSockets before it closes what is left, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub handover_drain: u64,
}

#[derive(Debug, Subcommand)]
pub enum RackCommand {
    /// Show the settings that change at run time (log retention); admin only
    Settings {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Change settings at run time, e.g. `berth rack set log-retention=3d
    /// log-max-size=500MiB`; kept across restarts, over the server's flags; admin only
    Set {
        /// KEY=VALUE: log-retention (s, m, h, d) or log-max-size (KiB, MiB, GiB)
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
    /// Show the server's own log and the router's; admin only
    Logs {
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(long, value_name = "N", default_value_t = 100)]
        tail: usize,
    },
    /// Remove this rack's stopped containers and the images no kept release uses;
    /// report what was freed (never touches anything without berth's labels)
    Prune {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Write the rack's backup archive to stdout (admin): the store (a consistent
    /// snapshot, taken while the server runs), the cluster CA, the volumes list;
    /// the master key only with --with-key, then sealed with a passphrase
    Backup {
        /// Put the master key in the archive too, and seal the archive with a
        /// passphrase (asked on the terminal, or --passphrase-file)
        #[arg(long)]
        with_key: bool,
        /// Read the passphrase from the first line of FILE
        #[arg(long, value_name = "FILE", requires = "with_key")]
        passphrase_file: Option<PathBuf>,
    },
    /// Make a new data dir from a backup archive read from stdin (offline: no
    /// server needed); then start `berth server --data DIR`
    Restore {
        /// The data dir to create; it must be absent or empty
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The passphrase of a sealed archive (--with-key), from the first line of FILE
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The old rack's master.key, for an archive taken without --with-key
        #[arg(long, value_name = "FILE")]
        master_key: Option<PathBuf>,
    },
    /// Move the server to a new berth binary while apps and the router keep
    /// serving (admin): the new binary is checked, the store backed up and
    /// migrated, the router handed over without closing a connection; a new
    /// server that does not get ready in time is rolled back
    Update {
        /// The new berth binary, uploaded to the server and checksummed; without
        /// it, the server takes the new binary already put at its own path (e.g.
        /// by a package upgrade)
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        /// Seconds the new server may take to get ready before the update is
        /// rolled back
        #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=600))]
        timeout: u64,
    },
    /// The rack's updates, newest first: versions, outcome, and why any was
    /// rolled back (admin)
    Releases {
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// Make a node token and print the command that starts an agent with it on a
    /// new node (after `docker swarm join` there); admin only
    Join,
    /// Move every process off a node (Swarm availability `drain`); admin only
    Drain {
        /// The instance (an ID or hostname from `berth instances`)
        id: String,
        /// Drain even if processes that cannot move run there (volumes on
        /// its disk, or a placement naming it): they stop until the node is
        /// active again
        #[arg(long)]
        force: bool,
    },
    /// Let processes run on a drained node again; admin only
    Activate {
        /// The instance (an ID or hostname from `berth instances`)
        id: String,
    },
}

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
        /// `{"token": {...}, "secret": "..."}` for scripts
        #[command(flatten)]
        json: JsonArg,
    },
    /// Revoke a token; requests with it are refused from now on
    Revoke {
        /// The token (an ID from `berth tokens`, e.g. t3f9a2c1b)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrainsCommand {
    /// Forward logs to URL: syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT (RFC 5424)
    /// or otlp+http://HOST:PORT[/PATH] (OTLP/HTTP, POST to /v1/logs by default);
    /// the app's with -a, else every app's (admin only)
    Add {
        /// Where to: syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT or otlp+http://HOST:PORT[/PATH]
        url: String,
        /// A CA certificate (PEM) to trust for a syslog+tls receiver, besides the system's
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Bound of the drain's on-disk buffer while the receiver is down, bytes
        /// [default: 64 MiB]; lines past it are dropped and counted
        #[arg(long, value_name = "BYTES")]
        max_buffer: Option<u64>,
    },
    /// Stop forwarding and remove the drain with its buffer
    Remove {
        /// The drain (an ID from `berth drains`, e.g. d-3f9a2c01)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Store a certificate chain and its private key (PEM files)
    Import {
        /// The certificate chain, leaf first (PEM)
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
        /// The certificate's private key (PEM)
        #[arg(value_name = "KEY.pem")]
        key: PathBuf,
    },
    /// Make a self-signed certificate for DOMAINs (`*.example.com` allowed)
    Generate {
        /// The names it is for, e.g. shop.example.com or *.example.com
        #[arg(value_name = "DOMAIN", required = true)]
        domains: Vec<String>,
    },
    /// Serve this certificate to HTTPS clients that send no server name (SNI), e.g.
    /// clients that connect by IP address [default: the first imported one]
    Default {
        /// The certificate (an ID from `berth certs`)
        id: String,
    },
    /// Remove a certificate
    Delete {
        /// The certificate (an ID from `berth certs`, e.g. c-3f9a2c)
        id: String,
    },
}
