//! Where a job's image comes from when the spec does not name one: a code
//! package on a stack (`code:`, IronWorker) or a build from git (`build:`,
//! Keboola's Custom Science). Wire forms and their validation; no IO.

use crate::spec::SpecError;
use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `code: {package: NAME[@REV], stack: NAME}` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeDoc {
    #[serde(default)]
    pub package: String,
    #[serde(default)]
    pub stack: String,
}

/// `build: {git: URL, ref: main, dockerfile: Dockerfile, context: .}` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDoc {
    #[serde(default)]
    pub git: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Bound on fetch + build (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Memory of the build's steps (default 1g).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A code package revision run on a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSource {
    pub package: String,
    /// `None`: the latest revision when the job runs.
    pub rev: Option<u32>,
    pub stack: String,
}

/// A build from a git repository.
#[derive(Debug, Clone, PartialEq)]
pub struct GitBuild {
    pub url: String,
    pub git_ref: String,
    pub dockerfile: String,
    pub context: String,
    pub timeout: Duration,
    pub memory: u64,
}

pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_BUILD_MEMORY: u64 = 1 << 30;
/// Schemes a `build.git` URL may use; `file` is refused by workers unless
/// their operator allows it (`--git-allow-file`).
pub const GIT_SCHEMES: &[&str] = &["https", "http", "git", "file"];

/// Names of packages and stacks: 1 to 100 of `A-Za-z0-9._-`, not starting
/// with `.` or `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A relative path inside a repository: no `..`, not absolute, no control
/// characters.
fn valid_rel_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 512
        && !p.starts_with('/')
        && !p.starts_with('-')
        && !p.chars().any(char::is_control)
        && !p.split('/').any(|part| part == "..")
}

impl CodeDoc {
    pub fn validate(&self) -> Result<CodeSource, SpecError> {
        let (name, rev) = match self.package.split_once('@') {
            Some((n, r)) => {
                let rev = r.parse::<u32>().ok().filter(|r| *r >= 1).ok_or_else(|| {
                    SpecError::at(
                        "code.package",
                        "the revision after @ must be a number from 1",
                    )
                })?;
                (n, Some(rev))
            }
            None => (self.package.as_str(), None),
        };
        if !valid_name(name) {
            return Err(SpecError::at(
                "code.package",
                "must be a package name (letters, digits, . _ -), optionally @REV",
            ));
        }
        if !valid_name(&self.stack) {
            return Err(SpecError::at(
                "code.stack",
                "must name a stack (gantry stacks list)",
            ));
        }
        Ok(CodeSource {
            package: name.to_string(),
            rev,
            stack: self.stack.clone(),
        })
    }
}

impl BuildDoc {
    pub fn validate(&self) -> Result<GitBuild, SpecError> {
        let url = self.git.trim();
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        if !GIT_SCHEMES.contains(&scheme)
            || url.len() > 1024
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SpecError::at(
                "build.git",
                "must be a repository URL with scheme https, http, git or file",
            ));
        }
        let git_ref = self.git_ref.clone().unwrap_or_else(|| "main".into());
        if git_ref.is_empty()
            || git_ref.len() > 256
            || git_ref.starts_with(['-', '/'])
            || git_ref.contains("..")
            || !git_ref
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        {
            return Err(SpecError::at(
                "build.ref",
                "must be a branch, tag or commit (letters, digits, . _ - /)",
            ));
        }
        let dockerfile = self
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into());
        if !valid_rel_path(&dockerfile) {
            return Err(SpecError::at(
                "build.dockerfile",
                "must be a relative path inside the repository, without ..",
            ));
        }
        let context = self.context.clone().unwrap_or_else(|| ".".into());
        if !valid_rel_path(&context) {
            return Err(SpecError::at(
                "build.context",
                "must be a relative path inside the repository, without ..",
            ));
        }
        let timeout = match &self.timeout {
            None => DEFAULT_BUILD_TIMEOUT,
            Some(t) => parse_duration(t)
                .ok()
                .filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600))
                .ok_or_else(|| SpecError::at("build.timeout", "must be a duration up to 1h"))?,
        };
        let memory = match &self.memory {
            None => DEFAULT_BUILD_MEMORY,
            Some(m) => parse_size(m)
                .ok()
                .filter(|m| (6 << 20..=(2u64 << 30) - 1).contains(m))
                .ok_or_else(|| {
                    SpecError::at("build.memory", "must be a size from 6m to below 2g")
                })?,
        };
        Ok(GitBuild {
            url: url.to_string(),
            git_ref,
            dockerfile,
            context,
            timeout,
            memory,
        })
    }
}

/// The spec's `code` and `build`, validated: at most one of `image`, `code`
/// and `build`.
pub fn check_sources(
    doc: &crate::spec::SpecDoc,
) -> Result<(Option<CodeSource>, Option<GitBuild>), SpecError> {
    let given = [
        !doc.image.trim().is_empty(),
        doc.code.is_some(),
        doc.build.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        let path = if doc.code.is_some() { "code" } else { "build" };
        return Err(SpecError::at(
            path,
            "give one of image, code and build (code and build make the image)",
        ));
    }
    let code = doc.code.as_ref().map(CodeDoc::validate).transpose()?;
    let build = doc.build.as_ref().map(BuildDoc::validate).transpose()?;
    Ok((code, build))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_build_sources_are_checked() {
        let ok = CodeDoc {
            package: "etl@3".into(),
            stack: "python-3.11".into(),
        }
        .validate()
        .expect("valid");
        assert_eq!((ok.package.as_str(), ok.rev), ("etl", Some(3)));
        for bad in ["", "../x", "a@0", "a@x", "-a"] {
            let doc = CodeDoc {
                package: bad.into(),
                stack: "s".into(),
            };
            assert_eq!(doc.validate().expect_err(bad).path, "code.package");
        }
        let build = |git: &str, r: Option<&str>, d: Option<&str>| BuildDoc {
            git: git.into(),
            git_ref: r.map(Into::into),
            dockerfile: d.map(Into::into),
            ..Default::default()
        };
        let b = build("git://127.0.0.1:9418/repo", None, None)
            .validate()
            .expect("valid");
        assert_eq!(
            (b.git_ref.as_str(), b.dockerfile.as_str()),
            ("main", "Dockerfile")
        );
        for url in ["/etc/passwd", "ext::sh -c id", "ssh://h/r", "-u", "file"] {
            assert_eq!(
                build(url, None, None).validate().expect_err(url).path,
                "build.git"
            );
        }
        assert_eq!(
            build("https://h/r", Some("--upload-pack=x"), None)
                .validate()
                .expect_err("ref")
                .path,
            "build.ref"
        );
        assert_eq!(
            build("https://h/r", None, Some("../Dockerfile"))
                .validate()
                .expect_err("dockerfile")
                .path,
            "build.dockerfile"
        );
    }
}
