//! The CLI's configuration: the berth servers it knows, by name, and which one is
//! current.
//!
//! Stored at `$XDG_CONFIG_HOME/berth/config.json` (else `~/.config/berth/config.json`),
//! mode 0600, as `{"current": "prod", "servers": {"prod": {"host": "...", "token": "..."}}}`
//! (an entry may carry `ca_pem`, the only CA trusted for its HTTPS server).
//! `berth login` adds or updates an entry and makes it current, `berth switch` picks
//! another, and the first start of a local `berth server` adds its own entry without
//! taking the current one's place. The one-server file of earlier versions,
//! `{"host": "...", "token": "..."}`, is read as one entry and written in the new form
//! at the next change. `BERTH_HOST` and `BERTH_TOKEN` override it, and
//! `BERTH_CA_CERT=FILE` the CA to trust.

use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A server URL, the token to use with it and, for an HTTPS server with a
/// certificate of its own CA, that CA's certificate (PEM), the only one trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub host: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// Every server the config file knows, by name, and the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Servers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    pub servers: BTreeMap<String, Config>,
    /// A hand-edited one-server file that lacks its host or its token makes no
    /// entry, but `resolve` still starts from it, so its error names what is missing.
    #[serde(skip)]
    incomplete: FileConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set; set BERTH_HOST and BERTH_TOKEN instead"
    )]
    NoConfigDir,

    #[error(
        "no berth server is configured; run `berth login URL --token T` or set BERTH_HOST and BERTH_TOKEN"
    )]
    NotConfigured,

    #[error(
        "no server URL is configured (the token is set); run `berth login URL --token T` or set BERTH_HOST"
    )]
    NoHost,

    #[error(
        "no token is configured for {host}; run `berth login {host} --token T` or set BERTH_TOKEN"
    )]
    NoToken { host: String },

    #[error(
        "the CLI config knows the servers {known} but none is current; pick one with `berth switch NAME`"
    )]
    NoCurrent { known: String },

    #[error(
        "the CLI config has no server named {name:?} (known: {known}); add it with `berth login URL --token T --name {name}`"
    )]
    NoServer { name: String, known: String },

    #[error(
        "invalid server name {name:?}: use 1 to 63 lowercase letters, digits, '.', '-' or '_', starting with a letter or digit"
    )]
    BadName { name: String },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{} is not a valid berth config ({reason}); fix it or run `berth login URL --token T` again",
        path.display()
    )]
    Parse { path: PathBuf, reason: String },

    #[error(
        "cannot read the CA certificate BERTH_CA_CERT names, {}: {source}; point BERTH_CA_CERT at a copy of the server's DATA/ca/ca.pem or unset it",
        path.display()
    )]
    CaCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The current server's settings as the file gives them; either may be missing in a
/// hand-edited file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_pem: Option<String>,
}

impl FileConfig {
    fn of(config: &Config) -> FileConfig {
        FileConfig {
            host: Some(config.host.clone()),
            token: Some(config.token.clone()),
            ca_pem: config.ca_pem.clone(),
        }
    }
}

/// The file as written by this version (`current`, `servers`) or an earlier one
/// (`host`, `token`).
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    current: Option<String>,
    #[serde(default)]
    servers: Option<BTreeMap<String, Config>>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

impl Servers {
    fn from_raw(raw: RawFile) -> Servers {
        if let Some(servers) = raw.servers {
            return Servers {
                current: raw.current,
                servers,
                incomplete: FileConfig::default(),
            };
        }
        match (raw.host, raw.token) {
            (Some(host), Some(token)) => {
                let mut servers = Servers::default();
                let name = servers.name_for(&host, &derived_name(&host));
                servers.servers.insert(
                    name.clone(),
                    Config {
                        host,
                        token,
                        ca_pem: None,
                    },
                );
                servers.current = Some(name);
                servers
            }
            (host, token) => Servers {
                incomplete: FileConfig {
                    host,
                    token,
                    ca_pem: None,
                },
                ..Servers::default()
            },
        }
    }

    /// The current entry, if the config names one it has.
    pub fn current_server(&self) -> Option<(&str, &Config)> {
        let name = self.current.as_deref()?;
        self.servers.get(name).map(|c| (name, c))
    }

    /// The names of the entries, `a, b, c`, or `none`.
    pub fn names(&self) -> String {
        if self.servers.is_empty() {
            return "none".into();
        }
        self.servers.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The entry whose URL is `host`.
    fn named_by_host(&self, host: &str) -> Option<(&str, &Config)> {
        self.servers
            .iter()
            .find(|(_, c)| same_host(&c.host, host))
            .map(|(n, c)| (n.as_str(), c))
    }

    /// The settings `resolve` starts from: the current entry's.
    fn current_fields(&self) -> FileConfig {
        match self.current_server() {
            Some((_, config)) => FileConfig::of(config),
            None => self.incomplete.clone(),
        }
    }

    /// The name for an entry of `host`: the one it has, else `base`, else `base-PORT`,
    /// else `base-PORT-2` and so on, so that no other server's entry is replaced.
    fn name_for(&self, host: &str, base: &str) -> String {
        if let Some((name, _)) = self.named_by_host(host) {
            return name.to_string();
        }
        let free = |n: &str| !self.servers.contains_key(n);
        if free(base) {
            return base.to_string();
        }
        let with_port = match port_of(host) {
            Some(port) => format!("{base}-{port}"),
            None => base.to_string(),
        };
        if free(&with_port) {
            return with_port;
        }
        (2u32..)
            .map(|n| format!("{with_port}-{n}"))
            .find(|n| free(n))
            .unwrap_or(with_port)
    }
}

/// Whether two server URLs name the same server (`http://h:1` and `http://H:1/` do).
fn same_host(a: &str, b: &str) -> bool {
    match (Url::parse(a.trim()), Url::parse(b.trim())) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host() == b.host()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        }
        _ => a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/'),
    }
}

fn port_of(host: &str) -> Option<u16> {
    Url::parse(host.trim()).ok()?.port_or_known_default()
}

/// An entry name from a server URL: `local` for this machine, else the host name
/// made safe (`https://Prod.Example:7070` → `prod.example`).
fn derived_name(host: &str) -> String {
    let url_host = Url::parse(host.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| host.trim().to_string());
    let bare = url_host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return "local".into();
    }
    let safe: String = bare
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let safe: String = safe
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(63)
        .collect();
    if safe.is_empty() {
        "server".into()
    } else {
        safe
    }
}

/// Entry names: what `berth switch NAME` takes without quoting.
pub fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadName {
            name: name.chars().take(80).collect(),
        })
    }
}

/// Where the config lives, from `XDG_CONFIG_HOME` and `HOME`.
pub fn path() -> Result<PathBuf, ConfigError> {
    path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
    .ok_or(ConfigError::NoConfigDir)
}

fn path_from(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    // The XDG spec says relative paths in XDG_* are invalid and must be ignored.
    let base = match xdg_config_home.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("berth").join("config.json"))
}

/// The current server of the saved config, `None` when there is none.
pub fn load() -> Result<Option<Config>, ConfigError> {
    let path = path()?;
    let servers = read_servers(&path)?.unwrap_or_default();
    Ok(servers.current_server().map(|(_, c)| c.clone()))
}

/// Every saved server and the file they are in.
pub fn servers() -> Result<(PathBuf, Servers), ConfigError> {
    let path = path()?;
    let servers = read_servers(&path)?.unwrap_or_default();
    Ok((path, servers))
}

/// The current server's settings in the file at `path`; `None` when there is no file.
#[cfg(test)]
fn read_file(path: &Path) -> Result<Option<FileConfig>, ConfigError> {
    Ok(read_servers(path)?.map(|s| s.current_fields()))
}

fn read_servers(path: &Path) -> Result<Option<Servers>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str::<RawFile>(&text)
        .map(|raw| Some(Servers::from_raw(raw)))
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Where `berth login` saved a server, and under which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub name: String,
}

/// Adds the entry of `host` (named after it) or updates the one it has, makes it
/// current, and returns the config's path.
pub fn save(host: &str, token: &str) -> Result<PathBuf, ConfigError> {
    let path = path()?;
    save_to(&path, host, token)?;
    Ok(path)
}

fn save_to(path: &Path, host: &str, token: &str) -> Result<(), ConfigError> {
    login_at(path, host, token, None, None).map(|_| ())
}

/// `berth login`: adds or updates the entry `name` (default: the one `host` has,
/// else a name made from `host`), with the CA to trust for it if any, and makes it
/// current.
pub fn login(
    host: &str,
    token: &str,
    name: Option<&str>,
    ca_pem: Option<String>,
) -> Result<Saved, ConfigError> {
    let path = path()?;
    let name = login_at(&path, host, token, name, ca_pem)?;
    Ok(Saved { path, name })
}

fn login_at(
    path: &Path,
    host: &str,
    token: &str,
    name: Option<&str>,
    ca_pem: Option<String>,
) -> Result<String, ConfigError> {
    if let Some(name) = name {
        check_name(name)?;
    }
    let mut servers = read_servers(path)?.unwrap_or_default();
    let name = match name {
        Some(name) => name.to_string(),
        None => servers.name_for(host, &derived_name(host)),
    };
    servers.servers.insert(
        name.clone(),
        Config {
            host: host.to_string(),
            token: token.to_string(),
            ca_pem,
        },
    );
    servers.current = Some(name.clone());
    write_servers(path, &servers)?;
    Ok(name)
}

/// What the first start of a local server did to the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSaved {
    pub path: PathBuf,
    /// The entry's name (`local`, or `local-PORT` when `local` is another server).
    pub name: String,
    /// The current server after the change: `name` when there was no config before.
    pub current: Option<String>,
}

/// Adds the entry of a new local server (updating the one its address has: a new
/// server there makes that token useless) and makes it current only when no server
/// was configured, so a saved production server stays the one commands go to.
pub fn add_local(
    host: &str,
    token: &str,
    ca_pem: Option<String>,
) -> Result<LocalSaved, ConfigError> {
    let path = path()?;
    let (name, current) = add_local_at(&path, host, token, ca_pem)?;
    Ok(LocalSaved {
        path,
        name,
        current,
    })
}

fn add_local_at(
    path: &Path,
    host: &str,
    token: &str,
    ca_pem: Option<String>,
) -> Result<(String, Option<String>), ConfigError> {
    let mut servers = read_servers(path)?.unwrap_or_default();
    let name = servers.name_for(host, "local");
    let had_current = servers.current_server().is_some();
    servers.servers.insert(
        name.clone(),
        Config {
            host: host.to_string(),
            token: token.to_string(),
            ca_pem,
        },
    );
    if !had_current {
        servers.current = Some(name.clone());
    }
    write_servers(path, &servers)?;
    Ok((name, servers.current))
}

/// `berth switch NAME`: makes the entry `name` current.
pub fn switch(name: &str) -> Result<(PathBuf, Config), ConfigError> {
    let path = path()?;
    let config = switch_at(&path, name)?;
    Ok((path, config))
}

fn switch_at(path: &Path, name: &str) -> Result<Config, ConfigError> {
    let mut servers = read_servers(path)?.unwrap_or_default();
    let Some(config) = servers.servers.get(name).cloned() else {
        return Err(ConfigError::NoServer {
            name: name.chars().take(80).collect(),
            known: servers.names(),
        });
    };
    servers.current = Some(name.to_string());
    write_servers(path, &servers)?;
    Ok(config)
}

fn write_servers(path: &Path, servers: &Servers) -> Result<(), ConfigError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Write { path: p, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(werr(dir))?;
    }
    let mut text =
        serde_json::to_string_pretty(servers).map_err(|e| werr(path)(std::io::Error::other(e)))?;
    text.push('\n');
    // Write a sibling and rename it over, so a crash never leaves half a file.
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(werr(path))
}

/// The server and token to use: `BERTH_HOST` / `BERTH_TOKEN` when set, else the
/// config's current server. A `BERTH_HOST` the config knows gets that entry's token.
pub fn resolve() -> Result<Config, ConfigError> {
    let env = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let env_host = env("BERTH_HOST");
    let env_token = env("BERTH_TOKEN");
    let servers = if env_host.is_some() && env_token.is_some() {
        Servers::default()
    } else {
        // Without a config dir the env vars alone must do.
        match path() {
            Ok(p) => read_servers(&p)?.unwrap_or_default(),
            Err(_) => Servers::default(),
        }
    };
    let mut config = resolve_servers(env_host, env_token, &servers)?;
    if let Some(pem) = env_ca_pem()? {
        config.ca_pem = Some(pem);
    }
    Ok(config)
}

/// The CA certificate `BERTH_CA_CERT` names, if it is set.
pub fn env_ca_pem() -> Result<Option<String>, ConfigError> {
    let Some(file) = std::env::var_os("BERTH_CA_CERT").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(file);
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|source| ConfigError::CaCert { path, source })
}

fn resolve_servers(
    env_host: Option<String>,
    env_token: Option<String>,
    servers: &Servers,
) -> Result<Config, ConfigError> {
    let file = match env_host.as_deref().and_then(|h| servers.named_by_host(h)) {
        Some((_, config)) => FileConfig::of(config),
        None => servers.current_fields(),
    };
    resolve_from(env_host, env_token, file).map_err(|e| match e {
        ConfigError::NotConfigured if !servers.servers.is_empty() => ConfigError::NoCurrent {
            known: servers.names(),
        },
        e => e,
    })
}

fn resolve_from(
    env_host: Option<String>,
    env_token: Option<String>,
    file: FileConfig,
) -> Result<Config, ConfigError> {
    // The file's CA belongs to the file's server only.
    let ca_pem = match (&env_host, &file.host) {
        (Some(env), Some(own)) if same_host(env, own) => file.ca_pem,
        (Some(_), _) => None,
        (None, _) => file.ca_pem,
    };
    let host = env_host.or(file.host).filter(|h| !h.trim().is_empty());
    let token = env_token.or(file.token).filter(|t| !t.trim().is_empty());
    match (host, token) {
        (Some(host), Some(token)) => Ok(Config {
            host,
            token,
            ca_pem,
        }),
        (None, None) => Err(ConfigError::NotConfigured),
        (None, Some(_)) => Err(ConfigError::NoHost),
        (Some(host), None) => Err(ConfigError::NoToken { host }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefers_absolute_xdg() {
        let p = path_from(Some("/x/cfg".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/x/cfg/berth/config.json")));
        let p = path_from(Some("relative".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.config/berth/config.json")));
        let p = path_from(None, Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.config/berth/config.json")));
        assert_eq!(path_from(Some("".into()), None), None);
    }

    #[test]
    fn env_overrides_file() {
        let file = FileConfig {
            host: Some("http://f".into()),
            token: Some("ft".into()),
            ca_pem: None,
        };
        let c = resolve_from(Some("http://e".into()), None, file.clone());
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://e".into(),
                token: "ft".into(),
                ca_pem: None
            })
        );
        let c = resolve_from(None, Some("et".into()), file.clone());
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://f".into(),
                token: "et".into(),
                ca_pem: None
            })
        );
        let c = resolve_from(None, None, file);
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://f".into(),
                token: "ft".into(),
                ca_pem: None
            })
        );
    }

    #[test]
    fn missing_settings_say_how_to_fix() {
        let e = resolve_from(None, None, FileConfig::default())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("berth login URL --token T")),
            "{e:?}"
        );
        let e = resolve_from(Some("http://h".into()), None, FileConfig::default());
        assert!(matches!(e, Err(ConfigError::NoToken { .. })));
        let e = resolve_from(None, Some("t".into()), FileConfig::default());
        assert!(matches!(e, Err(ConfigError::NoHost)));
    }

    #[test]
    fn save_writes_private_file() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a/berth/config.json");
        save_to(&path, "http://h:1", "tok")?;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = read_file(&path)?;
        assert_eq!(
            read,
            Some(FileConfig {
                host: Some("http://h:1".into()),
                token: Some("tok".into()),
                ca_pem: None
            })
        );
        // Overwriting keeps it private and replaces the values.
        save_to(&path, "http://h:2", "tok2")?;
        assert_eq!(
            read_file(&path)?.and_then(|f| f.token).as_deref(),
            Some("tok2")
        );
        assert_eq!(
            std::fs::read_dir(path.parent().ok_or("no parent")?)?.count(),
            1
        );
        Ok(())
    }

    #[test]
    fn bad_file_is_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json")?;
        assert!(matches!(read_file(&path), Err(ConfigError::Parse { .. })));
        assert_eq!(read_file(&dir.path().join("none.json"))?, None);
        Ok(())
    }

    #[test]
    fn a_local_server_joins_an_old_config_without_replacing_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("berth/config.json");
        std::fs::create_dir_all(dir.path().join("berth"))?;
        // The one-server file `berth login` wrote before there were entries.
        std::fs::write(
            &path,
            r#"{"host":"http://prod.example:7070","token":"prod-token"}"#,
        )?;
        let (name, current) = add_local_at(&path, "http://127.0.0.1:7070", "local-token", None)?;
        assert_eq!(name, "local");
        assert_eq!(current.as_deref(), Some("prod.example"));
        let servers = read_servers(&path)?.ok_or("no config")?;
        assert_eq!(
            servers.current_server().map(|(_, c)| c.token.as_str()),
            Some("prod-token")
        );
        assert_eq!(servers.servers["local"].token, "local-token");
        // Written in the new form.
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("\"servers\""), "{text}");

        // A second local server on another port gets an entry of its own; a new
        // server on the first one's address replaces that entry (its token is stale).
        let (name, _) = add_local_at(&path, "http://127.0.0.1:7071", "t2", None)?;
        assert_eq!(name, "local-7071");
        let (name, _) = add_local_at(&path, "http://127.0.0.1:7070", "t3", None)?;
        assert_eq!(name, "local");
        let servers = read_servers(&path)?.ok_or("no config")?;
        assert_eq!(servers.servers.len(), 3);
        assert_eq!(servers.servers["local"].token, "t3");
        Ok(())
    }

    #[test]
    fn a_local_server_is_current_when_there_was_no_config() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        let (name, current) = add_local_at(&path, "http://127.0.0.1:7070", "t", None)?;
        assert_eq!(
            (name.as_str(), current.as_deref()),
            ("local", Some("local"))
        );
        Ok(())
    }

    #[test]
    fn login_adds_or_updates_entries_and_switch_picks_one() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        assert_eq!(
            login_at(&path, "https://Prod.Example:7070", "a", None, None)?,
            "prod.example"
        );
        assert_eq!(
            login_at(&path, "http://h:1", "b", Some("staging"), None)?,
            "staging"
        );
        // The same URL again updates its entry, whatever it is named.
        assert_eq!(login_at(&path, "http://h:1/", "c", None, None)?, "staging");
        // Another server of the same host name does not replace it.
        assert_eq!(
            login_at(&path, "https://prod.example:8443", "d", None, None)?,
            "prod.example-8443"
        );
        let servers = read_servers(&path)?.ok_or("no config")?;
        assert_eq!(servers.current.as_deref(), Some("prod.example-8443"));
        assert_eq!(servers.servers["staging"].token, "c");
        assert_eq!(servers.servers.len(), 3);

        assert_eq!(switch_at(&path, "staging")?.host, "http://h:1/");
        assert_eq!(
            read_file(&path)?.and_then(|f| f.token).as_deref(),
            Some("c")
        );
        let e = switch_at(&path, "nope").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("prod.example, prod.example-8443, staging")
                    && e.contains("berth login URL --token T --name nope")),
            "{e:?}"
        );
        for bad in ["", "Prod", "-x", "a b", &"x".repeat(64)] {
            assert!(
                login_at(&path, "http://h:9", "t", Some(bad), None).is_err(),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn berth_host_of_a_known_server_takes_its_token() {
        let mut servers = Servers::default();
        for (name, host, token) in [("a", "http://a:1", "ta"), ("b", "http://b:1", "tb")] {
            servers.servers.insert(
                name.into(),
                Config {
                    host: host.into(),
                    token: token.into(),
                    ca_pem: None,
                },
            );
        }
        servers.current = Some("a".into());
        let c = resolve_servers(Some("http://b:1/".into()), None, &servers);
        assert_eq!(c.ok().map(|c| c.token), Some("tb".into()));
        let c = resolve_servers(None, None, &servers);
        assert_eq!(c.ok().map(|c| c.token), Some("ta".into()));
        servers.current = None;
        let e = resolve_servers(None, None, &servers);
        assert!(matches!(e, Err(ConfigError::NoCurrent { .. })), "{e:?}");
    }

    #[test]
    fn a_saved_ca_is_kept_for_its_server_only() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        login_at(&path, "https://h:1", "t", None, Some("PEM".into()))?;
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("\"ca_pem\": \"PEM\""), "{text}");
        login_at(&path, "http://plain:1", "t", None, None)?;
        let text = std::fs::read_to_string(&path)?;
        // An entry without a CA is written as before.
        assert_eq!(text.matches("ca_pem").count(), 1, "{text}");
        let servers = read_servers(&path)?.ok_or("no config")?;
        let c = resolve_servers(Some("https://h:1".into()), None, &servers)?;
        assert_eq!(c.ca_pem.as_deref(), Some("PEM"));
        let c = resolve_servers(None, None, &servers)?;
        assert_eq!(c.ca_pem, None);
        // BERTH_HOST naming another server does not get the current one's CA.
        switch_at(&path, "h")?;
        let servers = read_servers(&path)?.ok_or("no config")?;
        let c = resolve_servers(Some("https://other:1".into()), Some("t".into()), &servers)?;
        assert_eq!(c.ca_pem, None);
        let c = resolve_servers(None, None, &servers)?;
        assert_eq!(c.ca_pem.as_deref(), Some("PEM"));
        Ok(())
    }

    #[test]
    fn names_from_urls() {
        assert_eq!(derived_name("http://127.0.0.1:7070"), "local");
        assert_eq!(derived_name("http://[::1]:7070"), "local");
        assert_eq!(derived_name("http://localhost:7070"), "local");
        assert_eq!(
            derived_name("https://Berth.Example.com/"),
            "berth.example.com"
        );
        assert_eq!(derived_name("http://10.0.0.5:7070"), "10.0.0.5");
        assert!(check_name(&derived_name("http://[fe80::1]:1")).is_ok());
    }
}
