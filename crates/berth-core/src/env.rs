//! Environment variables: the one rule for their names, shared by the manifest
//! parsers, the CLI and the server API, and the `KEY=VALUE` / `KEY[=default]`
//! forms built on it.

use crate::model::EnvRequirement;
use thiserror::Error;

/// Longest variable name accepted, in bytes. Real names are a few dozen bytes;
/// the limit keeps absurd keys out of the store and out of error messages.
pub const MAX_ENV_KEY_BYTES: usize = 256;

/// Why a string can't name an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvKeyError {
    /// Empty, starting with a digit, or holding a character other than
    /// ASCII letters, digits and `_`.
    #[error(
        "{key:?} is not a valid variable name; use letters, digits and '_', not starting with a digit (for example DATABASE_URL)"
    )]
    Invalid { key: String },
    /// Longer than [`MAX_ENV_KEY_BYTES`].
    #[error(
        "{}… is {} bytes long; a variable name may be at most {MAX_ENV_KEY_BYTES} bytes, so shorten it",
        quoted_start(.key),
        .key.len()
    )]
    TooLong { key: String },
}

/// The start of an overlong key, quoted, so the message names it without
/// repeating all of it.
fn quoted_start(key: &str) -> String {
    format!("{:?}", key.chars().take(40).collect::<String>())
}

/// Check that `key` may name an environment variable: `[A-Za-z_][A-Za-z0-9_]*`,
/// at most [`MAX_ENV_KEY_BYTES`] bytes.
pub fn check_env_key(key: &str) -> Result<(), EnvKeyError> {
    // Length first, so an overlong key is never quoted whole.
    if key.len() > MAX_ENV_KEY_BYTES {
        return Err(EnvKeyError::TooLong {
            key: key.to_string(),
        });
    }
    let mut chars = key.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(EnvKeyError::Invalid {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// Whether `key` may name an environment variable (see [`check_env_key`]).
pub fn is_valid_env_key(key: &str) -> bool {
    check_env_key(key).is_ok()
}

/// The key of a `KEY=...` form. An empty key gets its own message because it
/// usually means a stray `=` rather than a misspelt name.
fn check_key_before_equals(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(
            "the variable name before '=' is empty; write for example LOG_LEVEL=debug".into(),
        );
    }
    check_env_key(key).map_err(|e| e.to_string())
}

/// Parse a `KEY=VALUE` pair given on the command line (for example to `berth env set`).
/// The key follows [`check_env_key`]; the value may be empty and may itself contain `=`.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!(
            "expected KEY=VALUE, found {:?}; write for example LOG_LEVEL=debug (use KEY= for an empty value)",
            s
        ));
    };
    check_key_before_equals(key)?;
    Ok((key.to_string(), value.to_string()))
}

/// `KEY` or `KEY=default`, as written in a manifest's `environment:` lists.
pub(crate) fn parse_env_requirement(s: &str) -> Result<EnvRequirement, String> {
    match s.split_once('=') {
        Some((key, default)) => {
            check_key_before_equals(key)?;
            Ok(EnvRequirement {
                key: key.to_string(),
                default: Some(default.to_string()),
            })
        }
        None => {
            check_key_before_equals(s)?;
            Ok(EnvRequirement {
                key: s.to_string(),
                default: None,
            })
        }
    }
}

/// The one wording of "the manifest requires variables that are not set", so the
/// server (before a build or rollout) and the CLI (before an upload) say the same.
/// `what` is what needs them (`app shop`, `release R4 of app shop`).
pub fn unset_required_message(what: &str, app: &str, missing: &[String]) -> String {
    let example = missing
        .iter()
        .map(|k| format!("{k}=..."))
        .collect::<Vec<_>>()
        .join(" ");
    let verb = if missing.len() == 1 { "is" } else { "are" };
    format!(
        "{what} needs environment {} which {verb} not set; set it with `berth env set {example} -a {app}` and deploy again",
        missing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env_pair("A=b"), Ok(("A".into(), "b".into())));
        assert_eq!(parse_env_pair("_X1="), Ok(("_X1".into(), String::new())));
        assert_eq!(
            parse_env_pair("URL=a=b=c"),
            Ok(("URL".into(), "a=b=c".into()))
        );
        for bad in ["A", "=x", "1A=x", "A-B=x", "A B=x", ""] {
            let e = parse_env_pair(bad).unwrap_err();
            assert!(
                e.contains("KEY=VALUE") || e.contains("variable name"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unset_required_agrees_in_number() {
        let one = unset_required_message("app shop", "shop", &["A".into()]);
        assert!(
            one.contains("needs environment A which is not set"),
            "{one}"
        );
        assert!(one.contains("`berth env set A=... -a shop`"), "{one}");
        let two = unset_required_message("app shop", "shop", &["A".into(), "B".into()]);
        assert!(two.contains("A, B which are not set"), "{two}");
        assert!(two.contains("`berth env set A=... B=... -a shop`"), "{two}");
    }

    #[test]
    fn env_keys() {
        for good in ["A", "_", "_X1", "DATABASE_URL", "a1", &"K".repeat(256)] {
            assert_eq!(check_env_key(good), Ok(()), "{good}");
            assert!(is_valid_env_key(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "A=B"] {
            assert_eq!(
                check_env_key(bad),
                Err(EnvKeyError::Invalid { key: bad.into() }),
                "{bad}"
            );
            assert!(!is_valid_env_key(bad), "{bad}");
        }
        assert_eq!(
            check_env_key("1X").map_err(|e| e.to_string()),
            Err("\"1X\" is not a valid variable name; use letters, digits and '_', not starting with a digit (for example DATABASE_URL)".to_string())
        );
        let long = "K".repeat(257);
        let e = check_env_key(&long).unwrap_err();
        assert_eq!(e, EnvKeyError::TooLong { key: long.clone() });
        let message = e.to_string();
        assert!(message.contains("257 bytes"), "{message}");
        assert!(message.contains("at most 256 bytes"), "{message}");
        assert!(
            message.starts_with(&format!("\"{}\"…", "K".repeat(40))),
            "{message}"
        );
        assert!(
            !message.contains(&long),
            "the key is not quoted whole: {message}"
        );
    }
}
