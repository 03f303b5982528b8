//! Parsers for single values written as text in a manifest: relative paths,
//! command lines, host names, health-check paths and volume mounts. They know
//! nothing of YAML; callers add the field's position and path to their errors.

use super::hints::truncate;
use crate::model::VolumeMount;
use crate::names::validate_volume_name;

/// Normalise a relative path (`./a//b/../c/` → `a/c`, `` → error, root → `.`).
/// Absolute paths and paths leaving the root through `..` are errors.
pub(super) fn normalise_relative(p: &str) -> Result<String, String> {
    if p.chars().any(|c| c.is_control()) {
        return Err(format!("{p:?} contains control characters"));
    }
    if p.starts_with('/')
        || p.starts_with('\\')
        || p.get(1..3).is_some_and(|s| s == ":\\" || s == ":/")
    {
        return Err(format!(
            "{p:?} is an absolute path; give a path relative to the source directory you deploy, such as `.` or `services/web`"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "{p:?} leaves the source directory through `..`; only files inside the directory you deploy are uploaded, so give a path inside it"
                    ));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// Split a command line on whitespace, honouring single quotes (literal),
/// double quotes (where `\"` and `\\` escape) and backslash escapes outside quotes.
pub(super) fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => {
                            return Err(format!(
                                "{s:?} has an unclosed single quote; close it with '"
                            ));
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some(other) => {
                                cur.push('\\');
                                cur.push(other);
                            }
                            None => {
                                return Err(format!(
                                    "{s:?} has an unclosed double quote; close it with \""
                                ));
                            }
                        },
                        Some(c) => cur.push(c),
                        None => {
                            return Err(format!(
                                "{s:?} has an unclosed double quote; close it with \""
                            ));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => {
                        return Err(format!(
                            "{s:?} ends with a lone backslash; remove it or write \\\\"
                        ));
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// A host name: lower-case labels of a-z, 0-9 and '-', each 1 to 63 long, not
/// starting or ending with '-', 253 characters at most, and not an IP address.
pub(super) fn check_domain(d: &str) -> Result<(), String> {
    let example = "for example `shop.example.com`";
    if d.is_empty() {
        return Err(format!("the domain is empty; give a host name, {example}"));
    }
    if d.contains("://") || d.contains('/') || d.contains(':') {
        return Err(format!(
            "{d:?} is not a bare host name; drop the scheme, port and path, {example}"
        ));
    }
    if d.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "{d:?} has upper-case letters; write it in lower case: `{}`",
            d.to_ascii_lowercase()
        ));
    }
    if d.len() > 253 {
        return Err(format!(
            "{:?} is longer than 253 characters; a host name can't be",
            truncate(d, 40)
        ));
    }
    if d.starts_with("*.") {
        return Err(format!(
            "{d:?} is a wildcard; list each host name, {example}"
        ));
    }
    let labels: Vec<&str> = d.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(format!(
                "{d:?} has an empty part between dots (or a dot at either end); {example}"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "{d:?} has a part longer than 63 characters; DNS does not allow that"
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "{d:?} has a character other than a-z, 0-9, '-' and '.'; {example}"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "{d:?} has a part starting or ending with '-'; DNS does not allow that"
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "{d:?} looks like an IP address; give a host name, {example}"
        ));
    }
    Ok(())
}

/// The path of an HTTP health check: absolute, without spaces, at most 1024 bytes.
pub(super) fn check_health_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "{p:?} must be a URL path starting with '/', such as `/health`"
        ));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{p:?} has spaces; encode them as %20"));
    }
    if p.len() > 1024 {
        return Err("the health path is longer than 1024 characters".to_string());
    }
    Ok(p.to_string())
}

/// `name:/path/in/container`, with the path normalised.
pub(super) fn parse_volume(s: &str) -> Result<VolumeMount, String> {
    let example = "for example `data:/var/lib/data`";
    let Some((name, path)) = s.split_once(':') else {
        return Err(format!(
            "{s:?} needs a volume name and a path in the container, separated by ':', {example}"
        ));
    };
    validate_volume_name(name).map_err(|e| e.to_string())?;
    if path.contains(':') {
        return Err(format!(
            "{s:?} has more than one ':'; mount options such as `:ro` are not supported, write `name:/path`"
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "the mount point {path:?} must be an absolute path in the container, {example}"
        ));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(format!(
            "the mount point {path:?} contains control characters"
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "the mount point {path:?} contains `..`; write the path without it"
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "the mount point can't be `/`; mount the volume on a directory, {example}"
        ));
    }
    Ok(VolumeMount {
        volume: name.to_string(),
        path: format!("/{}", parts.join("/")),
    })
}

/// A Swarm placement constraint: `node.id`, `node.hostname`, `node.role`,
/// `node.platform.os`, `node.platform.arch`, `node.labels.KEY` or
/// `engine.labels.KEY`, then `==` or `!=`, then a value.
pub(super) fn check_placement(c: &str) -> Result<(), String> {
    const WHAT: &str = "a constraint such as `node.labels.disk==ssd` or `node.role!=manager`";
    let (attr, op, value) = match (c.find("=="), c.find("!=")) {
        (Some(i), _) => (&c[..i], "==", &c[i + 2..]),
        (None, Some(i)) => (&c[..i], "!=", &c[i + 2..]),
        (None, None) => {
            return Err(format!("`{c}` compares nothing; write {WHAT}"));
        }
    };
    let (attr, value) = (attr.trim(), value.trim());
    let label_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'))
    };
    let known = matches!(
        attr,
        "node.id" | "node.hostname" | "node.role" | "node.platform.os" | "node.platform.arch"
    ) || attr
        .strip_prefix("node.labels.")
        .or_else(|| attr.strip_prefix("engine.labels."))
        .is_some_and(label_key);
    if !known {
        return Err(format!(
            "`{attr}` is not a node attribute Swarm places by; use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY or engine.labels.KEY ({WHAT})"
        ));
    }
    if value.is_empty() || value.contains(char::is_whitespace) || value.contains('=') {
        return Err(format!("`{c}` needs one value after `{op}`; write {WHAT}"));
    }
    if attr == "node.role" && !matches!(value, "manager" | "worker") {
        return Err(format!("node.role is `manager` or `worker`, not `{value}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_splitting() {
        assert_eq!(split_command("a  b\tc").unwrap(), strings(&["a", "b", "c"]));
        assert_eq!(
            split_command("sh -c 'echo $HOME; ls'").unwrap(),
            strings(&["sh", "-c", "echo $HOME; ls"])
        );
        assert_eq!(
            split_command(r#"x "a b" '' c\ d"#).unwrap(),
            strings(&["x", "a b", "", "c d"])
        );
        assert!(split_command("\"abc").is_err());
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise_relative(".").unwrap(), ".");
        assert_eq!(normalise_relative("./").unwrap(), ".");
        assert_eq!(normalise_relative("a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(normalise_relative("a/../b").unwrap(), "b");
        assert_eq!(normalise_relative("a/..").unwrap(), ".");
        assert!(normalise_relative("a/../..").is_err());
        assert!(normalise_relative("/a").is_err());
        assert!(normalise_relative("C:\\a").is_err());
    }
}
