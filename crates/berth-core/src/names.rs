//! Names users choose (apps, services, volumes, timers) and ids berth makes.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid {kind} name {name:?}: {reason}; use 1 to {max} characters of a-z, 0-9 and '-', starting with a letter (for example \"shop\" or \"web-2\")"
)]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
    pub max: usize,
}

fn check(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        name: name.to_string(),
        reason,
        max,
    };
    if name.is_empty() {
        return Err(err("it is empty"));
    }
    if name.len() > max {
        return Err(err("it is too long"));
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() => {}
        _ => return Err(err("it must start with a lower-case letter")),
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err("it has a character other than a-z, 0-9 and '-'"));
    }
    if name.ends_with('-') {
        return Err(err("it ends with '-'"));
    }
    Ok(())
}

/// App names: `[a-z][a-z0-9-]{0,29}`.
pub fn validate_app_name(name: &str) -> Result<(), NameError> {
    check("app", name, 30)
}

/// Service names also become DNS labels (network aliases, hostnames), so they follow the same rule.
pub fn validate_service_name(name: &str) -> Result<(), NameError> {
    check("service", name, 30)
}

pub fn validate_volume_name(name: &str) -> Result<(), NameError> {
    check("volume", name, 30)
}

pub fn validate_timer_name(name: &str) -> Result<(), NameError> {
    check("timer", name, 30)
}

/// A process id: `<service>-<6 hex>`, short and stable for the life of the process.
pub fn new_process_id(service: &str) -> String {
    use rand::Rng;
    let n: u32 = rand::rng().random_range(0..0x100_0000);
    format!("{service}-{n:06x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert!(validate_app_name("shop").is_ok());
        assert!(validate_app_name("a1-b2").is_ok());
        for bad in [
            "",
            "Shop",
            "1shop",
            "shop_",
            "sh op",
            "../x",
            "a/b",
            "shop-",
            "é",
            &"a".repeat(31),
        ] {
            assert!(validate_app_name(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate_app_name("Shop").unwrap_err().to_string();
        assert!(e.contains("\"Shop\"") && e.contains("lower-case"), "{e}");
    }

    #[test]
    fn process_ids_are_short_and_prefixed() {
        let id = new_process_id("web");
        assert!(id.starts_with("web-") && id.len() == 10, "{id}");
    }
}
