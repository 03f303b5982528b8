//! Parsing and validation of a manifest: `berth.yml`, or a Kubernetes Pod spec
//! in its place.
//!
//! The YAML is first read into a small span-carrying tree (`yaml`), under
//! tight budgets so that YAML bombs and absurd nesting are refused quickly.
//! Validation then walks that tree by hand, as a Pod spec (`pod`) when it says
//! `kind: Pod` and as `berth.yml` (`berth_yml`) otherwise, so every error,
//! syntax or semantic, names the file, line and column of the node at fault,
//! what was expected, and how to fix it.

mod berth_yml;
mod checker;
mod cron;
mod hints;
mod pod;
#[cfg(test)]
mod tests;
mod values;
mod yaml;

pub use cron::check_cron;
pub use yaml::MAX_MANIFEST_BYTES;

use crate::model::Manifest;
use thiserror::Error;
use yaml::{Fail, Node, Raw, line_of, read_yaml};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ManifestError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse and validate a manifest. `file` names it in errors.
pub fn parse_manifest(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let to_err = |f: Fail| ManifestError {
        file: file.to_string(),
        line: f.line,
        column: f.column,
        message: f.message,
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(to_err(Fail {
            line: 1,
            column: 1,
            message: format!(
                "the file is {} bytes; a manifest may be at most {} bytes. Check that this is the right file",
                text.len(),
                MAX_MANIFEST_BYTES
            ),
        }));
    }
    let root = read_yaml(text).map_err(to_err)?;
    // A Kubernetes Pod spec is accepted in place of berth.yml (see `pod`).
    if pod::is_pod(&root) {
        return pod::manifest(&root).map_err(to_err);
    }
    berth_yml::manifest(text, &root).map_err(to_err)
}

/// The line of `key` (as `KEY` or `KEY=default`) in a berth.yml's
/// `environment:` list: the app-wide one, or `service`'s. The model keeps no
/// spans, so a message about a requirement (such as refusing to unset a
/// required key) finds it again in the text. `None` when the text is not a
/// berth.yml or has no such entry.
pub fn env_requirement_line(text: &str, service: Option<&str>, key: &str) -> Option<usize> {
    fn get<'n>(node: &'n Node, name: &str) -> Option<&'n Node> {
        let Raw::Map(entries) = &node.value else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Raw::Str(s) if s == name))
            .map(|(_, v)| v)
    }
    let root = read_yaml(text).ok()?;
    let owner = match service {
        None => &root,
        Some(name) => get(get(&root, "services")?, name)?,
    };
    let Raw::Seq(items) = &get(owner, "environment")?.value else {
        return None;
    };
    items
        .iter()
        .find(|item| match &item.value {
            Raw::Str(s) => s.split_once('=').map_or(s.as_str(), |(k, _)| k) == key,
            _ => false,
        })
        .map(line_of)
}
