//! `berth install` and `berth uninstall`: berth as a systemd service on this
//! machine. The unit runs the installed binary with the flags kept in an
//! environment file of mode 0600, because an agent's node token is among
//! them: it never goes into the unit (world-readable) or onto a command line
//! (which every local user can read in /proc).

use crate::cli::{Cli, InstallArgs, UninstallArgs};
use anyhow::{Context, Result, bail};
use clap::Parser;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the binary goes, relative to the root.
const BIN: &str = "usr/local/bin/berth";
const UNIT_DIR: &str = "etc/systemd/system";
const CONF_DIR: &str = "etc/berth";
/// Present exactly when systemd is the running init (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Agent,
}

impl Role {
    fn of(agent: bool) -> Role {
        if agent { Role::Agent } else { Role::Server }
    }

    fn unit(self) -> &'static str {
        match self {
            Role::Server => "berth.service",
            Role::Agent => "berth-agent.service",
        }
    }

    fn env_file(self) -> String {
        match self {
            Role::Server => format!("{CONF_DIR}/server.env"),
            Role::Agent => format!("{CONF_DIR}/agent.env"),
        }
    }

    fn data(self) -> &'static str {
        match self {
            Role::Server => "var/lib/berth",
            Role::Agent => "var/lib/berth-agent",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Server => Role::Agent,
            Role::Agent => Role::Server,
        }
    }
}

/// A path as the installed system sees it (the unit names these).
fn system_path(relative: &str) -> String {
    format!("/{relative}")
}

/// The unit file of `role`.
fn unit_text(role: Role) -> String {
    let (description, wants, after, service) = match role {
        Role::Server => (
            "berth server: the API, the deployer and the reconciler of a self-hosted PaaS",
            "network-online.target docker.service",
            "network-online.target docker.service",
            // The router is a process of its own that keeps serving the apps
            // while the server restarts or is stopped: only the server goes.
            "Environment=HOME=/root\nKillMode=process\nRestart=on-failure\nTimeoutStopSec=30\n",
        ),
        Role::Agent => (
            "berth agent: gives the berth server this Swarm node's engine and runs its router",
            "network-online.target docker.service",
            "network-online.target docker.service",
            "Restart=always\n",
        ),
    };
    format!(
        "# Written by `berth install`; run it again to change the flags (kept in {env}).\n\
         [Unit]\n\
         Description={description}\n\
         Wants={wants}\n\
         After={after}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         EnvironmentFile={env}\n\
         ExecStart={bin} {sub} --data {data} $BERTH_FLAGS\n\
         {service}\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        env = system_path(&role.env_file()),
        bin = system_path(BIN),
        sub = role.subcommand(),
        data = system_path(role.data()),
    )
}

/// The flags to keep, and the agent's node token taken out of them.
#[derive(Debug, PartialEq)]
struct Flags {
    flags: Vec<String>,
    token: Option<String>,
}

/// Checks `flags` the way `berth server` (or `berth agent`) will read them,
/// now rather than when the service fails to start.
fn checked_flags(role: Role, flags: &[String]) -> Result<Flags> {
    let sub = role.subcommand();
    for flag in flags {
        if flag == "--data" || flag.starts_with("--data=") {
            bail!(
                "`berth install` keeps the {sub}'s data in {}; drop --data from the flags",
                system_path(role.data())
            );
        }
        if flag.is_empty()
            || flag
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$' | '`'))
        {
            bail!(
                "the flag {flag:?} has a space, a quote, a backslash or a `$`, which the service's environment file cannot carry; give the value without them"
            );
        }
    }
    let data = system_path(role.data());
    let words = ["berth", sub, "--data", &data]
        .into_iter()
        .map(str::to_string)
        .chain(flags.iter().cloned());
    if let Err(e) = Cli::try_parse_from(words) {
        let text = e.render().to_string();
        let why: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Usage:"))
            .map(|l| l.trim().trim_start_matches("error: "))
            .filter(|l| !l.is_empty())
            .collect();
        bail!(
            "these flags would not start `berth {sub}`: {}; see `berth {sub} --help`",
            why.join(" ")
        );
    }
    let mut kept = Vec::new();
    let mut token = None;
    let mut words = flags.iter();
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "--token" if role == Role::Agent => token = words.next().cloned(),
            f if role == Role::Agent && f.starts_with("--token=") => {
                token = Some(f["--token=".len()..].to_string());
            }
            _ => kept.push(flag.clone()),
        }
    }
    if role == Role::Agent && token.is_none() {
        token = std::env::var("BERTH_NODE_TOKEN").ok();
    }
    Ok(Flags { flags: kept, token })
}

/// The environment file of the unit.
fn env_text(role: Role, flags: &Flags) -> String {
    let mut text = format!(
        "# Written by `berth install`: the flags of `berth {}`; run it again to change them.\n\
         BERTH_FLAGS=\"{}\"\n",
        role.subcommand(),
        flags.flags.join(" ")
    );
    if let Some(token) = &flags.token {
        text.push_str(&format!("BERTH_NODE_TOKEN={token}\n"));
    }
    text
}

/// `berth install`.
pub fn install(args: InstallArgs) -> Result<()> {
    let role = Role::of(args.agent);
    let flags = checked_flags(role, &args.flags)?;
    let exe = std::env::current_exe().context("cannot find this program's own binary")?;
    let real = args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if real {
        able_to_install(role, &exe, &flags)?;
    }
    let mut changed = copy_binary(&exe, &root.join(BIN))?;
    make_dir(&root.join(role.data()), 0o700)?;
    make_dir(&root.join(CONF_DIR), 0o755)?;
    make_dir(&root.join(UNIT_DIR), 0o755)?;
    changed |= write_file(&root.join(role.env_file()), &env_text(role, &flags), 0o600)?;
    changed |= write_file(
        &root.join(UNIT_DIR).join(role.unit()),
        &unit_text(role),
        0o644,
    )?;
    if !real {
        println!(
            "wrote {} and its files under {} (binary {}, data {}); nothing was started",
            role.unit(),
            root.display(),
            system_path(BIN),
            system_path(role.data())
        );
        return Ok(());
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--quiet", role.unit()])?;
    if args.no_start {
        println!(
            "{} is installed and enabled; start it with `systemctl start {}`",
            role.unit(),
            role.unit()
        );
        return Ok(());
    }
    let active = Command::new("systemctl")
        .args(["is-active", "--quiet", role.unit()])
        .status()
        .is_ok_and(|s| s.success());
    if changed || !active {
        systemctl(&["restart", role.unit()])?;
    }
    wait_active(role)?;
    match role {
        Role::Server => report_server(&root, &flags),
        Role::Agent => println!(
            "{} is running; `berth instances` on the server shows this node's agent as connected within seconds",
            role.unit()
        ),
    }
    Ok(())
}

/// A real install needs root and systemd; without them it says what to run
/// instead, having written nothing.
fn able_to_install(role: Role, exe: &Path, flags: &Flags) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "berth install sets up a system service and needs root: run it with sudo (or write the files only, with --root DIR)"
        );
    }
    if !Path::new(SYSTEMD_RUNNING).is_dir() {
        let token = if flags.token.is_some() {
            " (with BERTH_NODE_TOKEN set to the node token)"
        } else {
            ""
        };
        bail!(
            "this machine does not run systemd ({SYSTEMD_RUNNING} is missing), so berth install cannot set up a service; run `{} {} --data {} {}`{token} from your init system or a process supervisor instead, or write the unit's files only with --root DIR",
            exe.display(),
            role.subcommand(),
            system_path(role.data()),
            flags.flags.join(" ")
        );
    }
    Ok(())
}

/// Copies the running binary to `to` (through a temporary file and a rename,
/// so a running copy is never written over); whether it changed.
fn copy_binary(exe: &Path, to: &Path) -> Result<bool> {
    let new = std::fs::read(exe).with_context(|| format!("cannot read {}", exe.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(false);
    }
    if let Some(dir) = to.parent() {
        make_dir(dir, 0o755)?;
    }
    let temp = to.with_extension("new");
    std::fs::write(&temp, &new).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", temp.display()))?;
    std::fs::rename(&temp, to)
        .with_context(|| format!("cannot put the binary at {}", to.display()))?;
    Ok(true)
}

fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Writes `text` to `path` with `mode` (the mode set before the text goes
/// in); whether it changed.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        return Ok(false);
    }
    let temp = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", temp.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .context("cannot run systemctl")?;
    if !out.status.success() {
        bail!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Waits (30 s at most) until the unit runs and stays up.
fn wait_active(role: Role) -> Result<()> {
    let started = Instant::now();
    let mut up_since: Option<Instant> = None;
    while started.elapsed() < Duration::from_secs(30) {
        let active = Command::new("systemctl")
            .args(["is-active", "--quiet", role.unit()])
            .status()
            .is_ok_and(|s| s.success());
        match (active, up_since) {
            (true, Some(since)) if since.elapsed() >= Duration::from_secs(3) => return Ok(()),
            (true, None) => up_since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => up_since = None,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!(
        "{} did not stay up; see why with `journalctl -u {} -n 50`",
        role.unit(),
        role.unit()
    )
}

/// The server's URL and admin token, as its first start wrote them.
fn report_server(root: &Path, flags: &Flags) {
    let args = ["berth", "server"]
        .into_iter()
        .map(str::to_string)
        .chain(flags.flags.iter().cloned());
    let api = match Cli::try_parse_from(args).map(|c| c.command) {
        Ok(crate::cli::Command::Server(s)) => {
            let https = s.tls || s.tls_cert.is_some() || !s.api.ip().is_loopback();
            format!("{}://{}", if https { "https" } else { "http" }, s.api)
        }
        _ => "(see the --api flag)".into(),
    };
    let token_file = root.join(Role::Server.data()).join("admin.token");
    let token = std::fs::read_to_string(&token_file).unwrap_or_default();
    println!("berth.service is running; the API is at {api}");
    if !token.trim().is_empty() {
        println!(
            "admin token: {} (in {}; root's CLI config has it as server `local`)",
            token.trim(),
            token_file.display()
        );
    }
}

/// `berth uninstall`.
pub fn uninstall(args: UninstallArgs) -> Result<()> {
    let role = Role::of(args.agent);
    let real = args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let systemd = real && Path::new(SYSTEMD_RUNNING).is_dir();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if real && unsafe { libc::geteuid() } != 0 {
        bail!("berth uninstall removes a system service and needs root: run it with sudo");
    }
    if systemd {
        // A unit that is not loaded has nothing to stop.
        let _ = systemctl(&["disable", "--now", "--quiet", role.unit()]);
    }
    let unit = root.join(UNIT_DIR).join(role.unit());
    let mut removed = Vec::new();
    for path in [unit, root.join(role.env_file())] {
        if remove(&path)? {
            removed.push(path.display().to_string());
        }
    }
    if systemd {
        systemctl(&["daemon-reload"])?;
    }
    let data = root.join(role.data());
    if args.purge {
        match std::fs::remove_dir_all(&data) {
            Ok(()) => removed.push(data.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete {}", data.display())),
        }
        let other_unit = root.join(UNIT_DIR).join(role.other().unit());
        if !other_unit.exists() && remove(&root.join(BIN))? {
            removed.push(root.join(BIN).display().to_string());
        }
    }
    if removed.is_empty() {
        println!("{} was not installed; nothing to remove", role.unit());
        return Ok(());
    }
    println!("removed {}", removed.join(", "));
    if !args.purge && data.exists() {
        println!(
            "kept the data in {} (`berth uninstall --purge` deletes it)",
            data.display()
        );
    }
    if role == Role::Server {
        println!(
            "the apps' containers and the router keep running; delete the apps first (`berth apps delete`) to remove them"
        );
    }
    Ok(())
}

/// Removes a file; whether it was there.
fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_agent_token_goes_to_the_environment_not_the_flags() -> Result<()> {
        let flags = checked_flags(
            Role::Agent,
            &strings(&[
                "--server",
                "https://m:7070",
                "--token",
                "berth_x",
                "--ca-sha256",
                "ab",
            ]),
        )?;
        assert_eq!(flags.token.as_deref(), Some("berth_x"));
        assert_eq!(
            flags.flags,
            strings(&["--server", "https://m:7070", "--ca-sha256", "ab"])
        );
        let env = env_text(Role::Agent, &flags);
        assert!(env.contains("BERTH_NODE_TOKEN=berth_x\n"), "{env}");
        assert!(env.contains("BERTH_FLAGS=\"--server https://m:7070 --ca-sha256 ab\""));
        assert!(!unit_text(Role::Agent).contains("berth_x"));
        Ok(())
    }

    #[test]
    fn flags_are_checked_as_the_service_will_read_them() {
        let err = |role, f: &[&str]| {
            checked_flags(role, &strings(f))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(Role::Server, &["--nope"]).contains("--nope"));
        assert!(err(Role::Server, &["--api", "not-an-address"]).contains("--api"));
        assert!(err(Role::Server, &["--data", "/x"]).contains("drop --data"));
        assert!(err(Role::Server, &["--domain", "a b"]).contains("space"));
        assert!(err(Role::Agent, &["--token", "t"]).contains("--server"));
        assert!(checked_flags(Role::Server, &strings(&["--api", "0.0.0.0:7070"])).is_ok());
    }

    #[test]
    fn the_server_unit_leaves_the_router_running() {
        let unit = unit_text(Role::Server);
        assert!(unit.contains("KillMode=process\n"), "{unit}");
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/berth server --data /var/lib/berth $BERTH_FLAGS\n"
        ));
        assert!(unit.contains("EnvironmentFile=/etc/berth/server.env\n"));
    }
}
