//! The API's OpenAPI document as a contract: `docs/openapi.json` is what the
//! code generates, every route of the API router (`fn api` in
//! `src/http/mod.rs`) is in it with the same methods, and `GET /openapi.json`
//! serves it without a token.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tower::ServiceExt;

const BLESS: &str = "BERTH_BLESS=1 cargo test -p berth-server --test openapi";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = berth_server::http::openapi_document();
    let path = committed_path();
    if std::env::var_os("BERTH_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "docs/openapi.json is not the document the code generates (first difference at line {line}); \
             regenerate it with `{BLESS}` and commit it"
        );
    }
}

/// (method, path template) of every `.route(...)` of `fn api`, read from its source.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/http/mod.rs");
    let start = source.find("fn api(").expect("fn api in src/http/mod.rs");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("the end of fn api")];
    let mut out = BTreeSet::new();
    for (at, _) in body.match_indices(".route(") {
        let rest = &body[at + ".route(".len()..];
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route( call");
        let args = &rest[..end];
        let path = args
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("no path literal in .route({args})"));
        let methods = &args[args.find(',').expect("a method router") + 1..];
        let mut found = 0;
        for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
            let call = format!("{method}(");
            if methods.match_indices(&call).any(|(i, _)| {
                i == 0
                    || !methods.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && methods.as_bytes()[i - 1] != b'_'
                        && methods.as_bytes()[i - 1] != b':'
            }) {
                out.insert((method.to_uppercase(), path.to_string()));
                found += 1;
            }
        }
        assert!(found > 0, "cannot read the methods of .route({args})");
    }
    out
}

fn document_routes() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(&berth_server::http::openapi_document())
        .expect("the document is JSON");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn list(routes: &BTreeSet<&(String, String)>) -> String {
    routes.iter().map(|(m, p)| format!("\n  {m} {p}")).collect()
}

#[tokio::test]
async fn every_route_of_the_router_is_in_the_document_and_served() {
    let router = router_routes();
    // The source was read right: the router itself answers each of these
    // (method, path) and refuses, with 405, the methods it does not list (with
    // the admin token: the guard runs before a 405 too).
    let t = TestRack::new().await;
    let paths: BTreeSet<&String> = router.iter().map(|(_, p)| p).collect();
    for path in paths {
        let uri = path.replace('{', "%7B").replace('}', "%7D");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("authorization", format!("Bearer {}", t.admin))
                .body(Body::empty())
                .expect("a request");
            let response = berth_server::http::app(t.rack.clone())
                .oneshot(request)
                .await
                .expect("an answer");
            if response.status() == StatusCode::FORBIDDEN {
                // Node-token routes: the role policy answers before a 405 would.
                continue;
            }
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            // A handler's 404 names what it did not find; the fallback's names no route.
            let served = status != StatusCode::METHOD_NOT_ALLOWED
                && !(status == StatusCode::NOT_FOUND && body.contains("no such API route"));
            let listed = router.contains(&(method.to_string(), path.clone()));
            assert_eq!(
                listed, served,
                "{method} {path}: read from fn api: {listed}, the router answers {status} {body}"
            );
        }
    }

    let document = document_routes();
    let missing: BTreeSet<_> = router.difference(&document).collect();
    assert!(
        missing.is_empty(),
        "routes of the API router (fn api in crates/berth-server/src/http/mod.rs) missing from the OpenAPI document:{}\n\
         give each handler a #[utoipa::path(...)] attribute, list it in `paths(...)` of `ApiDoc` in the same file, \
         then regenerate docs/openapi.json with `{BLESS}`",
        list(&missing)
    );
    let stale: BTreeSet<_> = document.difference(&router).collect();
    assert!(
        stale.is_empty(),
        "the OpenAPI document lists routes the API router does not serve:{}",
        list(&stale)
    );

    // The public routes (`authz::PUBLIC`) answer without a token and say so
    // in the document; every other route of the document needs the token.
    let doc: serde_json::Value =
        serde_json::from_str(&berth_server::http::openapi_document()).expect("JSON");
    for (method, path) in &document {
        let op = &doc["paths"][path][method.to_lowercase()];
        let public = berth_server::http::authz::PUBLIC.contains(&path.as_str());
        assert_eq!(
            op["security"] == serde_json::json!([]),
            public,
            "{method} {path}: public {public}, its security: {}",
            op["security"]
        );
        assert_eq!(
            op["responses"].get("401").is_some(),
            !public,
            "{method} {path}: a 401 answer documented only on guarded routes"
        );
    }
    for path in berth_server::http::authz::PUBLIC {
        let (status, _) = t.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path} without a token");
    }

    // Served as generated, without a token.
    let (status, body) = t.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let generated: serde_json::Value =
        serde_json::from_str(&berth_server::http::openapi_document()).expect("JSON");
    assert_eq!(body, generated);
    assert_eq!(body["openapi"], "3.1.0");
}
