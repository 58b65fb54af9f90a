//! The OpenAPI document's frame: its info, the bearer security scheme, the
//! error body and the id schemas path parameters refer to. The paths
//! themselves come from each handler's `#[utoipa::path]` through the
//! `OpenApiRouter` that also routes them, so a route cannot exist without
//! its description (`routes::app`).

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToSchema};

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

/// Every error answer: a stable code and a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `invalid_request`, `invalid_spec`, `invalid_data`, `not_found`,
    /// `unauthorized`, `forbidden`, `conflict`, `too_large`,
    /// `unsupported_media_type`, `unavailable`, `internal`...
    pub code: String,
    pub message: String,
}

/// A string schema with a pattern, for ids in paths, queries and bodies.
macro_rules! id_schema {
    ($(#[$doc:meta])* $name:ident, $description:literal, $pattern:literal, $example:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .pattern(Some($pattern))
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

id_schema!(
    JobIdParam,
    "A job id (a UUID).",
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "01936f6e-8d7a-7c3e-9b1a-2f4c5d6e7f80"
);
id_schema!(
    NameParam,
    "A configuration, schedule, pipeline or webhook id: 1-128 letters, digits, '-', '_' or '.', not starting with '.'.",
    "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$",
    "nightly"
);
id_schema!(
    ProjectParam,
    "A project id: 1-64 letters, digits, '-', '_' or '.', not starting with '.'.",
    "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$",
    "default"
);
id_schema!(
    TableParam,
    "A table id, <stage>.c-<bucket>.<name> with stage 'in' or 'out'.",
    "^(in|out)[.]c-[A-Za-z0-9_-]{1,96}[.][A-Za-z0-9_-]{1,96}$",
    "in.c-main.customers"
);

/// A default a project may loosen.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum LooseningName {
    RootUser,
    BridgeNetwork,
    WritableRoot,
}
