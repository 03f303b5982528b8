//! The HTTP API: routes, token auth, error bodies, NDJSON streams of long work.

use crate::builder;
use crate::deploy::{self, Progress, step};
use crate::rack::{Rack, RackError};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_api::*;
use berth_store::StoreError;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Largest source upload accepted.
pub const MAX_UPLOAD: u64 = 1 << 30;

pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<RackError> for ApiError {
    fn from(e: RackError) -> Self {
        let status = match &e {
            RackError::Store(StoreError::NoApp(_) | StoreError::NotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            RackError::Store(StoreError::AppExists(_)) => StatusCode::CONFLICT,
            RackError::BadRequest(_) | RackError::Manifest(_) | RackError::Name(_) => {
                StatusCode::BAD_REQUEST
            }
            RackError::NotFound(_) => StatusCode::NOT_FOUND,
            RackError::Conflict(_) => StatusCode::CONFLICT,
            RackError::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            RackError::Runtime(r) if crate::engine::is_unreachable(r) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RackError::Runtime(_) => StatusCode::BAD_GATEWAY,
            RackError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            RackError::Store(_) | RackError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        RackError::from(e).into()
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn app(rack: Arc<Rack>) -> Router {
    let uploads = Router::new()
        .route("/apps/{app}/builds", post(create_build).get(list_builds))
        .route("/apps/{app}/deploy", post(deploy))
        .route("/apps/{app}/image", post(crate::ops::deploy_image))
        .route(
            "/apps/{app}/volumes/{name}/archive",
            get(crate::volumes::backup).put(crate::volumes::restore),
        )
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/rack", get(rack_info))
        .route("/apps", get(list_apps).post(create_app))
        .route("/apps/{app}", get(app_info).delete(delete_app))
        .route("/apps/{app}/builds/{id}/logs", get(build_logs))
        .route("/apps/{app}/releases", get(list_releases))
        .route("/apps/{app}/releases/{id}/promote", post(promote))
        .route("/apps/{app}/releases/{id}/rollback", post(rollback))
        .route("/apps/{app}/env", get(get_env).post(change_env))
        .route("/apps/{app}/services/{service}/scale", post(scale))
        .route("/apps/{app}/processes", get(list_processes))
        .route("/apps/{app}/processes/{id}", delete(stop_process))
        .route("/apps/{app}/restart", post(restart))
        .route("/apps/{app}/logs", get(logs))
        .route(
            "/apps/{app}/run",
            get(crate::oneoff::run_ws).post(crate::oneoff::run_detached),
        )
        .route(
            "/apps/{app}/processes/{id}/exec",
            get(crate::oneoff::exec_ws),
        )
        .route("/apps/{app}/timers", get(crate::timers::list))
        .route("/apps/{app}/volumes", get(crate::volumes::list))
        .route("/apps/{app}/image/layers", post(crate::ops::present_layers))
        .route(
            "/apps/{app}/releases/{id}/info",
            get(crate::ops::release_info),
        )
        .route("/rack/prune", post(crate::ops::prune))
        .route(
            "/tokens",
            get(crate::access::list_tokens).post(crate::access::create_token),
        )
        .route("/tokens/{id}", delete(crate::access::revoke_token))
        .route("/audit", get(crate::access::list_audit))
        .route("/certs", get(crate::certs::list).post(crate::certs::import))
        .route("/certs/generate", post(crate::certs::generate))
        .route("/certs/{id}", delete(crate::certs::delete))
        .merge(uploads)
        .layer(DefaultBodyLimit::max(1 << 20))
        .route_layer(axum::middleware::from_fn_with_state(rack.clone(), auth))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such API route; see the route list in the README".into(),
            )
        })
        .with_state(rack)
}

/// Authentication, the role policy (`crate::authz`) and the audit trail.
async fn auth(State(rack): State<Arc<Rack>>, request: Request, next: Next) -> Response {
    crate::access::guard(rack, request, next).await
}

pub(crate) fn check_app(rack: &Rack, app: &str) -> ApiResult<berth_store::AppRow> {
    berth_core::validate_app_name(app).map_err(RackError::from)?;
    Ok(rack.store.app(app)?)
}

fn app_json(rack: &Rack, row: &berth_store::AppRow) -> App {
    let deploying = rack.app_lock(&row.name).try_lock().is_err();
    App {
        name: row.name.clone(),
        created: row.created.clone(),
        release: row.release.clone(),
        status: if deploying {
            "deploying"
        } else if row.release.is_some() {
            "running"
        } else {
            "new"
        }
        .into(),
    }
}

pub(crate) fn release_json(r: &berth_store::ReleaseRow) -> Release {
    Release {
        id: r.id.clone(),
        app: r.app.clone(),
        build: r.build.clone(),
        env_version: r.env_version,
        created: r.created.clone(),
        status: r.status.clone(),
        description: r.description.clone(),
        error: r.error.clone(),
    }
}

fn build_json(b: &berth_store::BuildRow) -> Build {
    Build {
        id: b.id.clone(),
        app: b.app.clone(),
        status: b.status.clone(),
        created: b.created.clone(),
        finished: b.finished.clone(),
        images: b.images.clone(),
        error: b.error.clone(),
    }
}

/// Runs long work under the app's lock, streaming its events as NDJSON.
pub(crate) fn stream_work<F, Fut>(rack: Arc<Rack>, app: String, work: F) -> Response
where
    F: FnOnce(Arc<Rack>, Progress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<serde_json::Value, RackError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        let lock = rack.app_lock(&app);
        let _guard = match lock.try_lock() {
            Ok(g) => g,
            Err(_) => {
                step(
                    &tx,
                    format!("waiting for another change to app {app} to finish"),
                )
                .await;
                lock.lock().await
            }
        };
        let event = match work(rack.clone(), tx.clone()).await {
            Ok(value) => Event::Result { value },
            Err(RackError::Failed { message, logs }) => Event::Error {
                error: message,
                logs,
            },
            Err(e) => Event::Error {
                error: e.to_string(),
                logs: vec![],
            },
        };
        let _ = tx.send(event).await;
    });
    let body = tokio_stream_lines(rx);
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn tokio_stream_lines<T: serde::Serialize + Send + 'static>(rx: mpsc::Receiver<T>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let mut line = serde_json::to_vec(&item).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
    });
    Body::from_stream(stream)
}

async fn rack_info(State(rack): State<Arc<Rack>>) -> ApiResult<Json<RackInfo>> {
    let (apps, processes, builds, releases) = rack.store.counts()?;
    Ok(Json(RackInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: rack.started.elapsed().as_secs(),
        engine: rack.engine.clone(),
        domain: rack.domain.clone(),
        router: rack.router_url.clone(),
        apps,
        processes,
        builds,
        releases,
    }))
}

async fn list_apps(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(
        rack.store
            .apps()?
            .iter()
            .map(|a| app_json(&rack, a))
            .collect(),
    ))
}

async fn create_app(
    State(rack): State<Arc<Rack>>,
    Json(body): Json<CreateApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    berth_core::validate_app_name(&body.name).map_err(RackError::from)?;
    let row = rack.store.create_app(&body.name)?;
    rack.logs
        .event(&body.name, &format!("app {} created", body.name));
    Ok((StatusCode::CREATED, Json(app_json(&rack, &row))))
}

async fn app_info(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<AppInfo>> {
    let row = check_app(&rack, &app)?;
    let mut services = Vec::new();
    if let Some(release_id) = &row.release {
        let release = rack.store.release(&app, release_id)?;
        let manifest = rack.manifest(&release)?;
        let formation = rack.store.formation(&app)?;
        let processes = rack.store.processes(Some(&app))?;
        for (name, svc) in &manifest.services {
            let (count, memory, cpu) = deploy::desired(svc, formation.get(name));
            let healthy = processes
                .iter()
                .filter(|p| &p.service == name && p.state == "active")
                .filter(|p| {
                    rack.observed(&app, &p.id)
                        .is_some_and(|o| o.running && o.healthy)
                })
                .count() as u32;
            services.push(ServiceInfo {
                name: name.clone(),
                urls: rack.service_urls(&app, name, &manifest),
                port: svc.port,
                count,
                memory,
                cpu,
                healthy,
            });
        }
    }
    Ok(Json(AppInfo {
        app: app_json(&rack, &row),
        services,
    }))
}

async fn delete_app(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(delete_q): Query<crate::volumes::DeleteQuery>,
) -> ApiResult<StatusCode> {
    check_app(&rack, &app)?;
    let lock = rack.app_lock(&app);
    let _guard = lock.lock().await;
    // Volume data outlives releases; deleting it needs its own yes (`--volumes`).
    let volumes = crate::volumes::app_volumes(&rack, &app).await?;
    if !volumes.is_empty() && !delete_q.volumes {
        return Err(crate::volumes::refuse_delete(&app, &volumes));
    }
    let containers = rack
        .runtime
        .list_containers(berth_runtime::LABEL_APP, &app)
        .await
        .map_err(RackError::from)?;
    let ours = containers
        .into_iter()
        .filter(|c| c.labels.get(berth_runtime::LABEL_RACK) == Some(&rack.rack_id));
    let stops = ours.map(|c| {
        let rack = rack.clone();
        async move {
            let _ = rack.runtime.stop_container(&c.id, 10).await;
            rack.runtime.remove_container(&c.id).await
        }
    });
    for r in futures_util::future::join_all(stops).await {
        r.map_err(RackError::from)?;
    }
    rack.runtime
        .remove_network(&rack.network_name(&app))
        .await
        .map_err(RackError::from)?;
    for image in rack
        .runtime
        .list_images(berth_runtime::LABEL_APP, &app)
        .await
        .map_err(RackError::from)?
    {
        if image.labels.get(berth_runtime::LABEL_RACK) != Some(&rack.rack_id) {
            continue;
        }
        for tag in &image.tags {
            let _ = rack.runtime.remove_image(tag).await;
        }
        let _ = rack.runtime.remove_image(&image.id).await;
    }
    crate::volumes::remove_all(&rack, &app).await?;
    for p in rack.store.processes(Some(&app))? {
        rack.forget(&app, &p.id);
    }
    rack.store.delete_app(&app)?;
    rack.logs.remove(&app);
    rack.refresh_routes();
    tracing::info!(app, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct UploadQuery {
    manifest: Option<String>,
}

/// Spools an upload to a temp file in the data dir, refusing more than `--max-upload`.
pub(crate) async fn spool(rack: &Rack, body: Body) -> ApiResult<tempfile::TempPath> {
    let tmp = rack.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(RackError::from)?;
    let path = tempfile::NamedTempFile::new_in(&tmp)
        .map_err(RackError::from)?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(RackError::from)?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("upload interrupted: {e}")))?;
        total += chunk.len() as u64;
        if total > crate::upload::max_upload() {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is over {} MiB; exclude build outputs and dependencies with .dockerignore",
                    crate::upload::max_upload() >> 20
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| {
            let message = crate::disk::full_message("store the upload", "tmp", &tmp, &e)
                .unwrap_or_else(|| {
                    format!("cannot store the upload: {e}; free space in the server's data dir")
                });
            ApiError(StatusCode::INSUFFICIENT_STORAGE, message)
        })?;
    }
    file.flush().await.map_err(RackError::from)?;
    if total == 0 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the upload is empty; send the source directory as a tar".into(),
        ));
    }
    Ok(path)
}

async fn build_from_upload(
    rack: &Arc<Rack>,
    app: &str,
    source: builder::Source,
    progress: &Progress,
) -> Result<(berth_store::BuildRow, berth_store::ReleaseRow), RackError> {
    if let Some(name) = &source.manifest.app
        && name != app
    {
        step(
            progress,
            format!("note: berth.yml names app {name}, deploying to {app} as asked"),
        )
        .await;
    }
    let env = rack.store.env(app, rack.store.app(app)?.env_version)?;
    let missing = source.manifest.missing_env(&env);
    if !missing.is_empty() {
        let example = missing
            .iter()
            .map(|k| format!("{k}=..."))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(RackError::BadRequest(format!(
            "app {app} needs environment {} which is not set; set it with `berth env set {example} -a {app}` and deploy again",
            missing.join(", ")
        )));
    }
    builder::build(rack, app, &source, progress).await
}

async fn create_build(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    let tar = spool(&rack, body).await?;
    let manifest = q.manifest.unwrap_or_else(|| "berth.yml".into());
    // Checked before the stream starts, so a bad upload is a 4xx status.
    let source = crate::upload::open_checked(&rack, tar, manifest).await?;
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let (build, release) = build_from_upload(&rack, &app, source, &progress).await?;
            Ok(serde_json::to_value(BuildResult {
                build: build_json(&build),
                release: release_json(&release),
            })
            .unwrap_or_default())
        },
    ))
}

async fn deploy(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    let tar = spool(&rack, body).await?;
    let manifest = q.manifest.unwrap_or_else(|| "berth.yml".into());
    // Checked before the stream starts, so a bad upload is a 4xx status.
    let source = crate::upload::open_checked(&rack, tar, manifest).await?;
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let (_, release) = build_from_upload(&rack, &app, source, &progress).await?;
            promote_release(&rack, &app, &release.id, &progress).await
        },
    ))
}

pub(crate) async fn promote_release(
    rack: &Arc<Rack>,
    app: &str,
    id: &str,
    progress: &Progress,
) -> Result<serde_json::Value, RackError> {
    let release = rack.store.release(app, id)?;
    deploy::rollout(rack, &release, None, progress).await?;
    let release = rack.store.release(app, id)?;
    let manifest = rack.manifest(&release)?;
    let urls = manifest
        .services
        .keys()
        .flat_map(|s| rack.service_urls(app, s, &manifest))
        .collect();
    Ok(serde_json::to_value(DeployResult {
        release: release_json(&release),
        urls,
    })
    .unwrap_or_default())
}

async fn list_builds(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Build>>> {
    check_app(&rack, &app)?;
    Ok(Json(
        rack.store.builds(&app)?.iter().map(build_json).collect(),
    ))
}

async fn build_logs(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<String> {
    check_app(&rack, &app)?;
    rack.store.build(&app, &id)?;
    let source = format!("build/{id}");
    let lines = rack.logs.read(&app, 0, None).map_err(RackError::from)?;
    Ok(lines
        .into_iter()
        .filter(|e| e.source == source)
        .map(|e| e.text + "\n")
        .collect())
}

async fn list_releases(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Release>>> {
    check_app(&rack, &app)?;
    Ok(Json(
        rack.store
            .releases(&app)?
            .iter()
            .map(release_json)
            .collect(),
    ))
}

async fn promote(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    rack.store.release(&app, &id)?;
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move { promote_release(&rack, &app, &id, &progress).await },
    ))
}

async fn rollback(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    rack.store.release(&app, &id)?;
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let old = rack.store.release(&app, &id)?;
            let new = rack.store.create_release(
                &app,
                old.build.as_deref(),
                old.env_version,
                &old.manifest,
                &format!("rollback to {}", old.id),
            )?;
            step(
                &progress,
                format!("release {} created (copy of {})", new.id, old.id),
            )
            .await;
            let result = promote_release(&rack, &app, &new.id, &progress).await?;
            // The app's environment follows the release it now runs.
            rack.store.set_env_version(&app, old.env_version)?;
            Ok(result)
        },
    ))
}

async fn get_env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<std::collections::BTreeMap<String, String>>> {
    let row = check_app(&rack, &app)?;
    Ok(Json(rack.store.env(&app, row.env_version)?))
}

fn check_env_key(key: &str) -> ApiResult<()> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 256;
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid environment key {key:?}; use letters, digits and '_', not starting with a digit (e.g. DATABASE_URL)"
            ),
        ))
    }
}

async fn change_env(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(change): Json<EnvChange>,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    for key in change.set.keys().chain(change.unset.iter()) {
        check_env_key(key)?;
    }
    if change.set.is_empty() && change.unset.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "nothing to change; give KEY=VALUE pairs to set or KEYs to unset".into(),
        ));
    }
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let version = rack.store.change_env(&app, &change.set, &change.unset)?;
            let mut what: Vec<String> = change.set.keys().map(|k| format!("set {k}")).collect();
            what.extend(change.unset.iter().map(|k| format!("unset {k}")));
            rack.logs
                .event(&app, &format!("env changed: {}", what.join(", ")));
            let current = rack.store.app(&app)?.release;
            let Some(current) = current else {
                step(
                    &progress,
                    format!(
                        "environment version {version} saved; it takes effect at the first deploy"
                    ),
                )
                .await;
                return Ok(serde_json::Value::Null);
            };
            let base = rack.store.release(&app, &current)?;
            let release = rack.store.create_release(
                &app,
                base.build.as_deref(),
                version,
                &base.manifest,
                &format!("env {}", what.join(", ")),
            )?;
            step(&progress, format!("release {} created", release.id)).await;
            if change.promote {
                promote_release(&rack, &app, &release.id, &progress).await
            } else {
                step(
                    &progress,
                    format!(
                        "promote it with `berth releases promote {} -a {app}`",
                        release.id
                    ),
                )
                .await;
                Ok(serde_json::to_value(release_json(&release)).unwrap_or_default())
            }
        },
    ))
}

async fn scale(
    State(rack): State<Arc<Rack>>,
    Path((app, service)): Path<(String, String)>,
    Json(req): Json<ScaleRequest>,
) -> ApiResult<Response> {
    let row = check_app(&rack, &app)?;
    berth_core::validate_service_name(&service).map_err(RackError::from)?;
    // Checked before the stream starts, so an unknown service is a 404 status.
    if let Some(current) = &row.release {
        let manifest = rack.manifest(&rack.store.release(&app, current)?)?;
        if !manifest.services.contains_key(&service) {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "app {app} has no service {service}; its services are: {}",
                    manifest
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if req.count.is_none() && req.memory.is_none() && req.cpu.is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "nothing to scale; give --count, --memory or --cpu".into(),
        ));
    }
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            deploy::scale(&rack, &app, &service, &req, &progress).await?;
            Ok(serde_json::Value::Null)
        },
    ))
}

async fn restart(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(req): Json<RestartRequest>,
) -> ApiResult<Response> {
    let row = check_app(&rack, &app)?;
    let Some(current) = row.release else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("app {app} has no release yet; deploy it first"),
        ));
    };
    if let Some(service) = &req.service {
        let manifest = rack.manifest(&rack.store.release(&app, &current)?)?;
        if !manifest.services.contains_key(service) {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("app {app} has no service {service}"),
            ));
        }
    }
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let release = rack.store.release(&app, &current)?;
            let only = req.service.map(|s| BTreeSet::from([s]));
            deploy::rollout(&rack, &release, only.as_ref(), &progress).await?;
            Ok(serde_json::Value::Null)
        },
    ))
}

async fn list_processes(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Process>>> {
    check_app(&rack, &app)?;
    // What is observed stays as it was last seen; with the engine gone it may be
    // wrong, so say why instead of showing it.
    if let Some((down_for, error)) = rack.engine_watch.down() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the states of app {app}'s processes are unknown while the Docker engine at {} \
                 does not answer (for {} s): {error}",
                crate::engine::address(),
                down_for.as_secs()
            ),
        ));
    }
    let rows = rack.store.processes(Some(&app))?;
    let oneoffs = crate::oneoff::processes(&rack, &app).await;
    Ok(Json(
        rows.into_iter()
            .map(|p| {
                let o = rack.observed(&app, &p.id);
                let state = match (p.state.as_str(), &o) {
                    ("starting", _) => "starting",
                    ("stopping", _) => "stopping",
                    (_, None) => "missing",
                    (_, Some(o)) if !o.running => "crashed",
                    (_, Some(o)) if !o.healthy => "unhealthy",
                    _ => "running",
                };
                Process {
                    id: p.id.clone(),
                    app: p.app.clone(),
                    service: p.service.clone(),
                    release: p.release.clone(),
                    state: state.into(),
                    started: o.as_ref().and_then(|o| o.started.clone()),
                    address: o.as_ref().and_then(|o| o.addr.map(|a| a.to_string())),
                    restarts: p.restarts,
                    last_exit: p.last_exit,
                }
            })
            .chain(oneoffs)
            .collect(),
    ))
}

async fn stop_process(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_app(&rack, &app)?;
    let row = rack
        .store
        .processes(Some(&app))?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("app {app} has no process {id}; list them with `berth ps -a {app}`"),
            )
        })?;
    let container = rack
        .observed(&app, &id)
        .map(|o| o.container_id)
        .unwrap_or_else(|| rack.container_name(&app, &id));
    rack.set_healthy(&app, &id, false);
    rack.refresh_routes();
    rack.runtime
        .stop_container(&container, rack.grace_of(&row))
        .await
        .map_err(RackError::from)?;
    rack.logs.event(
        &app,
        &format!("process {id} stopped by request; the reconciler replaces it"),
    );
    rack.nudge.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LogQuery {
    /// Seconds back from now.
    since: Option<u64>,
    service: Option<String>,
    #[serde(default)]
    follow: bool,
}

async fn logs(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    let since = q
        .since
        .map(|s| crate::logs::now_nanos() - i128::from(s) * 1_000_000_000)
        .unwrap_or(0);
    let live = if q.follow {
        Some(rack.logs.subscribe(&app).map_err(RackError::from)?)
    } else {
        None
    };
    let past = rack
        .logs
        .read(&app, since, q.service.as_deref())
        .map_err(RackError::from)?;
    let (tx, rx) = mpsc::channel::<LogEntry>(1024);
    tokio::spawn(async move {
        let last = past.last().map(|e| e.ts.clone()).unwrap_or_default();
        for entry in past {
            if tx.send(entry).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        loop {
            match live.recv().await {
                Ok(entry) => {
                    if entry.ts <= last && !last.is_empty() {
                        continue;
                    }
                    if crate::logs::matches(&entry, 0, q.service.as_deref())
                        && tx.send(entry).await.is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        tokio_stream_lines(rx),
    )
        .into_response())
}
