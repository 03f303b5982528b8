//! The CLI's configuration: which server to talk to and with which token.
//!
//! Stored at `$XDG_CONFIG_HOME/berth/config.json` (else `~/.config/berth/config.json`) as
//! `{"host": "...", "token": "..."}`, mode 0600. `BERTH_HOST` and `BERTH_TOKEN` override it.

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A server URL and the token to use with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub host: String,
    pub token: String,
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

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the file holds; either field may be missing in a hand-edited file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
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

/// The saved config, `None` when there is no file.
pub fn load() -> Result<Option<Config>, ConfigError> {
    let path = path()?;
    let file = read_file(&path)?;
    Ok(match file {
        Some(FileConfig {
            host: Some(host),
            token: Some(token),
        }) => Some(Config { host, token }),
        _ => None,
    })
}

fn read_file(path: &Path) -> Result<Option<FileConfig>, ConfigError> {
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
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Writes `{host, token}` to the config file (mode 0600) and returns its path.
pub fn save(host: &str, token: &str) -> Result<PathBuf, ConfigError> {
    let path = path()?;
    save_to(&path, host, token)?;
    Ok(path)
}

fn save_to(path: &Path, host: &str, token: &str) -> Result<(), ConfigError> {
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
    let file = FileConfig {
        host: Some(host.to_string()),
        token: Some(token.to_string()),
    };
    let mut text =
        serde_json::to_string_pretty(&file).map_err(|e| werr(path)(std::io::Error::other(e)))?;
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

/// The server and token to use: `BERTH_HOST` / `BERTH_TOKEN` when set, else the config file.
pub fn resolve() -> Result<Config, ConfigError> {
    let env = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let env_host = env("BERTH_HOST");
    let env_token = env("BERTH_TOKEN");
    let file = if env_host.is_some() && env_token.is_some() {
        None
    } else {
        // Without a config dir the env vars alone must do.
        match path() {
            Ok(p) => read_file(&p)?,
            Err(_) => None,
        }
    };
    resolve_from(env_host, env_token, file.unwrap_or_default())
}

fn resolve_from(
    env_host: Option<String>,
    env_token: Option<String>,
    file: FileConfig,
) -> Result<Config, ConfigError> {
    let host = env_host.or(file.host).filter(|h| !h.trim().is_empty());
    let token = env_token.or(file.token).filter(|t| !t.trim().is_empty());
    match (host, token) {
        (Some(host), Some(token)) => Ok(Config { host, token }),
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
        };
        let c = resolve_from(Some("http://e".into()), None, file.clone());
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://e".into(),
                token: "ft".into()
            })
        );
        let c = resolve_from(None, Some("et".into()), file.clone());
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://f".into(),
                token: "et".into()
            })
        );
        let c = resolve_from(None, None, file);
        assert_eq!(
            c.ok(),
            Some(Config {
                host: "http://f".into(),
                token: "ft".into()
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
                token: Some("tok".into())
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
}
