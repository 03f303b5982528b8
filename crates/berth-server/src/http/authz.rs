//! Who may call which route: one policy over (method, matched route), so that a
//! route added anywhere is covered by default — a route not listed here needs an
//! admin token until someone decides otherwise.
//!
//! Roles: `admin` (everything), `deploy` (builds, releases, env, scale, restart,
//! stopping processes, and every read of its apps), `read` (read-only routes that
//! reveal no secrets). A token made with `--app A` reaches only routes of app `A`
//! (plus `GET /rack`, so `berth login` can check it, and `GET /apps`, which then
//! lists only `A`).

use axum::http::Method;
use berth_store::access::{Identity, NODE_ROLE};

/// Routes outside the guard: they need no token (`GET` only).
pub const PUBLIC: [&str; 3] = ["/health", "/ca.pem", "/openapi.json"];

/// The least role a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    Read,
    Deploy,
    Admin,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Deploy => "deploy",
            Need::Admin => "admin",
        }
    }
}

fn rank(role: &str) -> Option<Need> {
    match role {
        "read" => Some(Need::Read),
        "deploy" => Some(Need::Deploy),
        "admin" => Some(Need::Admin),
        _ => None,
    }
}

/// The role `method` on the route template `route` (e.g. `/apps/{app}/env`) needs.
pub fn need(method: &Method, route: &str) -> Need {
    let read = *method == Method::GET || *method == Method::HEAD;
    match (read, route) {
        (
            true,
            "/rack"
            | "/instances"
            | "/apps"
            | "/apps/{app}"
            | "/apps/{app}/builds"
            | "/apps/{app}/builds/{id}/logs"
            | "/apps/{app}/releases"
            | "/apps/{app}/processes"
            | "/apps/{app}/logs"
            | "/apps/{app}/timers"
            | "/apps/{app}/volumes"
            | "/apps/{app}/drains"
            | "/apps/{app}/resources"
            | "/apps/{app}/resources/{name}"
            | "/apps/{app}/env/keys"
            | "/apps/{app}/releases/{id}/info",
        ) => Need::Read,
        // Env values and resource URLs are secrets, volume archives and dumps are data: only tokens that may
        // change them may read them. `run` and `exec` are GETs (WebSocket upgrades)
        // that run commands.
        (
            true,
            "/apps/{app}/env"
            | "/apps/{app}/env/effective"
            | "/apps/{app}/volumes/{name}/archive"
            | "/apps/{app}/resources/{name}/url"
            | "/apps/{app}/resources/{name}/backup"
            | "/apps/{app}/resources/{name}/proxy"
            | "/apps/{app}/run"
            | "/apps/{app}/processes/{id}/exec",
        ) => Need::Deploy,
        (
            false,
            "/apps/{app}/builds"
            | "/apps/{app}/deploy"
            | "/apps/{app}/releases/{id}/promote"
            | "/apps/{app}/releases/{id}/rollback"
            | "/apps/{app}/env"
            | "/apps/{app}/services/{service}/scale"
            | "/apps/{app}/restart"
            | "/apps/{app}/processes/{id}"
            | "/apps/{app}/image"
            | "/apps/{app}/image/layers"
            | "/apps/{app}/run"
            | "/apps/{app}/volumes/{name}/archive"
            | "/apps/{app}/drains"
            | "/apps/{app}/drains/{id}"
            | "/apps/{app}/resources/{name}/backup"
            | "/apps/{app}/resources/{name}/upgrade",
        ) => Need::Deploy,
        // Rack-wide log drains (`/drains`) get every app's lines: admin, below.
        // Creating and deleting apps, tokens, the audit trail, and every route not
        // listed above.
        _ => Need::Admin,
    }
}

/// The `{app}` of `path` when `route` has one, percent-decoded.
pub fn app_of(route: &str, path: &str) -> Option<String> {
    let index = route.split('/').position(|s| s == "{app}")?;
    let raw = path.split('/').nth(index)?;
    percent_decode(raw)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `Ok` when `who` may call `method` on `route` (requested as `path`), else the
/// reason, naming the token, what it lacks and what to use instead.
pub fn authorize(who: &Identity, method: &Method, route: &str, path: &str) -> Result<(), String> {
    // Node tokens and the agents' routes are a world of their own: a node token
    // reaches nothing else, and no user token reaches them.
    let agent_route = route.starts_with("/agent/");
    let node_token = who.role == NODE_ROLE;
    match (node_token, agent_route) {
        (true, true) => return Ok(()),
        (true, false) => {
            return Err(format!(
                "token {} is a node token: it only lets `berth agent` introduce its node; use an admin, deploy or read token for {method} {path}",
                who.id
            ));
        }
        (false, true) => {
            return Err(format!(
                "{method} {path} is for berth agents, which call it with a node token (made by `berth instances join`); token {} has role {}",
                who.id, who.role
            ));
        }
        (false, false) => {}
    }
    let need = need(method, route);
    let Some(have) = rank(&who.role) else {
        return Err(format!(
            "token {} has unknown role {:?}; revoke it and create a new one with `berth tokens create`",
            who.id, who.role
        ));
    };
    if have < need {
        return Err(format!(
            "token {} has role {} but {method} {path} needs role {}; use a token with that role (`berth tokens create --role {}`)",
            who.id,
            who.role,
            need.name(),
            need.name()
        ));
    }
    if let Some(allowed) = &who.app {
        let ok = match app_of(route, path) {
            Some(app) => &app == allowed,
            // `GET /apps` answers such a token with its own app only (`http::apps`).
            None => *method == Method::GET && (route == "/rack" || route == "/apps"),
        };
        if !ok {
            return Err(format!(
                "token {} is limited to app {allowed} and cannot call {method} {path}; use a token for that app or one without --app",
                who.id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: &str, app: Option<&str>) -> Identity {
        Identity {
            id: "t1".into(),
            role: role.into(),
            app: app.map(Into::into),
        }
    }

    #[test]
    fn node_tokens_reach_only_the_agents_routes_and_no_one_else_does() {
        let node = who("node", None);
        assert!(authorize(&node, &Method::POST, "/agent/hello", "/agent/hello").is_ok());
        for (method, route) in [
            (Method::GET, "/rack"),
            (Method::GET, "/apps"),
            (Method::POST, "/tokens"),
        ] {
            let e = authorize(&node, &method, route, route).expect_err("a node token elsewhere");
            assert!(e.contains("is a node token"), "{e}");
        }
        for role in ["admin", "deploy", "read"] {
            let e = authorize(
                &who(role, None),
                &Method::POST,
                "/agent/hello",
                "/agent/hello",
            )
            .expect_err("a user token on the agents' route");
            assert!(e.contains("berth instances join"), "{role}: {e}");
        }
    }

    #[test]
    fn roles_reach_only_their_routes() {
        let get = Method::GET;
        let post = Method::POST;
        let delete = Method::DELETE;
        let put = Method::PUT;
        let cases: &[(&Method, &str, &str, [bool; 3])] = &[
            // method, route, path, [read, deploy, admin] allowed
            (&get, "/rack", "/rack", [true, true, true]),
            (&get, "/apps", "/apps", [true, true, true]),
            (&post, "/apps", "/apps", [false, false, true]),
            (&delete, "/apps/{app}", "/apps/a", [false, false, true]),
            (&get, "/apps/{app}/env", "/apps/a/env", [false, true, true]),
            (
                &get,
                "/apps/{app}/env/keys",
                "/apps/a/env/keys",
                [true, true, true],
            ),
            (
                &get,
                "/apps/{app}/env/effective",
                "/apps/a/env/effective",
                [false, true, true],
            ),
            (&post, "/apps/{app}/env", "/apps/a/env", [false, true, true]),
            (
                &post,
                "/apps/{app}/deploy",
                "/apps/a/deploy",
                [false, true, true],
            ),
            (&get, "/apps/{app}/logs", "/apps/a/logs", [true, true, true]),
            (
                &delete,
                "/apps/{app}/processes/{id}",
                "/apps/a/processes/p",
                [false, true, true],
            ),
            (&get, "/tokens", "/tokens", [false, false, true]),
            (&post, "/tokens", "/tokens", [false, false, true]),
            (&get, "/audit", "/audit", [false, false, true]),
            (&get, "/apps/{app}/run", "/apps/a/run", [false, true, true]),
            (
                &get,
                "/apps/{app}/processes/{id}/exec",
                "/apps/a/processes/p/exec",
                [false, true, true],
            ),
            (
                &get,
                "/apps/{app}/volumes/{name}/archive",
                "/apps/a/volumes/d/archive",
                [false, true, true],
            ),
            (
                &get,
                "/apps/{app}/volumes",
                "/apps/a/volumes",
                [true, true, true],
            ),
            (
                &get,
                "/apps/{app}/resources",
                "/apps/a/resources",
                [true, true, true],
            ),
            (
                &get,
                "/apps/{app}/resources/{name}",
                "/apps/a/resources/db",
                [true, true, true],
            ),
            (
                &get,
                "/apps/{app}/resources/{name}/url",
                "/apps/a/resources/db/url",
                [false, true, true],
            ),
            (
                &get,
                "/apps/{app}/resources/{name}/backup",
                "/apps/a/resources/db/backup",
                [false, true, true],
            ),
            (
                &get,
                "/apps/{app}/resources/{name}/proxy",
                "/apps/a/resources/db/proxy",
                [false, true, true],
            ),
            (
                &put,
                "/apps/{app}/resources/{name}/backup",
                "/apps/a/resources/db/backup",
                [false, true, true],
            ),
            (
                &post,
                "/apps/{app}/resources/{name}/upgrade",
                "/apps/a/resources/db/upgrade",
                [false, true, true],
            ),
            (&post, "/rack/prune", "/rack/prune", [false, false, true]),
            (&post, "/rack/backup", "/rack/backup", [false, false, true]),
            (&post, "/rack/update", "/rack/update", [false, false, true]),
            (&get, "/rack/updates", "/rack/updates", [false, false, true]),
            (&post, "/certs", "/certs", [false, false, true]),
            // A route nobody listed yet is admin-only.
            (
                &get,
                "/apps/{app}/widgets",
                "/apps/a/widgets",
                [false, false, true],
            ),
            (
                &post,
                "/apps/{app}/widgets",
                "/apps/a/widgets",
                [false, false, true],
            ),
        ];
        for (method, route, path, allowed) in cases {
            for (role, ok) in ["read", "deploy", "admin"].iter().zip(allowed) {
                let got = authorize(&who(role, None), method, route, path);
                assert_eq!(got.is_ok(), *ok, "{role} {method} {route}: {got:?}");
                if let Err(e) = got {
                    assert!(e.contains(&format!("has role {role}")), "{e}");
                }
            }
        }
    }

    #[test]
    fn app_tokens_stay_in_their_app() {
        let t = who("deploy", Some("web"));
        assert!(authorize(&t, &Method::POST, "/apps/{app}/deploy", "/apps/web/deploy").is_ok());
        assert!(
            authorize(
                &t,
                &Method::POST,
                "/apps/{app}/deploy",
                "/apps/w%65b/deploy"
            )
            .is_ok()
        );
        let e = authorize(&t, &Method::POST, "/apps/{app}/deploy", "/apps/api/deploy")
            .expect_err("other app");
        assert!(e.contains("limited to app web"), "{e}");
        assert!(authorize(&t, &Method::GET, "/apps", "/apps").is_ok());
        assert!(authorize(&t, &Method::POST, "/apps", "/apps").is_err());
        assert!(authorize(&t, &Method::GET, "/rack", "/rack").is_ok());
        assert!(authorize(&t, &Method::GET, "/apps/{app}", "/apps/%ff").is_err());
        assert!(authorize(&who("weird", None), &Method::GET, "/rack", "/rack").is_err());
    }
}
