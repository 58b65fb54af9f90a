//! `gantry.toml`: one file for every server and worker setting. Precedence
//! is file < environment < flags: each key of the file is the long name of a
//! flag (`shutdown_grace` for `--shutdown-grace`), and its value is given to
//! the flag's environment variable unless the environment already sets it,
//! so clap's own flag > environment > default order does the rest. Unknown
//! keys are errors naming the key; `gantry config show` prints the effective
//! settings and where each came from.

use anyhow::{anyhow, bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the file contributed, for `config show`.
#[derive(Default)]
pub struct FromFile {
    pub path: Option<PathBuf>,
    /// Environment variables set from the file.
    pub vars: BTreeSet<String>,
}

/// Every configurable key: a flag's long name (as snake_case) and its
/// environment variable, across all commands.
fn keys() -> BTreeMap<String, String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeMap<String, String>) {
        for arg in cmd.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                if long != "config" {
                    out.insert(long.replace('-', "_"), env.to_string_lossy().into_owned());
                }
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&crate::Cli::command(), &mut out);
    out
}

/// Reads the config file and gives each of its values to its flag's
/// environment variable, unless the environment already has it. Runs before
/// any thread is started.
pub fn load(path: &Path) -> anyhow::Result<FromFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let vars = apply(&text, |var| std::env::var_os(var).is_some())
        .with_context(|| format!("config file {}", path.display()))?;
    for (var, value) in &vars {
        std::env::set_var(var, value);
    }
    Ok(FromFile {
        path: Some(path.to_path_buf()),
        vars: vars.into_keys().collect(),
    })
}

/// The variables to set from a file's text, skipping those `is_set` says the
/// environment has.
fn apply(text: &str, is_set: impl Fn(&str) -> bool) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse().map_err(|e| anyhow!("{e}"))?;
    let keys = keys();
    let mut vars = BTreeMap::new();
    for (key, value) in table {
        let Some(var) = keys.get(&key) else {
            bail!(
                "unknown key `{key}`; the keys are the long names of gantry's flags: {}",
                keys.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "`{key}` must be a string, number or boolean, not {}",
                other.type_str()
            ),
        };
        if !is_set(var) {
            vars.insert(var.clone(), value);
        }
    }
    Ok(vars)
}

/// Values that must never be printed.
fn secret(key: &str) -> bool {
    ["token", "password", "secret", "key"]
        .iter()
        .any(|s| key.contains(s))
}

/// Hides the password of a URL's user info (`postgres://u:p@h` → `u:[hidden]@h`).
fn hide_url_password(v: &str) -> String {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v.to_string();
    };
    // The user info ends at the last '@' of the authority (before any '/').
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((auth, _)) = authority.rsplit_once('@') else {
        return v.to_string();
    };
    let host = &rest[auth.len() + 1..];
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[hidden]@{host}"),
        None => v.to_string(),
    }
}

/// One effective setting.
pub struct Setting {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// The effective settings of a server and worker (`gantry up`, plus what
/// `gantry worker` alone adds), from file, environment and defaults.
pub fn effective(from_file: &FromFile) -> anyhow::Result<Vec<Setting>> {
    let mut out: BTreeMap<String, Setting> = BTreeMap::new();
    for command in ["up", "worker"] {
        let matches = crate::Cli::command()
            .try_get_matches_from(["gantry", command])
            .map_err(|e| anyhow!("{e}"))?;
        let (_, sub) = matches
            .subcommand()
            .ok_or_else(|| anyhow!("no subcommand"))?;
        collect(sub, command, from_file, &mut out);
    }
    Ok(out.into_values().collect())
}

fn collect(
    m: &ArgMatches,
    command: &str,
    from_file: &FromFile,
    out: &mut BTreeMap<String, Setting>,
) {
    let cmd = crate::Cli::command();
    let sub = cmd.find_subcommand(command);
    let args = cmd
        .get_arguments()
        .chain(sub.into_iter().flat_map(|s| s.get_arguments()));
    for arg in args {
        // Only what a file or the environment can set.
        let (Some(long), Some(_), id) = (arg.get_long(), arg.get_env(), arg.get_id().as_str())
        else {
            continue;
        };
        if long == "config" || long == "help" || long == "version" {
            continue;
        }
        let key = long.replace('-', "_");
        if out.contains_key(&key) {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let value = m
            .get_raw(id)
            .map(|vs| {
                vs.map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let source = match (m.value_source(id), &env) {
            (Some(ValueSource::EnvVariable), Some(var)) if from_file.vars.contains(var) => {
                let path = from_file
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                format!("file {path}")
            }
            (Some(ValueSource::EnvVariable), Some(var)) => format!("environment {var}"),
            (Some(ValueSource::DefaultValue), _) => "default".to_string(),
            (Some(ValueSource::CommandLine), _) => "flag".to_string(),
            _ => "unset".to_string(),
        };
        let value = if value.is_empty() {
            "-".to_string()
        } else if secret(&key) {
            "[hidden]".to_string()
        } else {
            hide_url_password(&value)
        };
        out.insert(key.clone(), Setting { key, value, source });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = apply("slotz = 3\n", |_| false).expect_err("unknown");
        assert!(e.to_string().contains("unknown key `slotz`"), "{e}");
        let e = apply("slots = [1]\n", |_| false).expect_err("array");
        assert!(e.to_string().contains("`slots` must be"), "{e}");
        assert!(apply("slots = \n", |_| false).is_err());
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let vars = apply("slots = 3\nlisten = \"127.0.0.1:9\"\n", |v| {
            v == "GANTRY_SLOTS"
        })
        .expect("parse");
        assert_eq!(
            vars.get("GANTRY_LISTEN").map(String::as_str),
            Some("127.0.0.1:9")
        );
        assert!(!vars.contains_key("GANTRY_SLOTS"));
    }

    #[test]
    fn secrets_are_hidden() {
        assert!(secret("token"));
        assert_eq!(
            hide_url_password("postgres://gantry:s3cret@db:5432/g"),
            "postgres://gantry:[hidden]@db:5432/g"
        );
        assert_eq!(
            hide_url_password("s3://bucket/prefix"),
            "s3://bucket/prefix"
        );
    }
}
