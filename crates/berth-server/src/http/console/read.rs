//! The console's pages that only read: the rack, an app's tabs, tokens and
//! the audit trail. Each reads through the API with the session's token.

use super::api::seg;
use super::auth::Signed;
use super::pages::{
    self, AppPage, AppRow, AuditPage, BuildRow, BuildsPage, CertsPage, ConfirmPage, EnvPage,
    EnvRow, LogRow, LogsPage, NodeRow, ProcessRow, RackPage, ReleasesPage, ServiceRow, TimerRow,
    TimersPage, TokensPage, VolumesPage,
};
use axum::extract::{Path, Query};
use axum::response::Response;
use berth_api::{
    App, AppInfo, AuditEntry, Build, CertInfo, EffectiveEnv, EnvKeys, Instance, LogEntry, Process,
    RackInfo, Release, TimerInfo, TokenInfo, VolumeEntry,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Ends a handler with the error page of a failed API call.
macro_rules! or_fail {
    ($signed:expr, $call:expr, $back:expr) => {
        match $call {
            Ok(v) => v,
            Err(f) => return $signed.failed(f, $back),
        }
    };
}

/// `GET /console/`: the rack and its apps.
pub async fn rack(s: Signed) -> Response {
    let info = s.get::<RackInfo>("/rack");
    let apps = s.get::<Vec<AppInfo>>("/apps?services=true");
    let (info, apps) = tokio::join!(info, apps);
    let info = or_fail!(s, info, "/console/");
    let apps = or_fail!(s, apps, "/console/");
    let rows = apps
        .into_iter()
        .map(|a| {
            let (count, healthy) = a
                .services
                .iter()
                .fold((0, 0), |(c, h), s| (c + s.count, h + s.healthy));
            AppRow {
                release: a.app.release.unwrap_or_else(|| "—".into()),
                name: a.app.name,
                status: a.app.status,
                processes: count,
                healthy,
                health: pages::health(healthy, count),
            }
        })
        .collect();
    // A swarm's nodes; a single engine (no agents) and tokens limited to one
    // app (which may not list instances) show none.
    let nodes = s
        .get::<Vec<Instance>>("/instances")
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.agent.is_some())
        .map(|n| NodeRow {
            hostname: n.hostname,
            role: n.role,
            status: n.status,
            availability: n.availability,
            agent: n.agent.unwrap_or_default(),
            processes: n.processes,
            cpu: format!("{} cores", n.cpus),
            memory: pages::bytes(n.memory),
        })
        .collect();
    pages::page(&RackPage {
        frame: s.frame("Rack", "rack"),
        uptime: pages::duration(info.uptime_secs),
        rack: info,
        apps: rows,
        nodes,
    })
}

/// `GET /console/apps/{app}`: services and processes.
pub async fn app(s: Signed, Path(app): Path<String>) -> Response {
    let base = format!("/apps/{}", seg(&app));
    let info = or_fail!(s, s.get::<AppInfo>(&base).await, "/console/");
    // The processes need the engine: when it is away the page still shows the rest.
    let (processes, processes_error) =
        match s.get::<Vec<Process>>(&format!("{base}/processes")).await {
            Ok(p) => (p, None),
            Err(f) => (vec![], Some(f.message)),
        };
    let services = info
        .services
        .into_iter()
        .map(|sv| ServiceRow {
            health: pages::health(sv.healthy, sv.count),
            name: sv.name,
            urls: sv.urls,
            port: sv.port.map_or_else(|| "—".into(), |p| p.to_string()),
            count: sv.count,
            healthy: sv.healthy,
        })
        .collect();
    let processes = processes
        .into_iter()
        .map(|p| ProcessRow {
            service: match p.kind {
                berth_api::ProcessKind::Service => p.service,
                berth_api::ProcessKind::Run => format!("{} (run)", p.service),
                berth_api::ProcessKind::Timer => {
                    format!("{} (timer {})", p.service, p.timer.unwrap_or_default())
                }
            },
            id: p.id,
            release: p.release,
            state: p.state,
            node: p.node.unwrap_or_else(|| "—".into()),
            cpu: p.cpu.map_or_else(|| "—".into(), |c| format!("{c:.1}%")),
            memory: p.memory.map_or_else(|| "—".into(), pages::bytes),
            restarts: p.restarts,
            last_exit: p.last_exit.map_or_else(|| "—".into(), |c| c.to_string()),
        })
        .collect();
    pages::page(&AppPage {
        frame: s.app_frame(&app, "", app.clone()),
        status: info.app.status,
        release: info.app.release.unwrap_or_else(|| "—".into()),
        services,
        processes,
        processes_error,
    })
}

/// `GET /console/apps/{app}/releases`
pub async fn releases(s: Signed, Path(app): Path<String>) -> Response {
    let path = format!("/apps/{}/releases", seg(&app));
    let releases = or_fail!(s, s.get::<Vec<Release>>(&path).await, "/console/");
    pages::page(&ReleasesPage {
        frame: s.app_frame(&app, "/releases", format!("{app}: releases")),
        releases: releases.into_iter().rev().map(Into::into).collect(),
    })
}

/// `GET /console/apps/{app}/releases/{id}/{promote|rollback}`: the question
/// before the change (the form that makes it).
pub async fn confirm(
    s: Signed,
    Path((app, id, action)): Path<(String, String, String)>,
) -> Response {
    let back = format!("/console/apps/{app}/releases");
    let path = format!("/apps/{}/releases", seg(&app));
    let releases = or_fail!(s, s.get::<Vec<Release>>(&path).await, &back);
    let Some(release) = releases.into_iter().find(|r| r.id == id) else {
        return pages::error(
            s.chrome("rack"),
            axum::http::StatusCode::NOT_FOUND,
            format!("app {app} has no release {id}; pick one from its releases"),
            &back,
        );
    };
    let failed = release.status == "failed";
    let (action, verb, question, explain, force_label) = match action.as_str() {
        "promote" => (
            "promote",
            "Promote",
            format!("Promote {id} of {app}?"),
            format!(
                "{id} ({}) is rolled out: its processes start, and the current ones stop once they are healthy.",
                release.description
            ),
            "Force: replace the processes even when it is the active release",
        ),
        "rollback" => (
            "rollback",
            "Roll back",
            format!("Roll {app} back to {id}?"),
            format!(
                "A new release with {id}'s build and environment ({}) is made and rolled out.",
                release.description
            ),
            "Force: roll back to a release that failed",
        ),
        other => {
            return pages::error(
                s.chrome("rack"),
                axum::http::StatusCode::NOT_FOUND,
                format!("no release action {other}: use promote or rollback"),
                &back,
            );
        }
    };
    pages::page(&ConfirmPage {
        frame: s.app_frame(&app, "/releases", question.clone()),
        release: id,
        action,
        verb,
        question,
        explain,
        force_offered: failed || action == "promote",
        force_label,
    })
}

fn build_row(b: Build) -> BuildRow {
    let duration = b
        .finished
        .as_deref()
        .and_then(|f| pages::seconds_between(&b.created, f))
        .map_or_else(|| "—".to_string(), pages::duration);
    BuildRow {
        created_text: pages::short_time(&b.created),
        id: b.id,
        status: b.status,
        error: b.error,
        created: b.created,
        duration,
    }
}

/// `GET /console/apps/{app}/builds` and `.../builds/{id}` (with its output).
pub async fn builds(s: Signed, Path(app): Path<String>) -> Response {
    builds_page(s, app, None).await
}

pub async fn build(s: Signed, Path((app, id)): Path<(String, String)>) -> Response {
    builds_page(s, app, Some(id)).await
}

async fn builds_page(s: Signed, app: String, shown: Option<String>) -> Response {
    let base = format!("/apps/{}/builds", seg(&app));
    let builds = or_fail!(s, s.get::<Vec<Build>>(&base).await, "/console/");
    let output = match &shown {
        Some(id) => Some(or_fail!(
            s,
            s.text(&format!("{base}/{}/logs", seg(id))).await,
            &format!("/console/apps/{app}/builds")
        )),
        None => None,
    };
    pages::page(&BuildsPage {
        frame: s.app_frame(&app, "/builds", format!("{app}: builds")),
        builds: builds.into_iter().rev().map(build_row).collect(),
        build: shown.unwrap_or_default(),
        output,
    })
}

#[derive(Deserialize)]
pub struct EnvQuery {
    reveal: Option<String>,
}

/// `GET /console/apps/{app}/env[?reveal=KEY]`: keys, values masked; a role that
/// may read values reveals one at a time (a read the audit trail records).
pub async fn env(s: Signed, Path(app): Path<String>, Query(q): Query<EnvQuery>) -> Response {
    let base = format!("/apps/{}/env", seg(&app));
    let keys = or_fail!(
        s,
        s.get::<EnvKeys>(&format!("{base}/keys")).await,
        "/console/"
    );
    let mut revealed: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if let Some(key) = &q.reveal {
        let back = format!("/console/apps/{app}/env");
        let effective = or_fail!(
            s,
            s.get::<EffectiveEnv>(&format!("{base}/effective")).await,
            &back
        );
        for var in effective.vars.into_iter().filter(|v| &v.key == key) {
            let source = match var.source {
                berth_api::EnvSource::Set => String::new(),
                berth_api::EnvSource::Default => "berth.yml default".into(),
                berth_api::EnvSource::Service => {
                    format!("default of service {}", var.service.unwrap_or_default())
                }
            };
            revealed
                .entry(var.key)
                .or_default()
                .push((var.value, source));
        }
    }
    let rows = keys
        .keys
        .into_iter()
        .map(|key| EnvRow {
            values: revealed.remove(&key).unwrap_or_default(),
            key,
        })
        .collect();
    pages::page(&EnvPage {
        frame: s.app_frame(&app, "/env", format!("{app}: environment")),
        rows,
        missing: keys.missing,
    })
}

/// `GET /console/apps/{app}/volumes`
pub async fn volumes(s: Signed, Path(app): Path<String>) -> Response {
    let path = format!("/apps/{}/volumes", seg(&app));
    let volumes = or_fail!(s, s.get::<Vec<VolumeEntry>>(&path).await, "/console/");
    pages::page(&VolumesPage {
        frame: s.app_frame(&app, "/volumes", format!("{app}: volumes")),
        volumes: volumes
            .into_iter()
            .map(|v| {
                (
                    v.name,
                    v.size.map_or_else(|| "—".into(), pages::bytes),
                    if v.used_by.is_empty() {
                        "—".into()
                    } else {
                        v.used_by.join(", ")
                    },
                )
            })
            .collect(),
    })
}

/// `GET /console/apps/{app}/timers`
pub async fn timers(s: Signed, Path(app): Path<String>) -> Response {
    let path = format!("/apps/{}/timers", seg(&app));
    let timers = or_fail!(s, s.get::<Vec<TimerInfo>>(&path).await, "/console/");
    let when = |t: Option<String>| t.as_deref().map_or_else(|| "—".into(), pages::short_time);
    pages::page(&TimersPage {
        frame: s.app_frame(&app, "/timers", format!("{app}: timers")),
        timers: timers
            .into_iter()
            .map(|t| TimerRow {
                last_run: match &t.running {
                    Some(id) => format!("running ({id})"),
                    None => when(t.last_run.clone()),
                },
                exit: t.exit_code.map_or_else(|| "—".into(), |c| c.to_string()),
                next_run: when(t.next_run),
                name: t.name,
                schedule: t.schedule,
                service: t.service,
                command: t.command.join(" "),
            })
            .collect(),
    })
}

/// Whether certificate name `pattern` (exact or `*.example.com`) covers `host`.
fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// `GET /console/apps/{app}/certs`: the router's certificates that cover the
/// app's domains (listing certificates needs an admin token).
pub async fn certs(s: Signed, Path(app): Path<String>) -> Response {
    let info = or_fail!(
        s,
        s.get::<AppInfo>(&format!("/apps/{}", seg(&app))).await,
        "/console/"
    );
    let hosts: Vec<String> = info
        .services
        .iter()
        .flat_map(|sv| &sv.urls)
        .filter_map(|u| u.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split([':', '/']).next().unwrap_or(rest).to_string())
        .collect();
    let (certs, note) = match s.get::<Vec<CertInfo>>("/certs").await {
        Ok(certs) => (
            certs
                .into_iter()
                .filter(|c| c.domains.iter().any(|d| hosts.iter().any(|h| covers(d, h))))
                .collect(),
            None,
        ),
        Err(f) if f.status == axum::http::StatusCode::FORBIDDEN => (
            vec![],
            Some(format!(
                "Certificates are listed to admin tokens only; token {} has role {}.",
                s.who.id, s.who.role
            )),
        ),
        Err(f) => return s.failed(f, "/console/"),
    };
    pages::page(&CertsPage {
        frame: s.app_frame(&app, "/certs", format!("{app}: certificates")),
        certs,
        note,
    })
}

#[derive(Deserialize)]
pub struct LogsQuery {
    service: Option<String>,
}

/// How many stored lines the logs page shows (and the live view starts with).
pub const LOG_TAIL: usize = 200;

/// `GET /console/apps/{app}/logs[?service=S]`: the last lines; the page's
/// script then follows new ones over Server-Sent Events.
pub async fn logs(s: Signed, Path(app): Path<String>, Query(q): Query<LogsQuery>) -> Response {
    let service = q.service.filter(|s| !s.is_empty());
    let mut query = format!("tail={LOG_TAIL}");
    if let Some(sv) = &service {
        query.push_str(&format!("&service={}", seg(sv)));
    }
    let base = format!("/apps/{}", seg(&app));
    let lines = or_fail!(
        s,
        s.text(&format!("{base}/logs?{query}")).await,
        &format!("/console/apps/{app}/logs")
    );
    let lines = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<LogEntry>(l).ok())
        .map(|e| LogRow {
            ts: pages::short_time(&e.ts),
            source: e.source,
            text: e.text,
        })
        .collect();
    let services = s
        .get::<AppInfo>(&base)
        .await
        .map(|i| i.services.into_iter().map(|sv| sv.name).collect())
        .unwrap_or_default();
    pages::page(&LogsPage {
        frame: s.app_frame(&app, "/logs", format!("{app}: logs")),
        stream: format!("/console/apps/{app}/logs/stream?{query}"),
        lines,
        services,
        service: service.unwrap_or_default(),
    })
}

/// `GET /console/tokens` (admin).
pub async fn tokens(s: Signed) -> Response {
    tokens_page(s, None).await
}

/// The tokens page, with a token just made and its secret shown once.
pub async fn tokens_page(s: Signed, created: Option<berth_api::CreatedToken>) -> Response {
    let tokens = or_fail!(s, s.get::<Vec<TokenInfo>>("/tokens").await, "/console/");
    let apps = s
        .get::<Vec<App>>("/apps")
        .await
        .map(|a| a.into_iter().map(|a| a.name).collect())
        .unwrap_or_default();
    pages::page(&TokensPage {
        frame: s.frame("Tokens", "tokens"),
        tokens,
        created,
        apps,
    })
}

/// `GET /console/audit` (admin).
pub async fn audit(s: Signed) -> Response {
    let mut entries = or_fail!(
        s,
        s.get::<Vec<AuditEntry>>("/audit?limit=200").await,
        "/console/"
    );
    // The API answers the last ones oldest first; the page shows the newest first.
    entries.reverse();
    pages::page(&AuditPage {
        frame: s.frame("Audit", "audit"),
        entries,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards_cover_one_level() {
        assert!(super::covers("*.example.com", "a.example.com"));
        assert!(!super::covers("*.example.com", "example.com"));
        assert!(!super::covers("*.example.com", "b.a.example.com"));
        assert!(super::covers("shop.example.com", "SHOP.example.com"));
    }
}
