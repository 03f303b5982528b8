//! Rollouts, the reconciler and the one retire path, driven through the API
//! against the in-memory engine and berth's router in this process: no
//! Docker, so each scenario takes milliseconds to a few seconds. The same
//! paths against Docker are in the `berth` crate's integration tests.

mod common;

use axum::http::{Method, StatusCode};
use berth_server::lifecycle::reconcile;
use berth_server::rack::Rack;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn ps(t: &TestRack, app: &str) -> Vec<serde_json::Value> {
    let (status, body) = t
        .admin(Method::GET, &format!("/apps/{app}/processes"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn converge(rack: &Arc<Rack>) {
    reconcile::converge(rack, &mut Default::default(), false)
        .await
        .expect("a reconcile pass");
}

#[tokio::test]
async fn a_deploy_serves_through_the_router_and_a_bad_release_keeps_the_old_one() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let good = web_app(r#"["serve"]"#, "    scale: {count: 2}\n");
    let events = t.deploy("shop", &files(&good)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let urls = &outcome(&events)["value"]["urls"];
    let port = berth_router::RouterHandle::http_addr(&*t.router).port();
    assert_eq!(urls, &json!([format!("http://web.shop.test:{port}/")]));
    let processes = ps(&t, "shop").await;
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert!(
        processes.iter().all(|p| p["state"] == "running"),
        "{processes:?}"
    );
    let (status, body) = t.get("web.shop.test", "/").await;
    assert_eq!(status, 200, "{body}");

    // A release whose health check fails is not promoted; the old one serves on.
    let bad = web_app(
        r#"["serve", "--fail", "/"]"#,
        "    scale: {count: 2}\n    health: {path: /, attempts: 2}\n",
    );
    let events = t.deploy("shop", &files(&bad)).await;
    assert_eq!(outcome(&events)["type"], "error", "{events:?}");
    assert!(
        outcome(&events)["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed its health check"),
        "{events:?}"
    );
    let (_, releases) = t.admin(Method::GET, "/apps/shop/releases", None).await;
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(releases[1]["status"], "active", "{releases}");
    let after = ps(&t, "shop").await;
    let ids = |v: &[serde_json::Value]| v.iter().map(|p| p["id"].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&after),
        ids(&processes),
        "the old processes were touched"
    );
    assert_eq!(t.get("web.shop.test", "/").await.0, 200);
}

#[tokio::test]
async fn the_reconciler_replaces_a_crashed_process_and_removes_strays() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let app = web_app(r#"["serve"]"#, "");
    t.deploy("shop", &files(&app)).await;
    let before = ps(&t, "shop").await;
    let id = before[0]["id"].as_str().expect("an id").to_string();
    let container = t.rack.container_of("shop", &id);
    t.runtime.kill(&container, 3).await.expect("a crash");
    converge(&t.rack).await;
    let after = ps(&t, "shop").await;
    assert_eq!(after[0]["id"], before[0]["id"], "replaced in place");
    assert_eq!(after[0]["restarts"], 1, "{after:?}");
    assert_eq!(after[0]["last_exit"], 3, "{after:?}");
    let route_back = eventually(Duration::from_secs(5), || async {
        t.get("web.shop.test", "/").await.0 == 200
    })
    .await;
    assert!(route_back, "the replacement was never routed");

    // A container of this rack that no row wants goes; others are not touched.
    let replacement = t.rack.container_of("shop", &id);
    let mut spec = t
        .runtime
        .container_spec(&replacement)
        .expect("the process's spec");
    spec.name = format!("berth-{}-shop-web-stray", t.rack.rack_id);
    spec.labels
        .insert("berth.process".into(), "web-stray".into());
    let stray = berth_runtime::Runtime::run_container(&t.runtime, &spec)
        .await
        .expect("a stray");
    let mut foreign = spec.clone();
    foreign.name = "not-berths".into();
    foreign.labels.clear();
    let foreign = berth_runtime::Runtime::run_container(&t.runtime, &foreign)
        .await
        .expect("a foreign container");
    converge(&t.rack).await;
    let inspect = |id: String| {
        let runtime = t.runtime.clone();
        async move {
            berth_runtime::Runtime::inspect_container(&runtime, &id)
                .await
                .expect("inspect")
        }
    };
    assert!(
        inspect(stray.id).await.is_none(),
        "the stray is still there"
    );
    assert!(
        inspect(foreign.id).await.is_some(),
        "a container without berth's labels was removed"
    );
}

#[tokio::test]
async fn a_restarted_server_adopts_what_runs_without_restarting_it() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy(
        "shop",
        &files(&web_app(r#"["serve"]"#, "    scale: {count: 2}\n")),
    )
    .await;
    let containers: Vec<String> = ps(&t, "shop")
        .await
        .iter()
        .map(|p| {
            t.rack
                .container_of("shop", p["id"].as_str().unwrap_or_default())
        })
        .collect();
    let table_before = berth_router::RouterHandle::table(&*t.router);
    let restarted = t.restarted();
    reconcile::converge(&restarted, &mut Default::default(), true)
        .await
        .expect("the first pass");
    for (i, c) in containers.iter().enumerate() {
        let id = restarted
            .store
            .processes(Some("shop"))
            .expect("rows")
            .get(i)
            .map(|p| restarted.container_of("shop", &p.id));
        assert_eq!(id.as_ref(), Some(c), "a process was replaced");
    }
    let table_after = berth_router::RouterHandle::table(&*t.router);
    let backends = |t: &berth_router::RouteTable| {
        t.hosts
            .get("web.shop.test")
            .map(|r| r.backends.len())
            .unwrap_or(0)
    };
    assert_eq!(backends(&table_before), 2);
    assert_eq!(backends(&table_after), 2, "adopted processes keep serving");
}

/// Requests that take a while, started before a process is stopped, all finish.
async fn slow_requests(
    t: &TestRack,
    host: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<u16>> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let addr = berth_router::RouterHandle::http_addr(&*t.router);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    return 0;
                };
                let request =
                    format!("GET /slow HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                if s.write_all(request.as_bytes()).await.is_err() {
                    return 0;
                }
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer).await;
                String::from_utf8_lossy(&answer)
                    .get(9..12)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0)
            })
        })
        .collect();
    // Until the router has sent them all on.
    let pid = t.rack.store.processes(None).expect("rows");
    let reached = eventually(Duration::from_secs(5), || async {
        pid.iter().map(|p| t.router_inflight(&p.id)).sum::<usize>() == n
    })
    .await;
    assert!(reached, "the requests never reached the processes");
    handles
}

#[tokio::test]
async fn ps_stop_and_apps_delete_lose_no_request_that_reached_a_process() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    // Each request takes 600 ms; processes drain for up to 5 s.
    let app = web_app(r#"["serve", "--delay", "600ms"]"#, "    drain: 5\n");
    t.deploy("shop", &files(&app)).await;
    let id = ps(&t, "shop").await[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();

    let inflight = slow_requests(&t, "web.shop.test", 5).await;
    let (status, body) = t
        .admin(Method::DELETE, &format!("/apps/shop/processes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for h in inflight {
        assert_eq!(
            h.await.expect("a request"),
            200,
            "ps stop cut a request short"
        );
    }
    // Restarted in place once the reconciler runs; SIGTERM ended it (143).
    converge(&t.rack).await;
    let after = ps(&t, "shop").await;
    assert_eq!(
        (after[0]["id"].as_str(), after[0]["restarts"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(after[0]["last_exit"], 143, "{after:?}");
    let back = eventually(Duration::from_secs(5), || async {
        t.get("web.shop.test", "/").await.0 == 200
    })
    .await;
    assert!(back, "the restarted process was not routed again");

    let inflight = slow_requests(&t, "web.shop.test", 5).await;
    let (status, body) = t.admin(Method::DELETE, "/apps/shop", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for h in inflight {
        assert_eq!(
            h.await.expect("a request"),
            200,
            "apps delete cut a request short"
        );
    }
    assert_eq!(t.get("web.shop.test", "/").await.0, 404);
    let left = berth_runtime::Runtime::list_containers(&t.runtime, "berth.app", "shop")
        .await
        .expect("a listing");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_rolling_deploy_keeps_the_minimum_routed_and_scale_down_retires_the_newest() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let v1 = web_app(
        r#"["serve"]"#,
        "    scale: {count: 3}\n    deployment: {minimum: 67, maximum: 100}\n",
    );
    t.deploy("shop", &files(&v1)).await;
    let v2 = web_app(
        r#"["serve", "--port", "8080"]"#,
        "    scale: {count: 3}\n    deployment: {minimum: 67, maximum: 100}\n",
    );
    let events = t.deploy("shop", &files(&v2)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let steps: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("stopping 1 old process(es) first")),
        "{steps:?}"
    );
    let processes = ps(&t, "shop").await;
    assert_eq!(processes.len(), 3);
    let release = processes[0]["release"].clone();
    assert!(
        processes.iter().all(|p| p["release"] == release),
        "{processes:?}"
    );

    let oldest = processes
        .iter()
        .filter_map(|p| p["id"].as_str())
        .min_by_key(|id| t.created(id))
        .expect("an oldest process")
        .to_string();
    let (status, body) = t
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/apps/shop/services/web/scale")
                .header("authorization", format!("Bearer {}", t.admin))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(json!({"count": 1}).to_string()))
                .expect("a request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = ps(&t, "shop").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], oldest.as_str(), "the oldest stays");
}

/// The texts of the app's log lines read through the API.
async fn log_texts(t: &TestRack, path: &str) -> Vec<String> {
    let (status, body) = t.admin(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    // One line of NDJSON is a JSON document too, and `send` reads it as one.
    let entries = match body {
        serde_json::Value::Object(_) => vec![body],
        _ => ndjson(&body),
    };
    entries
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_services_logs_hold_the_events_about_it_and_an_unknown_service_is_named() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let id = ps(&t, "shop").await[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    t.runtime
        .kill(&t.rack.container_of("shop", &id), 42)
        .await
        .expect("a crash");
    converge(&t.rack).await;
    let web = log_texts(&t, "/apps/shop/logs?service=web").await;
    for event in [
        format!("process {id} started for release R1"),
        format!("process {id} exited with code 42; replaced"),
    ] {
        assert!(web.contains(&event), "no {event:?} in {web:?}");
    }

    // A service gone from the release still shows the lines it left.
    t.rack
        .logs
        .append("shop", "old/old-1a2b3c", "the last words");
    assert_eq!(
        log_texts(&t, "/apps/shop/logs?service=old").await,
        ["the last words"]
    );
    let (status, body) = t
        .admin(Method::GET, "/apps/shop/logs?service=nope", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("app shop has no service nope")
            && error.contains("web (release R1)")
            && error.contains("old (in the log only)"),
        "{error}"
    );
}

#[tokio::test]
async fn output_is_collected_while_a_deploy_holds_the_app() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let lock = t.rack.app_lock("shop");
    let _deploying = lock.lock().await;
    converge(&t.rack).await;
    let collected = eventually(Duration::from_secs(5), || async {
        log_texts(&t, "/apps/shop/logs?service=web")
            .await
            .iter()
            .any(|text| text.starts_with("listening on"))
    })
    .await;
    assert!(collected, "the process's output waited for the app's lock");
}
