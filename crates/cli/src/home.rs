//! The layout of `$GANTRY_HOME`.

use std::path::{Path, PathBuf};

pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("gantry.db")
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("secret.key")
    }
    pub fn token(&self) -> PathBuf {
        self.root.join("token")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    pub fn worker_id(&self) -> PathBuf {
        self.root.join("worker-id")
    }

    /// Creates the home folder, private to its owner.
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.root)?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        std::fs::create_dir_all(self.work())?;
        std::fs::set_permissions(self.work(), std::fs::Permissions::from_mode(0o700))
    }

    /// This home's worker id, made once and kept, so a restarted worker
    /// recognises the jobs and containers its previous run left behind.
    pub fn worker_id_or_create(&self) -> std::io::Result<gantry_core::WorkerId> {
        if let Ok(id) = std::fs::read_to_string(self.worker_id()) {
            let id = id.trim().to_string();
            if !id.is_empty() {
                return id.parse().map_err(|e: String| {
                    std::io::Error::other(format!("{}: {e}", self.worker_id().display()))
                });
            }
        }
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(32)
            .collect();
        let id = format!("{host}-{}", &uuid_like()[..8]);
        std::fs::write(self.worker_id(), &id)?;
        id.parse().map_err(std::io::Error::other)
    }
}

fn uuid_like() -> String {
    gantry_core::JobId::new()
        .to_string()
        .replace('-', "")
        .chars()
        .rev()
        .collect()
}
