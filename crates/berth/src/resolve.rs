//! Turning command-line input into what the API wants: app names, durations, env pairs,
//! manifest paths.

use anyhow::{Context, Result, bail};
use std::path::{Component, Path, PathBuf};

/// `30s`, `10m`, `2h`, `1d` (also `90`, `1h30m`) → seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: use a number and a unit s, m, h or d, such as 30s, 10m, 2h or 1d"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| invalid());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
    }
    if !digits.is_empty() {
        return Err(invalid());
    }
    Ok(total)
}

/// `500MiB`, `1GiB`, `64KiB` (also `1G`, `1GB`, `1M`, `1K`, all 1024-based, or
/// plain bytes) → bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size {text:?}: use a number and a unit KiB, MiB or GiB, such as 500MiB or 1GiB"
        )
    };
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(invalid()),
    };
    n.checked_mul(unit).ok_or_else(invalid)
}

/// `--cpu`: a positive number of cores.
pub fn parse_cpu(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "invalid CPU limit {text:?}: use a positive number of cores, such as 0.5 or 2"
        )),
    }
}

/// `--memory`: a whole number of MiB, at least 1.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(mib) if mib >= 1 => Ok(mib),
        Ok(_) => Err("the memory limit must be at least 1 MiB, such as 256".into()),
        Err(_) => Err(format!(
            "invalid memory limit {text:?}: use a whole number of MiB, at least 1, such as 256"
        )),
    }
}

/// Where the app name came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource<'a> {
    Flag,
    Manifest(&'a Path),
    Directory(&'a Path),
}

/// `--app`, else the manifest's `app:`, else the directory's name; checked against the
/// app name rule so a bad name fails here, saying where it came from.
pub fn pick_app(
    flag: Option<&str>,
    manifest: Option<(&Path, Option<&str>)>,
    dir: &Path,
) -> Result<String> {
    let (name, source) = if let Some(name) = flag {
        (name.to_string(), AppSource::Flag)
    } else if let Some((path, Some(name))) = manifest {
        (name.to_string(), AppSource::Manifest(path))
    } else {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            bail!(
                "cannot tell the app from the directory {}; pass --app NAME or set `app:` in berth.yml",
                dir.display()
            );
        };
        (name.to_string(), AppSource::Directory(dir))
    };
    if let Err(e) = berth_core::validate_app_name(&name) {
        match source {
            AppSource::Flag => bail!("{e}"),
            AppSource::Manifest(p) => bail!("{e} (from `app:` in {})", p.display()),
            AppSource::Directory(d) => bail!(
                "{e} (the app name defaults to the directory's name, {}); pass --app NAME or set `app:` in berth.yml",
                d.display()
            ),
        }
    }
    Ok(name)
}

/// The app for commands run in the current directory: `--app`, else `app:` in
/// ./berth.yml, else the current directory's name.
pub fn current_app(flag: Option<&str>) -> Result<String> {
    if let Some(name) = flag {
        return pick_app(Some(name), None, Path::new(""));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let manifest_path = Path::new("berth.yml");
    let manifest = read_manifest_if_present(&cwd.join(manifest_path), manifest_path)
        .context("cannot take the app name from berth.yml; fix it or pass --app NAME")?;
    pick_app(
        None,
        manifest.as_ref().map(|m| (manifest_path, m.app.as_deref())),
        &cwd,
    )
}

/// Reads and validates a manifest; `None` when the file does not exist.
/// `shown` is how the file is named in errors.
pub fn read_manifest_if_present(path: &Path, shown: &Path) -> Result<Option<berth_core::Manifest>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", shown.display())),
    };
    let manifest = berth_core::parse_manifest(&shown.to_string_lossy(), &text)?;
    Ok(Some(manifest))
}

/// Where a deploy's manifest is on disk, how errors name it, and its path in
/// the source directory when it is inside it.
#[derive(Debug, PartialEq)]
pub struct ManifestFile {
    pub path: PathBuf,
    pub shown: PathBuf,
    pub in_source: Option<String>,
}

/// Finds `-f MANIFEST`: in the source directory `dir` (or absolute), else, as
/// `kubectl apply -f` reads it, from the current directory; a manifest may
/// live outside the source it builds (a Pod spec needs none).
pub fn locate_manifest(dir: &Path, manifest: &Path) -> Result<ManifestFile> {
    let in_dir = dir.join(manifest);
    let from_here = !manifest.is_absolute() && !in_dir.is_file() && manifest.is_file();
    let (path, in_source) = if from_here {
        let abs = std::fs::canonicalize(manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        (manifest.to_path_buf(), manifest_in_source(dir, &abs).ok())
    } else {
        (in_dir, manifest_in_source(dir, manifest).ok())
    };
    let shown = if from_here || dir == Path::new(".") || manifest.is_absolute() {
        manifest.to_path_buf()
    } else {
        path.clone()
    };
    Ok(ManifestFile {
        path,
        shown,
        in_source,
    })
}

/// The manifest's path inside the source directory, with `/` separators, as the server
/// wants it in `?manifest=`. Fails when the manifest is outside `dir`.
pub fn manifest_in_source(dir: &Path, manifest: &Path) -> Result<String> {
    let relative: PathBuf = if manifest.is_absolute() {
        let dir_abs = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot read the source directory {}", dir.display()))?;
        let parent = manifest.parent().unwrap_or(Path::new("/"));
        let parent_abs = std::fs::canonicalize(parent)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let file = manifest.file_name().unwrap_or_default();
        match parent_abs.join(file).strip_prefix(&dir_abs) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => bail!(
                "the manifest {} is outside the source directory {}; it must be part of the upload",
                manifest.display(),
                dir.display()
            ),
        }
    } else {
        manifest.to_path_buf()
    };
    let mut parts: Vec<String> = Vec::new();
    for c in relative.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir if !parts.is_empty() => {
                parts.pop();
            }
            _ => bail!(
                "the manifest {} is outside the source directory {}; it must be part of the upload",
                manifest.display(),
                dir.display()
            ),
        }
    }
    if parts.is_empty() {
        bail!("the manifest path {} names no file", manifest.display());
    }
    Ok(parts.join("/"))
}

/// `KEY=VALUE` → (KEY, VALUE). VALUE may be empty or contain `=`.
pub fn parse_env_pair(text: &str) -> Result<(String, String)> {
    berth_core::env::parse_env_pair(text).map_err(anyhow::Error::msg)
}

/// Environment variable names, by berth-core's rule, so the CLI refuses what the
/// manifest and the server would.
pub fn check_env_key(key: &str) -> Result<()> {
    berth_core::env::check_env_key(key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn durations() {
        let cases = [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7200),
            ("1d", 86_400),
            ("90", 90),
            ("1h30m", 5400),
            ("0s", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "m",
            "10x",
            "1.5h",
            "-1m",
            "10m5",
            "h10",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_duration("3w")
                .err()
                .is_some_and(|e| e.contains("10m"))
        );
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory("256"), Ok(256));
        assert!(parse_memory("0").is_err_and(|e| e.contains("at least 1 MiB")));
        for bad in ["-1", "x", "1.5", ""] {
            assert!(parse_memory(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu("0.5"), Ok(0.5));
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert!(parse_cpu(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn app_resolution_order() -> Result<()> {
        let dir = Path::new("/src/dirname");
        let m = Path::new("berth.yml");
        assert_eq!(
            pick_app(Some("flag"), Some((m, Some("manifest"))), dir)?,
            "flag"
        );
        assert_eq!(
            pick_app(None, Some((m, Some("manifest"))), dir)?,
            "manifest"
        );
        assert_eq!(pick_app(None, Some((m, None)), dir)?, "dirname");
        assert_eq!(pick_app(None, None, dir)?, "dirname");
        Ok(())
    }

    #[test]
    fn bad_app_names_say_where_they_came_from() {
        let e = pick_app(None, None, Path::new("/src/My_App"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("My_App") && e.contains("--app")),
            "{e:?}"
        );
        let e = pick_app(
            None,
            Some((Path::new("berth.yml"), Some("Bad"))),
            Path::new("/x/ok"),
        )
        .err()
        .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("berth.yml")),
            "{e:?}"
        );
        assert!(pick_app(Some("UPPER"), None, Path::new("/x/ok")).is_err());
        assert!(pick_app(None, None, Path::new("/")).is_err());
    }

    #[test]
    fn manifest_paths() -> Result<()> {
        let d = Path::new("src");
        assert_eq!(manifest_in_source(d, Path::new("berth.yml"))?, "berth.yml");
        assert_eq!(
            manifest_in_source(d, Path::new("./k8s/pod.yml"))?,
            "k8s/pod.yml"
        );
        assert_eq!(manifest_in_source(d, Path::new("a/../b.yml"))?, "b.yml");
        assert!(manifest_in_source(d, Path::new("../berth.yml")).is_err());
        assert!(manifest_in_source(d, Path::new(".")).is_err());
        let tmp = tempfile::tempdir()?;
        std::fs::create_dir(tmp.path().join("sub"))?;
        assert_eq!(
            manifest_in_source(tmp.path(), &tmp.path().join("sub/m.yml"))?,
            "sub/m.yml"
        );
        assert!(manifest_in_source(&tmp.path().join("sub"), &tmp.path().join("m.yml")).is_err());
        Ok(())
    }

    #[test]
    fn a_manifest_is_found_in_the_source_else_from_here() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("k8s"))?;
        std::fs::write(src.join("k8s/pod.yml"), "x")?;
        std::fs::write(tmp.path().join("other.yml"), "x")?;
        let found = locate_manifest(&src, Path::new("k8s/pod.yml"))?;
        assert_eq!(found.path, src.join("k8s/pod.yml"));
        assert_eq!(found.in_source.as_deref(), Some("k8s/pod.yml"));
        let outside = tmp.path().join("other.yml");
        let found = locate_manifest(&src, &outside)?;
        assert_eq!((found.path, found.in_source), (outside.clone(), None));
        let found = locate_manifest(&src, Path::new("../other.yml"))?;
        assert_eq!(found.in_source, None);
        Ok(())
    }

    #[test]
    fn env_pairs() -> Result<()> {
        assert_eq!(parse_env_pair("A=1")?, ("A".into(), "1".into()));
        assert_eq!(parse_env_pair("URL=a=b")?, ("URL".into(), "a=b".into()));
        assert_eq!(parse_env_pair("_X=")?, ("_X".into(), String::new()));
        for bad in ["A", "=1", "1A=x", "A-B=1", "A B=1"] {
            assert!(parse_env_pair(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_env_key("DATABASE_URL").is_ok());
        assert!(check_env_key("1X").is_err());
        Ok(())
    }
}
