//! `berth install` and `berth uninstall`: berth as a systemd service on this
//! machine. The unit runs the installed binary with the flags kept in an
//! environment file of mode 0600, because an agent's node token is among
//! them: it never goes into the unit (world-readable) or onto a command line
//! (which every local user can read in /proc).
//!
//! The units are the Debian package's own files (`packaging/debian/`), with
//! the package's binary path replaced by the one `berth install` copies to.
//! Where the package installed berth, its units and binary stay as they are:
//! `berth install` writes only the flags and (re)starts the unit, and the
//! package's postinst runs `berth install --package`.

use crate::cli::{Cli, InstallArgs, UninstallArgs};
use anyhow::{Context, Result, bail};
use clap::Parser;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where `berth install` puts the binary, relative to the root.
const BIN: &str = "usr/local/bin/berth";
const UNIT_DIR: &str = "etc/systemd/system";
/// Where the Debian package puts the binary; its units name this path.
const PACKAGE_BIN: &str = "usr/bin/berth";
/// Where the Debian package puts its units.
const PACKAGE_UNIT_DIR: &str = "usr/lib/systemd/system";
const CONF_DIR: &str = "etc/berth";
/// Present exactly when systemd is the running init (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";
const SERVER_UNIT: &str = include_str!("../packaging/debian/berth.service");
const AGENT_UNIT: &str = include_str!("../packaging/debian/berth-agent.service");

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

/// The unit file of `role`, running the binary at `bin` (relative to the root).
fn unit_text(role: Role, bin: &str) -> String {
    let template = match role {
        Role::Server => SERVER_UNIT,
        Role::Agent => AGENT_UNIT,
    };
    template.replace(&system_path(PACKAGE_BIN), &system_path(bin))
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
    let real = args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let package_unit = format!("{PACKAGE_UNIT_DIR}/{}", role.unit());
    let packaged = root.join(&package_unit).is_file();
    if args.package && !packaged {
        bail!(
            "--package is for the postinst of berth's Debian package, and {} (its unit) is missing; run `berth install` without --package",
            system_path(&package_unit)
        );
    }
    let systemd = Path::new(SYSTEMD_RUNNING).is_dir();
    if real && !is_root() {
        bail!(
            "berth install sets up a system service and needs root: run it with sudo (or write the files only, with --root DIR)"
        );
    }
    if real && !systemd && !packaged {
        bail!(without_systemd(role, &flags)?);
    }
    let mut changed = false;
    let bin = if packaged {
        PACKAGE_BIN
    } else {
        let exe = std::env::current_exe().context("cannot find this program's own binary")?;
        changed |= copy_binary(&exe, &root.join(BIN))?;
        BIN
    };
    make_dir(&root.join(role.data()), 0o700)?;
    make_dir(&root.join(CONF_DIR), 0o755)?;
    let env_file = root.join(role.env_file());
    // The postinst of an upgrade keeps the flags an admin set.
    if !(args.package && env_file.exists()) {
        changed |= write_file(&env_file, &env_text(role, &flags), 0o600)?;
    }
    if !packaged {
        make_dir(&root.join(UNIT_DIR), 0o755)?;
        changed |= write_file(
            &root.join(UNIT_DIR).join(role.unit()),
            &unit_text(role, BIN),
            0o644,
        )?;
    }
    if !real {
        let what = if packaged {
            format!("the flags of the package's {}", role.unit())
        } else {
            format!("{} and its files", role.unit())
        };
        println!(
            "wrote {what} under {} (binary {}, data {}); nothing was started",
            root.display(),
            system_path(bin),
            system_path(role.data())
        );
        return Ok(());
    }
    if !systemd {
        // Only the package's units get here: they are in place, but nothing
        // runs them.
        println!("{}", start_by_hand(role));
        return Ok(());
    }
    if args.package {
        after_package_start(role, &root);
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
    if changed || !unit_is("active", role) {
        systemctl(&["restart", role.unit()])?;
    }
    wait_active(role)?;
    report(role, &root);
    Ok(())
}

/// What a real install without systemd says instead, having written
/// nothing: the command to run from another init system.
fn without_systemd(role: Role, flags: &Flags) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find this program's own binary")?;
    let token = if flags.token.is_some() {
        " (with BERTH_NODE_TOKEN set to the node token)"
    } else {
        ""
    };
    Ok(format!(
        "this machine does not run systemd ({SYSTEMD_RUNNING} is missing), so berth install cannot set up a service; run `{} {} --data {} {}`{token} from your init system or a process supervisor instead, or write the unit's files only with --root DIR",
        exe.display(),
        role.subcommand(),
        system_path(role.data()),
        flags.flags.join(" ")
    ))
}

/// What the package's postinst says where systemd does not run: the unit's
/// command, with the flags of its environment file, to run by other means.
fn start_by_hand(role: Role) -> String {
    let env = system_path(&role.env_file());
    let first_start = match role {
        Role::Server => format!(
            "on its first start the server prints the admin token and saves it to {} and to root's CLI config (as server `local`)",
            system_path(&format!("{}/admin.token", role.data()))
        ),
        Role::Agent => "the server's `berth instances` shows the agent as connected within seconds of its start".into(),
    };
    format!(
        "this machine does not run systemd ({SYSTEMD_RUNNING} is missing), so {unit} was not started; run `sh -c 'set -a && . {env} && exec {bin} {sub} --data {data} $BERTH_FLAGS'` from your init system or a process supervisor (its flags are in {env}: `berth install {agent}-- FLAGS` changes them); {first_start}",
        unit = role.unit(),
        bin = system_path(PACKAGE_BIN),
        sub = role.subcommand(),
        data = system_path(role.data()),
        agent = if role == Role::Agent { "--agent " } else { "" },
    )
}

/// After the package's scripts started the unit (or left it off): its URL
/// and token once it runs. Nothing here fails the package's installation: a
/// unit that does not come up is said, with where to look.
fn after_package_start(role: Role, root: &Path) {
    if !unit_is("enabled", role) {
        println!(
            "{} is disabled, so it was not started; `systemctl enable --now {}` starts it",
            role.unit(),
            role.unit()
        );
        return;
    }
    match wait_active(role) {
        Ok(()) => report(role, root),
        Err(e) => eprintln!("warning: {e:#}"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
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
        match (unit_is("active", role), up_since) {
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

/// Whether `systemctl is-{state}` says yes of the unit of `role`.
fn unit_is(state: &str, role: Role) -> bool {
    Command::new("systemctl")
        .args([&format!("is-{state}"), "--quiet", role.unit()])
        .status()
        .is_ok_and(|s| s.success())
}

/// What a running unit gives: the server's URL and admin token (as its first
/// start wrote it), or where to see an agent.
fn report(role: Role, root: &Path) {
    if role == Role::Agent {
        println!(
            "{} is running; `berth instances` on the server shows this node's agent as connected within seconds",
            role.unit()
        );
        return;
    }
    let flags = std::fs::read_to_string(root.join(role.env_file()))
        .map(|text| flags_of_env(&text))
        .unwrap_or_default();
    let args = ["berth", "server"]
        .into_iter()
        .map(str::to_string)
        .chain(flags);
    let api = match Cli::try_parse_from(args).map(|c| c.command) {
        Ok(crate::cli::Command::Server(s)) => {
            let https = s.tls || s.tls_cert.is_some() || !s.api.ip().is_loopback();
            format!("{}://{}", if https { "https" } else { "http" }, s.api)
        }
        _ => "(see the --api flag)".into(),
    };
    let token_file = root.join(role.data()).join("admin.token");
    let token = std::fs::read_to_string(&token_file).unwrap_or_default();
    println!("{} is running; the API is at {api}", role.unit());
    if !token.trim().is_empty() {
        println!(
            "admin token: {} (in {}; root's CLI config has it as server `local`)",
            token.trim(),
            token_file.display()
        );
    }
}

/// The flags kept in an environment file `env_text` wrote, split as systemd
/// splits `$BERTH_FLAGS`.
fn flags_of_env(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("BERTH_FLAGS="))
        .map(|v| v.trim().trim_matches('"'))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `berth uninstall`.
pub fn uninstall(args: UninstallArgs) -> Result<()> {
    let role = Role::of(args.agent);
    let real = args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let systemd = real && Path::new(SYSTEMD_RUNNING).is_dir();
    if real && !is_root() {
        bail!("berth uninstall removes a system service and needs root: run it with sudo");
    }
    if root.join(PACKAGE_UNIT_DIR).join(role.unit()).is_file() {
        bail!(
            "{unit} comes with berth's Debian package: `systemctl disable --now {unit}` stops it, `apt remove berth` removes berth and keeps the data, `apt purge berth` deletes the data too",
            unit = role.unit()
        );
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
        assert!(!unit_text(Role::Agent, BIN).contains("berth_x"));
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
        let unit = unit_text(Role::Server, BIN);
        assert!(unit.contains("KillMode=process\n"), "{unit}");
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/berth server --data /var/lib/berth $BERTH_FLAGS\n"
        ));
        assert!(unit.contains("EnvironmentFile=-/etc/berth/server.env\n"));
    }

    #[test]
    fn the_units_name_the_binary_only_in_their_command() {
        for (role, template) in [(Role::Server, SERVER_UNIT), (Role::Agent, AGENT_UNIT)] {
            let package_bin = system_path(PACKAGE_BIN);
            assert_eq!(template.matches(&package_bin).count(), 1, "{template}");
            let exec = format!("ExecStart={package_bin} {} ", role.subcommand());
            assert!(template.contains(&exec), "{template}");
            let unit = unit_text(role, BIN);
            assert!(!unit.contains(&package_bin), "{unit}");
            assert!(unit.contains(&format!("{} ", system_path(BIN))), "{unit}");
        }
    }

    #[test]
    fn the_flags_are_read_back_as_systemd_splits_them() {
        let flags = checked_flags(
            Role::Server,
            &strings(&["--api", "0.0.0.0:7070", "--domain", "example.com"]),
        )
        .map(|f| env_text(Role::Server, &f))
        .map(|text| flags_of_env(&text))
        .unwrap_or_default();
        assert_eq!(
            flags,
            strings(&["--api", "0.0.0.0:7070", "--domain", "example.com"])
        );
        assert!(flags_of_env("BERTH_FLAGS=\"\"\n").is_empty());
    }
}
