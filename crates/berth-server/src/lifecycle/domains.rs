//! Which app and service each host name belongs to. The router keys its table
//! by host, so two claims on one host would send every request to one of them
//! while the other's deploy looked fine; a release that would take a host that
//! another app (or another of its own services) serves is refused before
//! anything of it starts. `berth.yml` takes no wildcard domains, so hosts are
//! compared exactly (in lower case, as the router matches them).

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_core::Manifest;
use berth_store::ReleaseRow;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How a service came to serve a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `<service>.<app>.<rack domain>`, which every routed service gets.
    Default,
    /// Listed under `domain:` in the manifest.
    Domain,
}

/// A host served by a service of an app.
#[derive(Debug, Clone)]
struct Claim {
    app: String,
    service: String,
    kind: Kind,
    /// The release being rolled out now that claims it, if it is not promoted yet.
    deploying: Option<String>,
}

/// The hosts `manifest` routes as `app`'s release: each service with a port
/// gets its default host and its domains.
fn hosts(rack: &Rack, app: &str, manifest: &Manifest) -> Vec<(String, String, Kind)> {
    let mut out = Vec::new();
    for (name, svc) in manifest.services.iter().filter(|(_, s)| s.port.is_some()) {
        out.push((
            rack.default_host(app, name).to_ascii_lowercase(),
            name.clone(),
            Kind::Default,
        ));
        for domain in &svc.domains {
            out.push((domain.to_ascii_lowercase(), name.clone(), Kind::Domain));
        }
    }
    out
}

/// The hosts every app but `app` serves or is about to: its promoted release,
/// and a release of it being rolled out now (whose claim must count before it
/// is promoted, or two apps deploying one host at once would both pass).
fn claims_of_others(rack: &Rack, app: &str) -> Result<BTreeMap<String, Claim>> {
    let mut releases: Vec<(String, String, bool)> = rack
        .store
        .apps()?
        .into_iter()
        .filter(|a| a.name != app)
        .filter_map(|a| Some((a.name, a.release?, false)))
        .collect();
    releases.extend(
        rack.store
            .running_deployments()?
            .into_iter()
            .filter(|d| d.app != app)
            .map(|d| (d.app, d.release, true)),
    );
    let mut claims = BTreeMap::new();
    for (other, id, deploying) in releases {
        // A release that cannot be read serves nothing to collide with.
        let Ok(release) = rack.store.release(&other, &id) else {
            continue;
        };
        let Ok(manifest) = rack.manifest(&release) else {
            continue;
        };
        for (host, service, kind) in hosts(rack, &other, &manifest) {
            claims.entry(host).or_insert_with(|| Claim {
                app: other.clone(),
                service,
                kind,
                deploying: deploying.then(|| id.clone()),
            });
        }
    }
    Ok(claims)
}

/// Fails when `manifest`, as `app`'s release, would route a host that another
/// app serves (or is rolling out), or one host to two of its own services,
/// naming who has the host and what to change.
pub fn check(rack: &Rack, app: &str, manifest: &Manifest) -> Result<()> {
    let mine = hosts(rack, app, manifest);
    let mut own: BTreeMap<&str, (&str, Kind)> = BTreeMap::new();
    for (host, service, kind) in &mine {
        match own.get(host.as_str()) {
            Some((first, first_kind)) if first != service => {
                let (domain_of, default_of) = if *kind == Kind::Domain {
                    (service.as_str(), *first)
                } else if *first_kind == Kind::Domain {
                    (*first, service.as_str())
                } else {
                    (service.as_str(), *first)
                };
                return Err(Error::Conflict(format!(
                    "domain {host} of service {domain_of} is the default host of service {default_of} of the same app {app}; \
                     give service {domain_of} another domain in berth.yml"
                )));
            }
            Some(_) => {}
            None => {
                own.insert(host, (service, *kind));
            }
        }
    }
    let others = claims_of_others(rack, app)?;
    for (host, service, kind) in &mine {
        let Some(owner) = others.get(host) else {
            continue;
        };
        let ours = match kind {
            Kind::Domain => format!("domain {host} of service {service} of app {app}"),
            Kind::Default => {
                format!("{host}, the default host of service {service} of app {app},")
            }
        };
        let how = match owner.kind {
            Kind::Default => "its default host",
            Kind::Domain => "a domain in its berth.yml",
        };
        let when = match &owner.deploying {
            Some(release) => format!(", by release {release} being rolled out now"),
            None => String::new(),
        };
        let other = &owner.app;
        let fix = match (kind, owner.kind) {
            (Kind::Domain, Kind::Default) => {
                format!("give service {service} another domain in berth.yml")
            }
            (Kind::Domain, Kind::Domain) => format!(
                "give service {service} another domain in berth.yml, or remove {host} from app {other}'s berth.yml and deploy {other} first"
            ),
            (Kind::Default, _) => format!(
                "remove {host} from app {other}'s berth.yml and deploy {other} first, or rename service {service}"
            ),
        };
        return Err(Error::Conflict(format!(
            "{ours} is already served by service {} of app {other} ({how}{when}); {fix}",
            owner.service
        )));
    }
    Ok(())
}

/// [`check`] for a release about to be rolled out; a release that already is
/// the app's promoted one (a restart, a scale) claims nothing new.
pub fn check_release(rack: &Rack, release: &ReleaseRow, manifest: &Manifest) -> Result<()> {
    if rack.store.app(&release.app)?.release.as_deref() == Some(release.id.as_str()) {
        return Ok(());
    }
    check(rack, &release.app, manifest)
}

/// Serialises [`check_release`] with `then` (the start of the deployment,
/// which makes the release's claim visible to [`claims_of_others`]), so that
/// of two apps rolling out one host at the same moment only one passes. Held
/// for two store calls, never across an await.
static CLAIMS: Mutex<()> = Mutex::new(());

/// Checks `release`'s hosts ([`check_release`]) and runs `then` while no other
/// rollout can claim a host.
pub fn claim<T>(
    rack: &Rack,
    release: &ReleaseRow,
    manifest: &Manifest,
    then: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let _claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    check_release(rack, release, manifest)?;
    then()
}
