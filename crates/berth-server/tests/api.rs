//! The HTTP API called in memory (`tower::ServiceExt::oneshot`), with the
//! in-memory engine: authentication and the role policy on every route, the
//! error bodies of bad requests, and the status of each kind of failure; the
//! log stream's order, timestamps and `tail`. The same behaviour against
//! Docker is in the `berth` crate's integration tests.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::json;
use tower::ServiceExt;

/// Every authenticated route: method, a path to call it with, the least role it
/// needs (as the README documents the policy). `body` below gives the JSON
/// routes a body of the right shape.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/rack", "read"),
    ("POST", "/rack/prune", "admin"),
    ("POST", "/rack/backup", "admin"),
    ("GET", "/rack/settings", "admin"),
    ("POST", "/rack/settings", "admin"),
    ("GET", "/rack/logs", "admin"),
    ("GET", "/instances", "read"),
    ("POST", "/instances/join", "admin"),
    ("POST", "/instances/n1/drain", "admin"),
    ("POST", "/instances/n1/activate", "admin"),
    ("GET", "/apps", "read"),
    ("POST", "/apps", "admin"),
    ("GET", "/apps/shop", "read"),
    ("DELETE", "/apps/shop", "admin"),
    ("GET", "/apps/shop/builds", "read"),
    ("POST", "/apps/shop/builds", "deploy"),
    ("GET", "/apps/shop/builds/B1/logs", "read"),
    ("POST", "/apps/shop/deploy", "deploy"),
    ("POST", "/apps/shop/image?image=x", "deploy"),
    ("POST", "/apps/shop/image/layers", "deploy"),
    ("GET", "/apps/shop/releases", "read"),
    ("POST", "/apps/shop/releases/R1/promote", "deploy"),
    ("POST", "/apps/shop/releases/R1/rollback", "deploy"),
    ("GET", "/apps/shop/releases/R1/info", "read"),
    ("GET", "/apps/shop/env", "deploy"),
    ("GET", "/apps/shop/env/effective", "deploy"),
    ("GET", "/apps/shop/env/keys", "read"),
    ("POST", "/apps/shop/env", "deploy"),
    ("POST", "/apps/shop/services/web/scale", "deploy"),
    ("GET", "/apps/shop/processes", "read"),
    ("DELETE", "/apps/shop/processes/web-1", "deploy"),
    ("POST", "/apps/shop/restart", "deploy"),
    ("GET", "/apps/shop/logs", "read"),
    ("GET", "/apps/shop/run", "deploy"),
    ("POST", "/apps/shop/run", "deploy"),
    ("GET", "/apps/shop/processes/web-1/exec", "deploy"),
    ("GET", "/apps/shop/timers", "read"),
    ("GET", "/apps/shop/volumes", "read"),
    ("GET", "/apps/shop/volumes/data/archive", "deploy"),
    ("PUT", "/apps/shop/volumes/data/archive", "deploy"),
    ("GET", "/apps/shop/resources", "read"),
    ("GET", "/apps/shop/resources/db", "read"),
    ("GET", "/apps/shop/resources/db/url", "deploy"),
    ("GET", "/apps/shop/resources/db/backup", "deploy"),
    ("GET", "/apps/shop/resources/db/proxy", "deploy"),
    ("PUT", "/apps/shop/resources/db/backup", "deploy"),
    ("POST", "/apps/shop/resources/db/upgrade", "deploy"),
    ("GET", "/tokens", "admin"),
    ("POST", "/tokens", "admin"),
    ("DELETE", "/tokens/t1", "admin"),
    ("GET", "/audit", "admin"),
    ("GET", "/certs", "admin"),
    ("POST", "/certs", "admin"),
    ("POST", "/certs/generate", "admin"),
    ("DELETE", "/certs/c-1", "admin"),
    ("POST", "/certs/c-1/default", "admin"),
    ("GET", "/drains", "admin"),
    ("POST", "/drains", "admin"),
    ("DELETE", "/drains/d-1", "admin"),
    ("GET", "/apps/shop/drains", "read"),
    ("POST", "/apps/shop/drains", "deploy"),
    ("DELETE", "/apps/shop/drains/d-1", "deploy"),
];

const ROLES: [&str; 3] = ["read", "deploy", "admin"];

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("a method")
}

/// A well-formed body for the routes that take JSON, so that what is checked is
/// the route's own answer, not the JSON extractor's.
fn body(m: &str, path: &str) -> Option<serde_json::Value> {
    let tail = path.rsplit('/').next().unwrap_or_default();
    match (m, tail) {
        ("POST", "apps") => Some(json!({ "name": "ghost-new" })),
        ("POST", "settings") => Some(json!({ "log_retention_secs": 86400 })),
        ("POST", "layers") => Some(json!([])),
        ("POST", "backup") => Some(json!({})),
        ("POST", "env") => Some(json!({ "set": { "A": "1" } })),
        ("POST", "scale") => Some(json!({ "count": 1 })),
        ("POST", "restart") => Some(json!({})),
        ("POST", "upgrade") => Some(json!({ "image": "postgres:16" })),
        ("POST", "run") => Some(json!({ "service": "web" })),
        ("POST", "tokens") => Some(json!({ "role": "read" })),
        ("POST", "certs") => Some(json!({ "cert_pem": "", "key_pem": "" })),
        ("POST", "generate") => Some(json!({ "domains": ["a.example.com"] })),
        // A URL refused before anything is stored.
        ("POST", "drains") => Some(json!({ "url": "nope" })),
        _ => None,
    }
}

fn error_of(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_route_refuses_a_missing_wrong_or_malformed_token_alike() {
    let t = TestRack::new().await;
    for (m, path, _) in ROUTES {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic dXNlcjpwdw=="),
            Some("Bearer"),
        ] {
            let mut request = Request::builder().method(method(m)).uri(*path);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let request = request.body(Body::empty()).expect("a request");
            let (status, body) = t.send(request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {path} with {auth:?}");
            assert!(
                error_of(&body).contains("missing or invalid token"),
                "{m} {path}: {body}"
            );
        }
    }
    // The open routes.
    let (status, body) = t.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!("ok")));
    let request = Request::builder()
        .uri("/ca.pem")
        .body(Body::empty())
        .expect("a request");
    let response = berth_server::http::app(t.rack.clone())
        .oneshot(request)
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/x-pem-file"[..])
    );
    let (status, body) = t.call(Method::GET, "/ca.pem", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let on_disk = std::fs::read_to_string(t.data.path().join("ca/ca.pem")).unwrap_or_default();
    assert_eq!(body.as_str(), Some(on_disk.as_str()));
    assert!(on_disk.contains("BEGIN CERTIFICATE"), "{on_disk}");
}

#[tokio::test]
async fn every_route_refuses_roles_below_its_need_and_lets_the_others_through() {
    let t = TestRack::new().await;
    let tokens: Vec<(String, &str)> = ROLES.iter().map(|r| (t.token(r, None), *r)).collect();
    let rank = |r: &str| ROLES.iter().position(|x| *x == r).unwrap_or(0);
    for (m, path, need) in ROUTES {
        for (token, role) in &tokens {
            // `ghost` does not exist, so what passes the policy changes nothing.
            let path = path.replace("/shop", "/ghost");
            let (status, body) = t.call(method(m), &path, Some(token), body(m, &path)).await;
            if rank(role) < rank(need) {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} {m} {path}: {body}");
                let error = error_of(&body);
                assert!(
                    error.contains(&format!("has role {role}"))
                        && error.contains(&format!("needs role {need}")),
                    "{role} {m} {path}: {error}"
                );
            } else {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} {m} {path} was refused: {status} {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_app_token_reaches_only_its_app() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.create_app("other").await;
    let token = t.token("deploy", Some("shop"));
    let (status, _) = t.call(Method::GET, "/apps/shop", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.call(Method::GET, "/rack", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "berth login checks GET /rack");
    let within_deploy =
        |(_, p, need): &&(&str, &str, &str)| p.starts_with("/apps/shop") && *need != "admin";
    for (m, path, _) in ROUTES.iter().filter(within_deploy) {
        let path = path.replace("/shop", "/other");
        let (status, body) = t.call(method(m), &path, Some(&token), body(m, &path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{m} {path}: {body}");
        assert!(error_of(&body).contains("limited to app shop"), "{body}");
    }
    // Listing apps answers with its own app only.
    let (status, body) = t.call(Method::GET, "/apps", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["shop"], "{body}");
    let (status, body) = t.admin(Method::GET, "/apps", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test]
async fn tokens_cannot_be_limited_to_an_app_that_does_not_exist() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let (status, body) = t
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({ "role": "deploy", "app": "nosuchapp" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("app nosuchapp does not exist") && error.contains("`berth apps`"),
        "{body}"
    );
    let (status, body) = t
        .admin(
            Method::POST,
            "/tokens",
            Some(json!({ "role": "read", "app": "shop" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn bad_json_wrong_types_and_framework_refusals_get_the_json_error_body() {
    let t = TestRack::new().await;
    let admin = t.admin.clone();
    let post = |body: Body, content_type: Option<&str>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/apps")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"));
        if let Some(c) = content_type {
            r = r.header(header::CONTENT_TYPE, c);
        }
        r.body(body).expect("a request")
    };
    let (status, body) = t
        .send(post(Body::from("{\"name\":"), Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("see the request types in berth-api"),
        "{body}"
    );
    let (status, body) = t
        .send(post(Body::from("{\"name\": 7}"), Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_of(&body).contains("name"), "{body}");
    let (status, body) = t.send(post(Body::from("{\"name\":\"x\"}"), None)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        error_of(&body).contains("Content-Type: application/json"),
        "{body}"
    );
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
    let (status, body) = t
        .send(post(Body::from(big), Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&body).contains("limit for JSON bodies is 1 MiB"),
        "{body}"
    );

    let (status, body) = t.admin(Method::PUT, "/apps", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        error_of(&body).contains("does not take that method"),
        "{body}"
    );
    let (status, body) = t.admin(Method::GET, "/no/such/route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("no such API route"), "{body}");
}

/// Found by schemathesis: an answer given before the body was read (a wrong
/// token, an unknown app, a bad query) came over a connection hyper then
/// closed, without `Connection: close`, so a keep-alive client's next request
/// on it failed. Such answers now say `Connection: close`; answers to bodies
/// that were read keep the connection.
#[tokio::test]
async fn answers_given_before_the_body_was_read_close_the_connection() {
    let t = TestRack::new().await;
    let request = |uri: &str, token: &str, content_type: &str, body: &'static [u8]| {
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("a request")
    };
    let close = |response: &axum::response::Response| {
        response
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.as_bytes().to_vec())
    };
    let tar = "application/x-tar";
    for (req, status) in [
        (
            request("/apps/nope/deploy", &t.admin, tar, b"not read"),
            404,
        ),
        (request("/apps/nope/image", &t.admin, tar, b"not read"), 400),
        (request("/apps", "wrong", "application/json", b"{}"), 401),
        (request("/no/such/route", &t.admin, tar, b"not read"), 404),
    ] {
        let uri = req.uri().to_string();
        let response = berth_server::http::app(t.rack.clone())
            .oneshot(req)
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), status, "{uri}");
        assert_eq!(close(&response), Some(b"close".to_vec()), "{uri}");
    }
    // A body read to its end keeps the connection, refused or not.
    for (body, status) in [
        (&b"{\"name\":\"shop\"}"[..], 201),
        (&b"{\"name\":7}"[..], 422),
    ] {
        let response = berth_server::http::app(t.rack.clone())
            .oneshot(request("/apps", &t.admin, "application/json", body))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(close(&response), None);
    }
    // And so does a request without a body.
    let response = berth_server::http::app(t.rack.clone())
        .oneshot(
            Request::builder()
                .uri("/apps/nope")
                .header(header::AUTHORIZATION, format!("Bearer {}", t.admin))
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(close(&response), None);
}

#[tokio::test]
async fn unknown_apps_and_bad_names_say_what_to_do_on_every_app_route() {
    let t = TestRack::new().await;
    let app_routes = ROUTES
        .iter()
        .filter(|(_, p, _)| p.starts_with("/apps/shop"))
        // WebSocket routes refuse a plain GET before looking at the app.
        .filter(|(_, p, _)| {
            !p.ends_with("/run") && !p.ends_with("/exec") && !p.ends_with("/proxy")
        });
    for (m, path, _) in app_routes {
        let json = body(m, path);
        let (status, body) = t
            .admin(method(m), &path.replace("/shop", "/ghost"), json.clone())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{m} {path}: {body}");
        assert!(
            error_of(&body)
                .contains("app ghost does not exist; create it with `berth apps create ghost`"),
            "{m} {path}: {body}"
        );
        let (status, body) = t
            .admin(method(m), &path.replace("/shop", "/Bad_Name"), json)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{m} {path}: {body}");
        assert!(
            error_of(&body).contains("invalid app name \"Bad_Name\""),
            "{body}"
        );
    }
}

#[tokio::test]
async fn each_kind_of_failure_has_its_status_through_the_api() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let cases: Vec<(Method, &str, Option<serde_json::Value>, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/apps",
            Some(json!({"name": "shop"})),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            Method::POST,
            "/apps",
            Some(json!({"name": "Shop"})),
            StatusCode::BAD_REQUEST,
            "invalid app name",
        ),
        (
            Method::GET,
            "/apps/shop/releases/R9/info",
            None,
            StatusCode::NOT_FOUND,
            "release R9 of app shop does not exist",
        ),
        (
            Method::POST,
            "/apps/shop/releases/R9/promote",
            None,
            StatusCode::NOT_FOUND,
            "release R9",
        ),
        (
            Method::POST,
            "/apps/shop/restart",
            Some(json!({})),
            StatusCode::CONFLICT,
            "has no release yet",
        ),
        (
            Method::POST,
            "/apps/shop/services/web/scale",
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "nothing to scale",
        ),
        (
            Method::POST,
            "/apps/shop/env",
            Some(json!({"set": {"1BAD": "x"}})),
            StatusCode::BAD_REQUEST,
            "not a valid variable name",
        ),
        (
            Method::POST,
            "/apps/shop/env",
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "nothing to change",
        ),
        (
            Method::DELETE,
            "/apps/shop/processes/web-1",
            None,
            StatusCode::NOT_FOUND,
            "has no process web-1",
        ),
        (
            Method::POST,
            "/apps/shop/run",
            Some(json!({"service": "web"})),
            StatusCode::CONFLICT,
            "has no release yet",
        ),
        (
            Method::GET,
            "/apps/shop/volumes/data/archive",
            None,
            StatusCode::NOT_FOUND,
            "has no volume data",
        ),
        (
            Method::GET,
            "/apps/shop/resources/db/url",
            None,
            StatusCode::NOT_FOUND,
            "app shop has no resource db: its release declares no resources; add `resources: {db: {type: postgres}}`",
        ),
        (
            Method::GET,
            "/apps/shop/resources/Bad_Name",
            None,
            StatusCode::BAD_REQUEST,
            "Bad_Name",
        ),
        (
            Method::POST,
            "/tokens",
            Some(json!({"role": "root"})),
            StatusCode::BAD_REQUEST,
            "unknown role",
        ),
        (
            Method::DELETE,
            "/tokens/t00000000",
            None,
            StatusCode::NOT_FOUND,
            "does not exist",
        ),
        (
            Method::POST,
            "/certs/generate",
            Some(json!({"domains": []})),
            StatusCode::BAD_REQUEST,
            "name at least one domain",
        ),
        (
            Method::POST,
            "/certs",
            Some(json!({"cert_pem": "x", "key_pem": "y"})),
            StatusCode::BAD_REQUEST,
            "PEM",
        ),
        (
            Method::DELETE,
            "/certs/c-000000",
            None,
            StatusCode::NOT_FOUND,
            "does not exist",
        ),
        (
            Method::POST,
            "/apps/shop/image/layers",
            Some(json!(vec!["x"; 10_001])),
            StatusCode::BAD_REQUEST,
            "more than 10000 layers",
        ),
    ];
    for (m, path, body, want, text) in cases {
        let (status, answer) = t.admin(m.clone(), path, body).await;
        assert_eq!(status, want, "{m} {path}: {answer}");
        assert!(error_of(&answer).contains(text), "{m} {path}: {answer}");
    }
    // The last admin token cannot be revoked.
    let (_, tokens) = t.admin(Method::GET, "/tokens", None).await;
    let id = tokens[0]["id"]
        .as_str()
        .expect("the admin token's id")
        .to_string();
    let (status, body) = t
        .admin(Method::DELETE, &format!("/tokens/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_of(&body).contains("last admin token"), "{body}");
    // An upload over --max-upload (1 MiB here) is refused while it is spooled.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/apps/shop/deploy")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin))
        .body(Body::from(vec![0u8; 2 << 20]))
        .expect("a request");
    let (status, body) = t.send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        error_of(&body).contains("the upload is over 1 MiB"),
        "{body}"
    );
    // Not a tar: refused before any stream starts.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/apps/shop/deploy")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin))
        .body(Body::from(vec![0x1f, 0x8b, 8, 0]))
        .expect("a request");
    let (status, body) = t.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_of(&body).contains("gzip-compressed"), "{body}");
    // An engine that does not answer: 503, naming where it was looked for.
    t.runtime.set_unreachable(true);
    let (status, body) = t.admin(Method::DELETE, "/apps/shop", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        error_of(&body).contains("cannot reach the Docker engine"),
        "{body}"
    );
    t.runtime.set_unreachable(false);
    // ... and nothing was lost meanwhile.
    let (status, _) = t.admin(Method::GET, "/apps/shop", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn changes_and_secret_reads_are_audited_plain_reads_are_not() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let reader = t.token("read", None);
    t.call(Method::GET, "/apps/shop", Some(&reader), None).await;
    t.call(Method::GET, "/apps/shop/env", Some(&reader), None)
        .await;
    t.admin(Method::GET, "/apps/shop/env", None).await;
    t.call(Method::GET, "/apps/shop/resources", Some(&reader), None)
        .await;
    t.admin(Method::GET, "/apps/shop/resources/db/url", None)
        .await;
    let (_, audit) = t.admin(Method::GET, "/audit", None).await;
    let lines: Vec<String> = audit
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["role"], a["method"], a["path"], a["status"]
            )
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == "\"admin\" \"POST\" \"/apps\" 201"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "\"read\" \"GET\" \"/apps/shop/env\" 403"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "\"admin\" \"GET\" \"/apps/shop/env\" 200"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"GET\" \"/apps/shop\" ")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "\"admin\" \"GET\" \"/apps/shop/resources/db/url\" 404"),
        "revealing a resource URL is audited, even when refused: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"/apps/shop/resources\"")),
        "{lines:?}"
    );
}

const SECOND: i128 = 1_000_000_000;

#[tokio::test]
async fn stored_logs_are_in_time_order_with_fixed_width_timestamps_and_tail_takes_the_newest() {
    let t = TestRack::new().await;
    // A line as older servers wrote it: trailing zeros of the fraction dropped.
    std::fs::write(
        t.data.path().join("logs/blog.log"),
        "{\"ts\":\"2024-05-01T12:00:00.5Z\",\"source\":\"berth\",\"text\":\"old\"}\n",
    )
    .expect("an old log");
    t.create_app("blog").await;
    t.create_app("shop").await;
    // Whole seconds, where RFC 3339 prints no fraction at all; after every
    // other line of the app, so they are the newest.
    let base = (berth_server::logs::now_nanos() / SECOND + 60) * SECOND;
    let logs = &t.rack.logs;
    logs.append_at("shop", base + 2 * SECOND, "web/web-1a2b3c", "third");
    logs.append_at("shop", base, "web/web-1a2b3c", "first");
    logs.append_at("shop", base + SECOND / 2, "worker/worker-4d5e6f", "second");

    let all = t.log_texts("/apps/shop/logs").await;
    assert_eq!(
        all[all.len() - 3..],
        ["first", "second", "third"],
        "{all:?}"
    );
    let (_, body) = t.admin(Method::GET, "/apps/shop/logs", None).await;
    for entry in ndjson(&body) {
        let ts = entry["ts"].as_str().unwrap_or_default();
        assert!(
            ts.len() == 30 && ts.ends_with('Z'),
            "not fixed width: {entry}"
        );
    }
    let (_, body) = t.admin(Method::GET, "/apps/blog/logs", None).await;
    assert_eq!(
        ndjson(&body)[0]["ts"],
        "2024-05-01T12:00:00.500000000Z",
        "an old line is sent fixed width too"
    );

    assert_eq!(
        t.log_texts("/apps/shop/logs?tail=2").await,
        ["second", "third"]
    );
    assert_eq!(
        t.log_texts("/apps/shop/logs?tail=2&service=web").await,
        ["first", "third"]
    );
    assert!(t.log_texts("/apps/shop/logs?tail=0").await.is_empty());
}

#[tokio::test]
async fn followed_logs_are_sent_in_time_order() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let now = berth_server::logs::now_nanos();
    let logs = &t.rack.logs;
    logs.append_at("shop", now - 10 * SECOND, "web/web-1a2b3c", "s1");
    logs.append_at("shop", now - SECOND / 10, "web/web-1a2b3c", "s3");
    let request = Request::builder()
        .uri("/apps/shop/logs?follow=true&service=web")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin))
        .body(Body::empty())
        .expect("a request");
    let response = berth_server::http::app(t.rack.clone())
        .oneshot(request)
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    // Arriving out of order, as the lines of a collector that started late do.
    logs.append_at("shop", now, "web/web-1a2b3c", "l4");
    logs.append_at("shop", now - 4 * SECOND / 10, "web/web-1a2b3c", "l2");

    let mut body = response.into_body();
    let mut text = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while text.matches('\n').count() < 4 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        text.push_str(&String::from_utf8_lossy(data));
                    }
                }
                _ => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "only got {text}");
    let texts: Vec<String> = ndjson(&serde_json::Value::String(text.clone()))
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(texts, ["s1", "l2", "s3", "l4"], "{text}");
}

#[tokio::test]
async fn a_single_engine_is_one_instance_that_needs_no_agent() {
    let t = TestRack::new().await;
    let (status, body) = t.admin(Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instances = body.as_array().expect("a list");
    assert_eq!(instances.len(), 1, "{body}");
    assert_eq!(instances[0]["agent"], serde_json::Value::Null, "{body}");
    assert_eq!(instances[0]["status"], "ready", "{body}");
    for path in [
        "/instances/join",
        "/instances/x/drain",
        "/instances/x/activate",
    ] {
        let (status, body) = t.admin(Method::POST, path, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert!(error_of(&body).contains("--swarm"), "{path}: {body}");
    }
}

#[tokio::test]
async fn drains_are_added_listed_masked_and_removed_and_bad_urls_refused() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let (status, body) = t
        .admin(
            Method::POST,
            "/apps/shop/drains",
            Some(json!({ "url": "syslog+udp://logs.example.com:514" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("syslog+udp://logs.example.com:514")
            && error.contains("syslog+tcp://HOST:PORT")
            && error.contains("otlp+http://HOST:PORT"),
        "{body}"
    );
    let (status, body) = t
        .admin(
            Method::POST,
            "/apps/shop/drains",
            Some(json!({ "url": "otlp+http://user:secret@127.0.0.1:9/v1/logs" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        body["url"],
        json!("otlp+http://***@127.0.0.1:9/v1/logs"),
        "{body}"
    );
    let (status, body) = t
        .admin(
            Method::POST,
            "/drains",
            Some(json!({ "url": "syslog+tls://127.0.0.1:9", "ca_pem": "not a pem" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_of(&body).contains("--ca"), "{body}");
    // An app's deployer manages its drains, not another app's nor the rack's.
    let token = t.token("deploy", Some("shop"));
    let (status, body) = t
        .call(Method::GET, "/apps/shop/drains", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert!(!body.to_string().contains("secret"), "{body}");
    let (status, _) = t.call(Method::GET, "/drains", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = t
        .call(
            Method::DELETE,
            "/apps/shop/drains/d-00000000",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_of(&body).contains("berth drains -a shop"), "{body}");
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/apps/shop/drains/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = t.admin(Method::GET, "/drains", None).await;
    assert_eq!(body, json!([]));
    assert!(!t.data.path().join("drains").join(&id).exists());
}

#[tokio::test]
async fn a_drain_sends_framed_syslog_and_a_full_one_drops_saying_so_once() {
    use tokio::io::AsyncReadExt;
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a receiver");
    let port = receiver.local_addr().expect("its address").port();
    let (status, body) = t
        .admin(
            Method::POST,
            "/apps/shop/drains",
            Some(json!({ "url": format!("syslog+tcp://127.0.0.1:{port}") })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    t.rack.logs.append("shop", "web/web-1", "hello drain");
    let (mut conn, _) = tokio::time::timeout(std::time::Duration::from_secs(10), receiver.accept())
        .await
        .expect("the drain connects")
        .expect("accepted");
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("hello drain") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the line comes")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // The one line appended since the drain was added, octet-counted.
    let text = String::from_utf8_lossy(&got).into_owned();
    let (len, message) = text.split_once(' ').unwrap_or_default();
    assert_eq!(len.parse::<usize>().ok(), Some(message.len()), "{text}");
    assert!(
        message.starts_with("<14>1 ")
            && message.contains(" shop web-1 process [berth@32473 service=\"web\""),
        "{message}"
    );

    // A drain to a closed port with the smallest buffer fills up and drops.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let (status, body) = t
        .admin(
            Method::POST,
            "/apps/shop/drains",
            Some(json!({ "url": format!("syslog+tcp://127.0.0.1:{closed}"), "max_bytes": 4096 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap_or_default().to_string();
    for i in 0..100 {
        t.rack.logs.append(
            "shop",
            "web/web-1",
            &format!("line {i} of a drain that is down"),
        );
    }
    let (_, list) = t.admin(Method::GET, "/apps/shop/drains", None).await;
    let full = list
        .as_array()
        .and_then(|l| l.iter().find(|d| d["id"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    let dropped = full["dropped"].as_u64().unwrap_or(0);
    assert!(
        dropped > 50 && full["buffered"].as_u64() <= Some(4096),
        "{full}"
    );
    let mut metrics = String::new();
    t.rack.metrics.encode(&mut metrics).expect("metrics");
    assert!(
        metrics.contains(&format!(
            "berth_drain_dropped_total{{drain=\"{id}\"}} {dropped}"
        )),
        "{metrics}"
    );
    // The notice is written by a task: give it a moment.
    let mut notices = 0;
    for _ in 0..50 {
        notices = t
            .rack
            .logs
            .read("shop", 0, None)
            .expect("the log")
            .iter()
            .filter(|e| e.text.contains(&format!("log drain {id}")) && e.text.contains("is full"))
            .count();
        if notices > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(notices, 1);
}
