//! `berth env`: print, get, set and unset an app's environment.

use crate::cli::{AppArg, EnvCommand, JsonArg};
use crate::output::{print_json, print_text};
use crate::progress::finish;
use crate::resolve;
use anyhow::{Result, bail};
use berth_api::{EffectiveEnv, EnvChange, EnvSource, EnvVar};
use berth_client::Client;
use std::borrow::Cow;
use std::io::Write;

pub async fn run(
    app: AppArg,
    json: JsonArg,
    effective: bool,
    command: Option<EnvCommand>,
) -> Result<()> {
    let app = resolve::current_app(app.app.as_deref())?;
    match command {
        // `--json` alone keeps its documented shape, `{KEY: VALUE}` of the values set.
        None if json.json && !effective => print_json(&Client::from_config()?.env(&app).await?),
        None => {
            let env = Client::from_config()?.effective_env(&app).await?;
            if json.json {
                return print_json(&env);
            }
            print_text(&format_env(&env))
        }
        Some(EnvCommand::Get {
            key,
            service,
            json: get_json,
        }) => {
            resolve::check_env_key(&key)?;
            if let Some(s) = &service {
                berth_core::validate_service_name(s)?;
            }
            let env = Client::from_config()?.effective_env(&app).await?;
            let var = value_of(&env, &app, &key, service.as_deref())?;
            if json.json || get_json.json {
                return print_json(&var);
            }
            // The value as it is, for `$(berth env get KEY)`.
            writeln!(std::io::stdout().lock(), "{}", var.value)?;
            Ok(())
        }
        Some(EnvCommand::Set { pairs, promote }) => {
            let mut change = EnvChange {
                promote,
                ..EnvChange::default()
            };
            for pair in &pairs {
                let (k, v) = resolve::parse_env_pair(pair)?;
                change.set.insert(k, unquote(&v).into_owned());
            }
            finish(Client::from_config()?.change_env(&app, &change).await?).await
        }
        Some(EnvCommand::Unset { keys, promote }) => {
            for key in &keys {
                resolve::check_env_key(key)?;
            }
            let mut unset = keys;
            unset.sort();
            unset.dedup();
            let change = EnvChange {
                unset,
                promote,
                ..EnvChange::default()
            };
            finish(Client::from_config()?.change_env(&app, &change).await?).await
        }
    }
}

/// The environment as a dotenv file: `KEY=VALUE` lines grouped under a comment
/// saying where the values come from, values quoted where a line-based reader
/// would otherwise get them wrong.
fn format_env(env: &EffectiveEnv) -> String {
    let mut groups: Vec<(String, Vec<&EnvVar>)> = Vec::new();
    for var in &env.vars {
        let title = match (var.source, &var.service) {
            (EnvSource::Set, _) => "# set with `berth env set`".to_string(),
            (EnvSource::Default, _) => "# defaults in berth.yml (environment:)".to_string(),
            (EnvSource::Service, service) => format!(
                "# defaults of service {} in berth.yml (its environment:, over the app-wide ones)",
                service.as_deref().unwrap_or("?")
            ),
        };
        match groups.iter_mut().find(|(t, _)| *t == title) {
            Some((_, vars)) => vars.push(var),
            None => groups.push((title, vec![var])),
        }
    }
    // Set values first, then app-wide defaults, then each service's.
    groups.sort_by_key(|(_, vars)| vars.first().map(|v| (v.source, v.service.clone())));
    let mut out = String::new();
    for (title, vars) in groups {
        out.push_str(&title);
        out.push('\n');
        for var in vars {
            out.push_str(&format!("{}={}\n", var.key, quote(&var.value)));
        }
    }
    if !env.missing.is_empty() {
        out.push_str(&format!(
            "# required by berth.yml but not set: {}\n",
            env.missing.join(", ")
        ));
    }
    out
}

/// `value` as a dotenv value: as it is, or in double quotes with `\n`, `\r`,
/// `\t`, `\"` and `\\` escaped when it has a line break or other control
/// character, starts with a quote, has blanks at either end or a ` #` (which
/// starts a comment in dotenv).
fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.chars().any(char::is_control)
        && !value.starts_with(['"', '\''])
        && value.trim() == value
        && !value.contains(" #");
    if plain {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// The value of an `env set KEY=VALUE`: a value in double quotes, as `berth env`
/// prints one ([`quote`]), is read back dotenv style; anything else (including
/// a quote that does not close the value) is taken as it is.
fn unquote(value: &str) -> Cow<'_, str> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(c @ ('\\' | '"')) => out.push(c),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                // A lone backslash before the closing quote escapes it: not a quoted value.
                None => return Cow::Borrowed(value),
            },
            '"' => return Cow::Borrowed(value),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The value of `key` the app's processes get (those of `service`, if given):
/// the value set, else the service's default, else the app-wide one. Fails
/// when it is not set anywhere, or when services get different values and no
/// service was named.
fn value_of(env: &EffectiveEnv, app: &str, key: &str, service: Option<&str>) -> Result<EnvVar> {
    if let Some(service) = service
        && env.release.is_some()
        && !env.services.iter().any(|s| s == service)
    {
        bail!(
            "app {app} has no service {service}; its services: {}",
            env.services.join(", ")
        );
    }
    let entries: Vec<&EnvVar> = env.vars.iter().filter(|v| v.key == key).collect();
    if let Some(set) = entries.iter().find(|v| v.source == EnvSource::Set) {
        return Ok((*set).clone());
    }
    let app_default = entries.iter().find(|v| v.source == EnvSource::Default);
    let for_service = |name: &str| {
        entries
            .iter()
            .find(|v| v.source == EnvSource::Service && v.service.as_deref() == Some(name))
            .or(app_default)
            .copied()
    };
    let services: Vec<&str> = match service {
        Some(s) => vec![s],
        None => env.services.iter().map(String::as_str).collect(),
    };
    let mut got: Vec<(&str, &EnvVar)> = services
        .iter()
        .filter_map(|s| Some((*s, for_service(s)?)))
        .collect();
    got.sort_by(|a, b| a.1.value.cmp(&b.1.value));
    match got.as_slice() {
        [] => {
            let release = env
                .release
                .as_deref()
                .map(|r| format!(" (release {r})"))
                .unwrap_or_default();
            let whose = service
                .map(|s| format!(" for service {s}"))
                .unwrap_or_default();
            if env.missing.iter().any(|m| m == key) {
                bail!(
                    "{key} is required by berth.yml{release} but not set; set it with `berth env set {key}=... -a {app}`"
                )
            }
            bail!(
                "{key} is not set in the environment of app {app}{whose}: not with `berth env set`, nor as a default in berth.yml{release}"
            )
        }
        [(_, first), rest @ ..] if rest.iter().all(|(_, v)| v.value == first.value) => {
            // Where services agree with the app-wide default, that is the source to show.
            Ok(app_default
                .filter(|d| d.value == first.value)
                .copied()
                .unwrap_or(*first)
                .clone())
        }
        _ => {
            let each: Vec<String> = got
                .iter()
                .map(|(s, v)| format!("{s} gets {:?}", v.value))
                .collect();
            bail!(
                "{key} differs by service in berth.yml ({}); name one with `berth env get {key} --service SERVICE -a {app}`",
                each.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str, source: EnvSource, service: Option<&str>) -> EnvVar {
        EnvVar {
            key: key.into(),
            value: value.into(),
            source,
            service: service.map(Into::into),
        }
    }

    fn sample() -> EffectiveEnv {
        EffectiveEnv {
            release: Some("R2".into()),
            services: vec!["web".into(), "worker".into()],
            vars: vec![
                var("COLOR", "blue", EnvSource::Set, None),
                var("GREETING", "hello", EnvSource::Default, None),
                var("LEVEL", "info", EnvSource::Default, None),
                var("LEVEL", "debug", EnvSource::Service, Some("worker")),
                var("NOTE", "a\nb", EnvSource::Set, None),
                var("PORT", "8080", EnvSource::Service, Some("web")),
            ],
            missing: vec!["SECRET_KEY".into()],
        }
    }

    #[test]
    fn env_is_grouped_by_source_and_quoted_where_needed() {
        assert_eq!(
            format_env(&sample()),
            "# set with `berth env set`\nCOLOR=blue\nNOTE=\"a\\nb\"\n\
             # defaults in berth.yml (environment:)\nGREETING=hello\nLEVEL=info\n\
             # defaults of service web in berth.yml (its environment:, over the app-wide ones)\nPORT=8080\n\
             # defaults of service worker in berth.yml (its environment:, over the app-wide ones)\nLEVEL=debug\n\
             # required by berth.yml but not set: SECRET_KEY\n"
        );
    }

    #[test]
    fn what_env_prints_env_set_reads_back() {
        for value in [
            "plain",
            "",
            "a=b",
            "line one\nline two\n",
            "tab\there",
            "\"quoted\"",
            "'single'",
            " padded ",
            "x # not a comment",
            "back\\slash \\n literal",
            "C:\\path",
            "{\"json\": true}",
            "ends with \\",
        ] {
            let printed = quote(value);
            assert!(!printed.contains('\n'), "{printed}");
            assert_eq!(unquote(&printed), value, "printed as {printed}");
        }
        assert_eq!(quote("https://x/#top"), "https://x/#top");
        // Values the user types keep their meaning unless they are a quoted string.
        assert_eq!(unquote("\"open"), "\"open");
        assert_eq!(unquote("\"a\"b\""), "\"a\"b\"");
        assert_eq!(unquote("\"\\$HOME\""), "\\$HOME");
    }

    #[test]
    fn get_resolves_as_the_processes_do() -> Result<()> {
        let env = sample();
        assert_eq!(value_of(&env, "shop", "COLOR", None)?.value, "blue");
        assert_eq!(value_of(&env, "shop", "GREETING", None)?.value, "hello");
        assert_eq!(
            value_of(&env, "shop", "PORT", None)?.source,
            EnvSource::Service
        );
        assert_eq!(
            value_of(&env, "shop", "LEVEL", Some("worker"))?.value,
            "debug"
        );
        assert_eq!(value_of(&env, "shop", "LEVEL", Some("web"))?.value, "info");
        let differs = value_of(&env, "shop", "LEVEL", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            differs.contains("web gets \"info\"") && differs.contains("--service"),
            "{differs}"
        );
        let missing = value_of(&env, "shop", "SECRET_KEY", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing.contains("required by berth.yml"), "{missing}");
        let unknown = value_of(&env, "shop", "NOPE", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(unknown.contains("NOPE is not set"), "{unknown}");
        assert!(value_of(&env, "shop", "PORT", Some("api")).is_err());
        Ok(())
    }
}
