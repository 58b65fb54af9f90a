//! What `gantry retention` reports, whatever the backend that applied it.

/// What retention removed (or would remove) in one project.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    pub project: String,
    pub jobs: u64,
    pub events: u64,
    /// (table, version)
    pub versions: Vec<(String, u64)>,
    /// (file id, name)
    pub files: Vec<(gantry_core::FileId, String)>,
    /// Objects no remaining version or file names.
    pub objects: Vec<String>,
    /// Set when versions and files were left alone: a job of the project runs.
    pub postponed: bool,
}
