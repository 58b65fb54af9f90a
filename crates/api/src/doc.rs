//! The OpenAPI document's frame: its info, the bearer security scheme, the
//! error body and the id schemas path parameters refer to. The paths
//! themselves come from each handler's `#[utoipa::path]` through the
//! `OpenApiRouter` that also routes them, so a route cannot exist without
//! its description (`routes::app`).

pub use gantry_wire::{
    ErrorBody, ErrorDetail, JobIdParam, LooseningName, NameParam, ProjectParam, TableParam,
    TokenIdParam, WorkerIdParam,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gantry API",
        description = "Batch jobs in locked-down Docker containers. Every `/v1` route needs \
                       `Authorization: Bearer <token>` and is scoped to the token's project: \
                       another project's objects answer 404. Errors are \
                       `{\"error\": {\"code\", \"message\"}}`.",
    ),
    modifiers(&Bearer),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        JobIdParam,
        NameParam,
        ProjectParam,
        TableParam,
        TokenIdParam,
        WorkerIdParam,
        LooseningName
    ))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
