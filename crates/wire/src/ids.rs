//! Schemas of the ids that appear in paths, queries and bodies: strings
//! with the pattern the server's parsers accept.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

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

id_schema!(
    TokenIdParam,
    "A token's public id: 12 hex digits (never the secret).",
    "^[0-9a-fA-F]{12}$",
    "0123456789ab"
);
id_schema!(
    WorkerIdParam,
    "A worker's id: 1-128 letters, digits, '-', '_' or '.'.",
    "^[A-Za-z0-9._-]{1,128}$",
    "worker-1"
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
