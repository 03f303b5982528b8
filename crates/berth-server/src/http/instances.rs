//! `/instances`: the rack's machines, joining nodes and draining them.

use super::error::ApiResult;
use crate::instances;
use crate::rack::Rack;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use berth_api::{AgentHello, AgentWelcome, Instance, JoinInstructions};
use berth_store::access::Identity;
use serde::Deserialize;
use std::sync::Arc;

pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<Instance>>> {
    Ok(Json(instances::list(&rack).await?))
}

pub async fn join(
    State(rack): State<Arc<Rack>>,
) -> ApiResult<(StatusCode, Json<JoinInstructions>)> {
    Ok((StatusCode::CREATED, Json(instances::join(&rack)?)))
}

/// `POST /instances/{id}/drain?force=true`
#[derive(Debug, Default, Deserialize)]
pub struct DrainQuery {
    /// Drain even when processes cannot move (they stop until the node is
    /// active again).
    #[serde(default)]
    force: bool,
}

pub async fn drain(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
    Query(q): Query<DrainQuery>,
) -> ApiResult<StatusCode> {
    instances::set_availability(&rack, &id, "drain", q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn activate(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    instances::set_availability(&rack, &id, "active", false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn agent_hello(
    State(rack): State<Arc<Rack>>,
    Extension(who): Extension<Identity>,
    Json(hello): Json<AgentHello>,
) -> ApiResult<Json<AgentWelcome>> {
    Ok(Json(instances::agent_hello(&rack, &who.id, hello).await?))
}
