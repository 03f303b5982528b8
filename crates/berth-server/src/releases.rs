//! Releases: promoting one (a rollout), rolling back to one, environment
//! changes that make a new one, the environment processes get, and what
//! changed between two.

use crate::error::{Error, Result};
use crate::progress::{Progress, step};
use crate::rack::Rack;
use crate::views;
use berth_api::{
    DeployResult, EffectiveEnv, EnvChange, EnvKeys, EnvSource, EnvVar, Release, ReleaseInfo,
};
use berth_core::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;

/// Rolls release `id` out; the release and the URLs its services answer on.
pub async fn promote(
    rack: &Rack,
    app: &str,
    id: &str,
    progress: &Progress,
) -> Result<DeployResult> {
    let release = rack.store.release(app, id)?;
    crate::lifecycle::rollout(rack, &release, None, progress).await?;
    deployed(rack, app, id)
}

/// The release `id` as it is now, with the URLs its services answer on.
fn deployed(rack: &Rack, app: &str, id: &str) -> Result<DeployResult> {
    let release = rack.store.release(app, id)?;
    let manifest = rack.manifest(&release)?;
    let urls = manifest
        .services
        .keys()
        .flat_map(|s| rack.service_urls(app, s, &manifest))
        .collect();
    Ok(DeployResult {
        release: views::release(&release),
        urls,
    })
}

/// `berth releases promote`: [`promote`], except that the active release is
/// left alone (replacing every process of what already runs is rarely what was
/// meant) unless `force`.
pub async fn promote_asked(
    rack: &Rack,
    app: &str,
    id: &str,
    force: bool,
    progress: &Progress,
) -> Result<DeployResult> {
    rack.store.release(app, id)?;
    if !force && rack.store.app(app)?.release.as_deref() == Some(id) {
        step(
            progress,
            format!(
                "release {id} is already active; nothing to do (`berth releases promote {id} --force -a {app}` replaces its processes)"
            ),
        )
        .await;
        return deployed(rack, app, id);
    }
    promote(rack, app, id, progress).await
}

/// Refuses to roll back to a release that failed, which would most likely fail
/// the same way, unless `force`.
pub fn check_rollback(rack: &Rack, app: &str, id: &str, force: bool) -> Result<()> {
    let release = rack.store.release(app, id)?;
    if force || release.status != "failed" {
        return Ok(());
    }
    let why = release
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    Err(Error::Conflict(format!(
        "release {id} of app {app} failed{why}. Rolling back to it would most likely fail the same way; \
         roll back to a release that ran (`berth releases -a {app}`), or try anyway with \
         `berth releases rollback {id} --force -a {app}`"
    )))
}

/// A new release copying release `id`'s build, environment and manifest, rolled
/// out; refused for a failed release unless `force` ([`check_rollback`]).
pub async fn rollback(
    rack: &Rack,
    app: &str,
    id: &str,
    force: bool,
    progress: &Progress,
) -> Result<DeployResult> {
    check_rollback(rack, app, id, force)?;
    let old = rack.store.release(app, id)?;
    let new = rack.store.create_release(
        app,
        old.build.as_deref(),
        old.env_version,
        &old.manifest,
        &format!("rollback to {}", old.id),
    )?;
    step(
        progress,
        format!("release {} created (copy of {})", new.id, old.id),
    )
    .await;
    let result = promote(rack, app, &new.id, progress).await?;
    // The app's environment follows the release it now runs.
    rack.store.set_env_version(app, old.env_version)?;
    Ok(result)
}

/// What an environment change led to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EnvChanged {
    /// Every value was already as asked: no environment version, no release.
    Unchanged,
    /// The app has no release yet: the values wait for its first deploy.
    Saved,
    /// A new release, not promoted.
    Released(Release),
    /// A new release, rolled out.
    Deployed(DeployResult),
}

/// Checks an environment change before anything is written.
pub fn check_env_change(change: &EnvChange) -> Result<()> {
    for key in change.set.keys().chain(change.unset.iter()) {
        berth_core::env::check_env_key(key).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    if change.set.is_empty() && change.unset.is_empty() {
        return Err(Error::Invalid(
            "nothing to change; give KEY=VALUE pairs to set or KEYs to unset".into(),
        ));
    }
    Ok(())
}

/// The manifest of the app's promoted release, which an environment change
/// builds its release on; `None` before the first deploy.
fn current_release(rack: &Rack, app: &str) -> Result<Option<(String, std::sync::Arc<Manifest>)>> {
    let Some(id) = rack.store.app(app)?.release else {
        return Ok(None);
    };
    let release = rack.store.release(app, &id)?;
    let manifest = rack.manifest(&release)?;
    Ok(Some((release.id, manifest)))
}

/// Why unsetting `keys` leaves a manifest's requirements unmet: each key with
/// where the manifest requires it (the line, when the text has one). Empty
/// when nothing of `keys` is required.
fn required_unsets(
    release: &str,
    manifest_text: &str,
    manifest: &Manifest,
    keys: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        for owner in manifest.required_by(key) {
            let line =
                berth_core::manifest::env_requirement_line(manifest_text, owner.as_deref(), key)
                    .map(|l| format!("line {l}, "))
                    .unwrap_or_default();
            let list = match &owner {
                None => "the app-wide `environment:`".to_string(),
                Some(service) => format!("`environment:` of service {service}"),
            };
            out.push(format!(
                "release {release}'s berth.yml requires {key} ({line}{list})"
            ));
        }
    }
    out
}

/// Refuses a rolled-out change that unsets keys the promoted release's
/// manifest requires: its release could never start. Checked before anything
/// is written.
pub fn check_env_unset(rack: &Rack, app: &str, change: &EnvChange) -> Result<()> {
    if !change.promote || change.unset.is_empty() {
        return Ok(());
    }
    let row = rack.store.app(app)?;
    let Some(id) = row.release else {
        return Ok(());
    };
    let release = rack.store.release(app, &id)?;
    let manifest = rack.manifest(&release)?;
    // A key that is not set is no change (see `change_env`), whatever requires it.
    let set = rack.store.env(app, row.env_version)?;
    let keys: Vec<String> = change
        .unset
        .iter()
        .filter(|k| set.contains_key(*k) && !manifest.required_by(k).is_empty())
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let required = required_unsets(&release.id, &release.manifest, &manifest, &keys);
    let them = if keys.len() == 1 { "it" } else { "them" };
    Err(Error::Conflict(format!(
        "cannot unset {} of app {app}: {}, so the new release could never start. Keep {them} set, \
         or first deploy a berth.yml that no longer requires {them}",
        keys.join(", "),
        required.join("; "),
    )))
}

/// Writes a new environment version and, when the app has a release, a new
/// release with it (rolled out when `change.promote`). A change that changes
/// nothing (setting values already set, unsetting keys not set) writes neither.
pub async fn change_env(
    rack: &Rack,
    app: &str,
    change: &EnvChange,
    progress: &Progress,
) -> Result<EnvChanged> {
    check_env_change(change)?;
    // Under the app's lock: the values compared with are those the change applies to.
    let before = rack.store.env(app, rack.store.app(app)?.env_version)?;
    let set: BTreeMap<String, String> = change
        .set
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unset: Vec<String> = change
        .unset
        .iter()
        .filter(|k| before.contains_key(*k))
        .cloned()
        .collect();
    if set.is_empty() && unset.is_empty() {
        let mut same: Vec<String> = change
            .set
            .keys()
            .map(|k| format!("{k} already has that value"))
            .collect();
        same.extend(change.unset.iter().map(|k| format!("{k} is not set")));
        step(
            progress,
            format!(
                "no change ({}): no new environment version or release",
                same.join(", ")
            ),
        )
        .await;
        return Ok(EnvChanged::Unchanged);
    }
    let change = EnvChange {
        set,
        unset,
        promote: change.promote,
    };
    check_env_unset(rack, app, &change)?;
    let version = rack.store.change_env(app, &change.set, &change.unset)?;
    let mut what: Vec<String> = change.set.keys().map(|k| format!("set {k}")).collect();
    what.extend(change.unset.iter().map(|k| format!("unset {k}")));
    rack.logs
        .event(app, &format!("env changed: {}", what.join(", ")));
    let Some(current) = rack.store.app(app)?.release else {
        step(
            progress,
            format!("environment version {version} saved; it takes effect at the first deploy"),
        )
        .await;
        return Ok(EnvChanged::Saved);
    };
    let base = rack.store.release(app, &current)?;
    let release = rack.store.create_release(
        app,
        base.build.as_deref(),
        version,
        &base.manifest,
        &format!("env {}", what.join(", ")),
    )?;
    step(progress, format!("release {} created", release.id)).await;
    if change.promote {
        return Ok(EnvChanged::Deployed(
            promote(rack, app, &release.id, progress).await?,
        ));
    }
    let manifest = rack.manifest(&base)?;
    let required = required_unsets(&base.id, &base.manifest, &manifest, &change.unset);
    if !required.is_empty() {
        step(
            progress,
            format!(
                "note: release {} cannot start as it is: {}; set it again or deploy a berth.yml without it",
                release.id,
                required.join("; ")
            ),
        )
        .await;
        return Ok(EnvChanged::Released(views::release(&release)));
    }
    step(
        progress,
        format!(
            "promote it with `berth releases promote {} -a {app}`",
            release.id
        ),
    )
    .await;
    Ok(EnvChanged::Released(views::release(&release)))
}

/// The environment the app's processes get: the values set with `berth env
/// set` (the app's current environment version) and the defaults of the
/// promoted release's manifest, each with its source.
/// The keys of the environment the app's processes get (set and defaults),
/// sorted, without a single value, and the required keys that are unset.
pub fn env_keys(rack: &Rack, app: &str) -> Result<EnvKeys> {
    let effective = effective_env(rack, app)?;
    let mut keys: Vec<String> = effective.vars.into_iter().map(|v| v.key).collect();
    keys.extend(effective.missing.iter().cloned());
    keys.sort();
    keys.dedup();
    Ok(EnvKeys {
        keys,
        missing: effective.missing,
    })
}

pub fn effective_env(rack: &Rack, app: &str) -> Result<EffectiveEnv> {
    let row = crate::apps::get(rack, app)?;
    let set = rack.store.env(app, row.env_version)?;
    let mut vars: Vec<EnvVar> = set
        .iter()
        .map(|(k, v)| EnvVar {
            key: k.clone(),
            value: v.clone(),
            source: EnvSource::Set,
            service: None,
        })
        .collect();
    let Some((release, manifest)) = current_release(rack, app)? else {
        return Ok(EffectiveEnv {
            release: None,
            services: vec![],
            vars,
            missing: vec![],
        });
    };
    let defaults = |reqs: &[berth_core::EnvRequirement]| -> Vec<(String, String)> {
        reqs.iter()
            .filter(|r| !set.contains_key(&r.key))
            .filter_map(|r| Some((r.key.clone(), r.default.clone()?)))
            .collect()
    };
    for (key, value) in defaults(&manifest.environment) {
        vars.push(EnvVar {
            key,
            value,
            source: EnvSource::Default,
            service: None,
        });
    }
    for (name, svc) in &manifest.services {
        for (key, value) in defaults(&svc.environment) {
            vars.push(EnvVar {
                key,
                value,
                source: EnvSource::Service,
                service: Some(name.clone()),
            });
        }
    }
    vars.sort_by(|a, b| (&a.key, a.source, &a.service).cmp(&(&b.key, b.source, &b.service)));
    Ok(EffectiveEnv {
        release: Some(release),
        services: manifest.services.keys().cloned().collect(),
        missing: manifest.missing_env(&set),
        vars,
    })
}

/// A release with what changed since the one before it: env keys (never
/// values) and the manifest as a line diff.
pub fn info(rack: &Rack, app: &str, id: &str) -> Result<ReleaseInfo> {
    crate::apps::get(rack, app)?;
    let release = rack.store.release(app, id)?;
    let previous = rack
        .store
        .releases(app)?
        .into_iter()
        .filter(|r| r.seq < release.seq)
        .max_by_key(|r| r.seq);
    let env = rack.store.env(app, release.env_version)?;
    let before = match &previous {
        Some(p) => rack.store.env(app, p.env_version)?,
        None => BTreeMap::new(),
    };
    let env_added = env
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let env_removed = before
        .keys()
        .filter(|k| !env.contains_key(*k))
        .cloned()
        .collect();
    let env_changed = env
        .iter()
        .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let manifest_diff = match &previous {
        Some(p) if p.manifest != release.manifest => line_diff(&p.manifest, &release.manifest),
        Some(_) => vec![],
        None => line_diff("", &release.manifest),
    };
    Ok(ReleaseInfo {
        release: views::release(&release),
        previous: previous.map(|p| p.id),
        env_added,
        env_removed,
        env_changed,
        manifest_diff,
    })
}

/// Longest-common-subsequence line diff: `  ` kept, `- ` removed, `+ ` added.
/// Manifests are small (at most 1 MiB, typically a few dozen lines); beyond
/// 4000 lines a side the whole old and new text are shown instead.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > 4000 || b.len() > 4000 {
        return a
            .iter()
            .map(|l| format!("- {l}"))
            .chain(b.iter().map(|l| format!("+ {l}")))
            .collect();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diff(1) shows a changed line.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, ["  a", "- b", "+ B", "  c", "+ d"]);
        assert_eq!(line_diff("x", "x"), ["  x"]);
        assert_eq!(line_diff("", "y"), ["+ y"]);
    }
}
