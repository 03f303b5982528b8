//! What the API's OpenAPI document (`GET /openapi.json`, `docs/openapi.json`)
//! says beyond the handlers' `#[utoipa::path]` attributes: the bearer-token
//! scheme, the `berth-api-version` header on every answer, and the error
//! answers every guarded route or JSON body can get. The document itself is
//! `http::openapi_document`, next to the route list it describes.

use super::authz::{self, PUBLIC};
use axum::http::Method;
use berth_api::{API_VERSION, API_VERSION_HEADER};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
    Type,
};

/// The name of the security scheme in the document.
const BEARER: &str = "bearer";

/// A binary body (a tar archive), for the document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Tar(#[allow(dead_code)] Vec<u8>);

/// The document's additions (see the module doc).
pub struct Contract;

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

impl utoipa::Modify for Contract {
    fn modify(&self, doc: &mut OpenApi) {
        doc.info = InfoBuilder::new()
            .title("berth")
            .version(API_VERSION.to_string())
            .description(Some(
                "The API of a berth server: the CLI, the web console and agents use it. \
                 Every answer carries the API's version in the `berth-api-version` header; \
                 every route but the public ones needs `Authorization: Bearer <token>`, \
                 and each route's least role is in berth-server's `http::authz`.",
            ))
            .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
            .build();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        let version = HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(format!(
                "The server's API version (now {API_VERSION}); a client refuses a server older than it needs"
            )))
            .build();
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            for (method, op) in [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ] {
                let Some(op) = op else { continue };
                // Unique, from the route: `post_apps_app_builds`.
                let id: String = format!("{method}{path}")
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                op.operation_id = Some(
                    id.split('_')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("_"),
                );
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                if public {
                    op.security = Some(vec![]);
                    op.description = Some("No token needed.".into());
                } else {
                    op.description = Some(format!(
                        "Needs a `{}` token (see `http::authz`).",
                        authz::need(&method, path).name()
                    ));
                    add("401", "Missing or invalid token");
                    add("403", "The token's role or app does not allow this route");
                    add("500", "The server failed (its log says why)");
                    add(
                        "503",
                        "The server is starting, or the container engine cannot be reached",
                    );
                }
                let json_body = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                if json_body {
                    add("400", "The body is not the JSON this route takes");
                    add("413", "The body is larger than 1 MiB");
                    add(
                        "415",
                        "The body is not sent as `Content-Type: application/json`",
                    );
                    add(
                        "422",
                        "The JSON does not have the fields and types this route takes",
                    );
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add("400", "A path or query parameter is invalid");
                }
                for response in responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert(API_VERSION_HEADER.to_string(), version.clone());
                    }
                }
            }
        }
    }
}
