//! The console's pages: askama templates (`templates/console/`, compiled into
//! the binary) and the small formatting rules their tables share.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use berth_api::{AuditEntry, CertInfo, CreatedToken, RackInfo, Release, TokenInfo};

/// What every page shows around its content: who is signed in and the form
/// token of the session.
#[derive(Default, Clone)]
pub struct Chrome {
    pub signed: bool,
    /// The navigation entry that is current (`rack`, `tokens`, `audit`).
    pub section: &'static str,
    pub token: String,
    pub role: String,
    pub app: Option<String>,
    pub csrf: String,
    pub admin: bool,
    /// The role may change apps (deploy or admin): buttons that change things show.
    pub deploy: bool,
}

/// What every page has around its content: the title, the chrome and, on an
/// app's pages, the app and the current tab.
pub struct Frame {
    pub title: String,
    pub chrome: Chrome,
    /// Empty on pages that are not an app's.
    pub app: String,
    /// The current tab of an app's pages (a path of [`TABS`]).
    pub tab: &'static str,
    pub tabs: &'static [(&'static str, &'static str)],
}

impl Frame {
    /// A page that is not an app's.
    pub fn new(title: impl Into<String>, chrome: Chrome) -> Frame {
        Frame::app(title, chrome, "", "")
    }

    /// A page of `app`, tab `tab` current.
    pub fn app(title: impl Into<String>, chrome: Chrome, app: &str, tab: &'static str) -> Frame {
        Frame {
            title: title.into(),
            chrome,
            app: app.to_string(),
            tab,
            tabs: TABS,
        }
    }
}

/// The tabs of an app's pages: (path after `/console/apps/{app}`, label).
pub const TABS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("/releases", "Releases"),
    ("/builds", "Builds"),
    ("/env", "Environment"),
    ("/volumes", "Volumes"),
    ("/timers", "Timers"),
    ("/certs", "Certificates"),
    ("/logs", "Logs"),
];

/// Renders a template as a page, or says what failed.
pub fn page(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the console could not render this page: {e}"),
        )
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "console/signin.html")]
pub struct Signin {
    pub frame: Frame,
    pub csrf: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub frame: Frame,
    pub heading: String,
    pub message: String,
    pub back: String,
}

/// An error page with `status`.
pub fn error(chrome: Chrome, status: StatusCode, message: String, back: &str) -> Response {
    let heading = match status.as_u16() {
        403 => "Not allowed".to_string(),
        404 => "Not found".to_string(),
        _ => format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let mut response = page(&ErrorPage {
        frame: Frame::new(heading.clone(), chrome),
        heading,
        message,
        back: back.to_string(),
    });
    *response.status_mut() = status;
    response
}

pub struct AppRow {
    pub name: String,
    pub status: String,
    pub release: String,
    pub processes: u32,
    pub healthy: u32,
    /// `healthy`, `degraded` or `idle`: the badge's colour.
    pub health: &'static str,
}

pub struct NodeRow {
    pub hostname: String,
    pub role: String,
    pub status: String,
    pub availability: String,
    pub agent: String,
    pub processes: u32,
    pub cpu: String,
    pub memory: String,
}

#[derive(Template)]
#[template(path = "console/rack.html")]
pub struct RackPage {
    pub frame: Frame,
    pub rack: RackInfo,
    pub uptime: String,
    pub apps: Vec<AppRow>,
    pub nodes: Vec<NodeRow>,
}

pub struct ServiceRow {
    pub name: String,
    pub urls: Vec<String>,
    pub port: String,
    pub count: u32,
    pub healthy: u32,
    pub health: &'static str,
}

pub struct ProcessRow {
    pub id: String,
    pub service: String,
    pub release: String,
    pub state: String,
    pub node: String,
    pub cpu: String,
    pub memory: String,
    pub restarts: u32,
    pub last_exit: String,
}

#[derive(Template)]
#[template(path = "console/app.html")]
pub struct AppPage {
    pub frame: Frame,
    pub status: String,
    pub release: String,
    pub services: Vec<ServiceRow>,
    pub processes: Vec<ProcessRow>,
    pub processes_error: Option<String>,
}

pub struct ReleaseRow {
    pub id: String,
    pub status: String,
    pub error: Option<String>,
    pub description: String,
    pub build: String,
    pub env_version: u64,
    pub created: String,
    pub created_text: String,
}

impl From<Release> for ReleaseRow {
    fn from(r: Release) -> Self {
        ReleaseRow {
            created_text: short_time(&r.created),
            id: r.id,
            status: r.status,
            error: r.error,
            description: r.description,
            build: r.build.unwrap_or_else(|| "—".into()),
            env_version: r.env_version,
            created: r.created,
        }
    }
}

#[derive(Template)]
#[template(path = "console/releases.html")]
pub struct ReleasesPage {
    pub frame: Frame,
    pub releases: Vec<ReleaseRow>,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub frame: Frame,
    pub release: String,
    /// `promote` or `rollback`: the last segment of the form's action.
    pub action: &'static str,
    pub verb: &'static str,
    pub question: String,
    pub explain: String,
    pub force_offered: bool,
    pub force_label: &'static str,
}

/// The page long work streams its progress into, at the `<!--EVENTS-->` mark.
#[derive(Template)]
#[template(path = "console/progress.html")]
pub struct ProgressPage {
    pub frame: Frame,
    pub heading: String,
    pub back: String,
}

pub struct BuildRow {
    pub id: String,
    pub status: String,
    pub error: Option<String>,
    pub created: String,
    pub created_text: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "console/builds.html")]
pub struct BuildsPage {
    pub frame: Frame,
    pub builds: Vec<BuildRow>,
    /// The build whose output is shown, and that output.
    pub build: String,
    pub output: Option<String>,
}

pub struct EnvRow {
    pub key: String,
    /// (value, where it comes from) once revealed; empty while masked.
    pub values: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/env.html")]
pub struct EnvPage {
    pub frame: Frame,
    pub rows: Vec<EnvRow>,
    pub missing: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/volumes.html")]
pub struct VolumesPage {
    pub frame: Frame,
    /// (name, size, used by)
    pub volumes: Vec<(String, String, String)>,
}

pub struct TimerRow {
    pub name: String,
    pub schedule: String,
    pub service: String,
    pub command: String,
    pub last_run: String,
    pub exit: String,
    pub next_run: String,
}

#[derive(Template)]
#[template(path = "console/timers.html")]
pub struct TimersPage {
    pub frame: Frame,
    pub timers: Vec<TimerRow>,
}

#[derive(Template)]
#[template(path = "console/certs.html")]
pub struct CertsPage {
    pub frame: Frame,
    pub certs: Vec<CertInfo>,
    pub note: Option<String>,
}

pub struct LogRow {
    pub ts: String,
    pub source: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/logs.html")]
pub struct LogsPage {
    pub frame: Frame,
    pub lines: Vec<LogRow>,
    pub services: Vec<String>,
    /// The service shown; empty for all.
    pub service: String,
    /// The Server-Sent Events URL of the live lines.
    pub stream: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
pub struct TokensPage {
    pub frame: Frame,
    pub tokens: Vec<TokenInfo>,
    pub created: Option<CreatedToken>,
    pub apps: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub frame: Frame,
    pub entries: Vec<AuditEntry>,
}

/// `1.5 GiB`, `12 MiB`, `300 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3d 4h`, `2h 5m`, `4m 2s`, `12s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// An RFC 3339 time as `2026-12-01 18:22:12` (UTC), or as given when it is not one.
pub fn short_time(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(head) if rfc3339.as_bytes().get(10) == Some(&b'T') => head.replacen('T', " ", 1),
        _ => rfc3339.to_string(),
    }
}

/// Seconds between two RFC 3339 times, when both parse.
pub fn seconds_between(from: &str, to: &str) -> Option<u64> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let a = OffsetDateTime::parse(from, &Rfc3339).ok()?;
    let b = OffsetDateTime::parse(to, &Rfc3339).ok()?;
    u64::try_from((b - a).whole_seconds()).ok()
}

/// The badge colour of `healthy` out of `count`.
pub fn health(healthy: u32, count: u32) -> &'static str {
    match (healthy, count) {
        (_, 0) => "idle",
        (h, c) if h >= c => "healthy",
        _ => "degraded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(bytes(300), "300 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(3700), "1h 1m");
        assert_eq!(duration(90000), "1d 1h");
        assert_eq!(short_time("2026-12-01T18:22:12.5Z"), "2026-12-01 18:22:12");
        assert_eq!(
            seconds_between("2026-12-01T18:22:12Z", "2026-12-01T18:23:14Z"),
            Some(62)
        );
        assert_eq!(health(1, 2), "degraded");
        assert_eq!(health(2, 2), "healthy");
    }
}
