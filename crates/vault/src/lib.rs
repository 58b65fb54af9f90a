//! Encryption at rest for secret parameters (keys starting with `#`).
//!
//! Values are sealed with XChaCha20-Poly1305 (an authenticated cipher) under
//! a key created on first start in `$GANTRY_HOME/secret.key` (mode 0600).
//! A sealed value is a string `gantry:enc:v1:<base64(nonce || ciphertext)>`,
//! so specs keep their shape and the API can return them without leaking.
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::Path;

pub const PREFIX: &str = "gantry:enc:v1:";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the key file {0} is not 32 bytes; it may be damaged")]
    BadKey(String),
    #[error("the key file {path} may be read by others (mode {mode:o}): run `chmod 600 {path}`")]
    LooseKey { path: String, mode: u32 },
    #[error("a secret value cannot be decrypted (was it sealed with another key?)")]
    Decrypt,
}

#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// Opens the key at `path`, creating it (0600) when missing.
    pub fn open_or_create(path: &Path) -> Result<Self, VaultError> {
        let err = |source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(path, &key).map_err(err)?;
                key
            }
            Err(e) => return Err(err(e)),
        };
        if key.len() != 32 {
            return Err(VaultError::BadKey(path.display().to_string()));
        }
        Ok(Self::from_key(&key))
    }

    /// Opens a key given by an operator (a fleet shares one): it must exist,
    /// be 32 bytes, and be readable by its owner only.
    pub fn open_given(path: &Path) -> Result<Self, VaultError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(VaultError::LooseKey {
                path: path.display().to_string(),
                mode,
            });
        }
        Self::open_existing(path)
    }

    /// Opens an existing key; never creates one.
    pub fn open_existing(path: &Path) -> Result<Self, VaultError> {
        if !path.exists() {
            return Err(VaultError::KeyFile {
                path: path.display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Self::open_or_create(path)
    }

    pub fn from_key(key: &[u8]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key)),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce cannot fail for in-memory data.
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, VaultError> {
        let Some(b64) = sealed.strip_prefix(PREFIX) else {
            return Ok(sealed.to_string());
        };
        let raw = B64.decode(b64).map_err(|_| VaultError::Decrypt)?;
        if raw.len() < 24 {
            return Err(VaultError::Decrypt);
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| VaultError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| VaultError::Decrypt)
    }

    /// Seals every not-yet-sealed value under a `#` key, at any depth.
    pub fn seal_params(&self, params: &mut Map<String, Value>) {
        self.walk(params, &mut |v: &mut Value| {
            let plain = match v {
                Value::String(s) if !s.starts_with(PREFIX) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Ok(()),
            };
            *v = Value::String(self.seal(&plain));
            Ok(())
        })
        .unwrap_or(());
    }

    /// Opens every sealed value under a `#` key, at any depth.
    pub fn open_params(&self, params: &mut Map<String, Value>) -> Result<(), VaultError> {
        self.walk(params, &mut |v: &mut Value| {
            if let Value::String(s) = v {
                if s.starts_with(PREFIX) {
                    *s = self.open(s)?;
                }
            }
            Ok(())
        })
    }

    fn walk(
        &self,
        params: &mut Map<String, Value>,
        f: &mut dyn FnMut(&mut Value) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        fn go(
            v: &mut Value,
            secret: bool,
            f: &mut dyn FnMut(&mut Value) -> Result<(), VaultError>,
        ) -> Result<(), VaultError> {
            match v {
                Value::Object(m) => {
                    for (k, v) in m.iter_mut() {
                        go(v, secret || k.starts_with('#'), f)?;
                    }
                    Ok(())
                }
                Value::Array(a) => a.iter_mut().try_for_each(|v| go(v, secret, f)),
                _ if secret => f(v),
                _ => Ok(()),
            }
        }
        for (k, v) in params.iter_mut() {
            go(v, k.starts_with('#'), f)?;
        }
        Ok(())
    }
}

/// Writes a file readable by its owner only (0600), replacing any old one.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("secret.key");
        let v1 = Vault::open_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = v1.seal("hunter2");
        let v2 = Vault::open_or_create(&path).expect("reopen");
        // Given explicitly (a fleet's shared key): only its owner may read it.
        assert!(Vault::open_given(&path).is_ok());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let e = Vault::open_given(&path).expect_err("loose");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(Vault::open_given(&dir.path().join("missing")).is_err());
        assert_eq!(v2.open(&sealed).expect("open"), "hunter2");
        assert!(Vault::from_key(&[7u8; 32]).open(&sealed).is_err());
    }

    #[test]
    fn params_round_trip_and_never_hold_clear_text() {
        let v = Vault::from_key(&[1u8; 32]);
        let mut p: Map<String, Value> = serde_json::from_str(
            r##"{"url": "u", "#token": "s3cret", "nested": {"#pw": ["a1", 42]}}"##,
        )
        .expect("json");
        v.seal_params(&mut p);
        let text = serde_json::to_string(&p).expect("json");
        assert!(
            // (`,42]`, not `42`: base64 of a random nonce may hold "42".)
            !text.contains("s3cret") && !text.contains("\"a1\"") && !text.contains(",42]"),
            "{text}"
        );
        assert!(text.contains("\"u\""));
        // Sealing twice does not double-seal.
        let once = p.clone();
        v.seal_params(&mut p);
        assert_eq!(p, once);
        v.open_params(&mut p).expect("open");
        assert_eq!(p["#token"], "s3cret");
        assert_eq!(p["nested"]["#pw"][1], "42");
    }
}
