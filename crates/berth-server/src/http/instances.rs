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

#[utoipa::path(
    get,
    path = "/instances",
    tag = "instances",
    responses(
        (status = 200, description = "The rack's machines", body = Vec<berth_api::Instance>),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn list(State(rack): State<Arc<Rack>>) -> ApiResult<Json<Vec<Instance>>> {
    Ok(Json(instances::list(&rack).await?))
}

#[utoipa::path(
    post,
    path = "/instances/join",
    tag = "instances",
    responses(
        (status = 201, description = "A node token and the agent's command", body = berth_api::JoinInstructions),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn join(
    State(rack): State<Arc<Rack>>,
) -> ApiResult<(StatusCode, Json<JoinInstructions>)> {
    Ok((StatusCode::CREATED, Json(instances::join(&rack)?)))
}

/// `POST /instances/{id}/drain?force=true`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrainQuery {
    /// Drain even when processes cannot move (they stop until the node is
    /// active again).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    post,
    path = "/instances/{id}/drain",
    tag = "instances",
    params(("id" = String, Path, description = "The node's id or hostname"), DrainQuery),
    responses(
        (status = 204, description = "Drained"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn drain(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
    Query(q): Query<DrainQuery>,
) -> ApiResult<StatusCode> {
    instances::set_availability(&rack, &id, "drain", q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/instances/{id}/activate",
    tag = "instances",
    params(("id" = String, Path, description = "The node's id or hostname")),
    responses(
        (status = 204, description = "Active again"),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 404, description = "No such app or object", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody),
        (status = 502, description = "The container engine refused", body = berth_api::ErrorBody)
    )
)]
pub async fn activate(
    State(rack): State<Arc<Rack>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    instances::set_availability(&rack, &id, "active", false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/agent/hello",
    tag = "instances",
    request_body = berth_api::AgentHello,
    responses(
        (status = 200, description = "How to run the node's router, and its certificate", body = berth_api::AgentWelcome),
        (status = 400, description = "Invalid input, named in the message", body = berth_api::ErrorBody),
        (status = 409, description = "Refused in the current state (the message says why)", body = berth_api::ErrorBody)
    )
)]
pub async fn agent_hello(
    State(rack): State<Arc<Rack>>,
    Extension(who): Extension<Identity>,
    Json(hello): Json<AgentHello>,
) -> ApiResult<Json<AgentWelcome>> {
    Ok(Json(instances::agent_hello(&rack, &who.id, hello).await?))
}
