//! Images: registry logins, stacks, code packages, what workers hold, the
//! fleet's warm list; and what `POST /v1/runs` answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project's login to a registry. The password is sealed at rest and
/// never crosses the wire again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryView {
    /// `host[:port]`.
    pub host: String,
    pub username: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryList {
    pub registries: Vec<RegistryView>,
}

/// A named base image code packages run on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StackView {
    #[schema(value_type = crate::NameParam)]
    pub name: String,
    /// The image reference it points at.
    pub image: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StackList {
    pub stacks: Vec<StackView>,
}

/// One revision of a code package.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PackageView {
    #[schema(value_type = crate::NameParam)]
    pub name: String,
    /// 1 for the first upload, then one more per upload.
    pub rev: u32,
    /// sha256 of the archive as uploaded (hex).
    pub sha256: String,
    pub size: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PackageList {
    pub packages: Vec<PackageView>,
}

/// An image one worker's engine holds for Gantry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageView {
    /// The worker whose engine holds it.
    #[schema(value_type = crate::WorkerIdParam)]
    pub worker: gantry_core::WorkerId,
    /// The reference jobs name it by.
    pub reference: String,
    /// The engine's id of the image (`sha256:...`).
    pub image_id: String,
    #[schema(value_type = ImageKindName)]
    pub kind: String,
    pub size: u64,
    /// On the fleet's warm list: never removed to free space.
    pub warm: bool,
    pub last_used: String,
    pub created_at: String,
}

/// How a worker came by an image.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ImageKindName {
    /// Pulled from a registry.
    Pulled,
    /// Built from a stack and a code package.
    Package,
    /// Built from a git repository.
    Git,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageList {
    pub images: Vec<ImageView>,
}

/// The images every worker keeps present (the fleet's warm list).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeptList {
    pub images: Vec<String>,
}

/// One image kept on every worker (the body of `POST /v1/images/keep`,
/// the query of its `DELETE`, and the answer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeptImage {
    /// An image reference.
    #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f]{1,512}$")]
    pub image: String,
}

/// What `POST /v1/runs` stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunCommitted {
    /// The tables it wrote a version of.
    #[schema(value_type = Vec<crate::TableParam>)]
    pub tables: Vec<String>,
    /// How many files it stored.
    pub files: usize,
    /// Whether it replaced the configuration's state.
    pub state: bool,
    /// What the table versions say made them: always `run`.
    pub made_by: String,
}
