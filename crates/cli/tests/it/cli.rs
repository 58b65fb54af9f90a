//! The CLI as a person meets it: help on every command, one header casing,
//! and an unreachable server explained.

use crate::util::*;
use std::process::Command;

fn gantry(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("home");
    Command::new(bin())
        .args(args)
        .env("GANTRY_HOME", home.path())
        .env_remove("GANTRY_URL")
        .output()
        .expect("gantry")
}

/// Every subcommand listed by `--help` has a line of help after its name.
#[test]
fn every_command_has_help_text() {
    let top = stdout(&gantry(&["--help"]));
    let groups: Vec<String> = commands_of(&top);
    assert!(groups.contains(&"configs".to_string()), "{top}");
    for group in groups {
        let help = stdout(&gantry(&[&group, "--help"]));
        for line in listed(&help) {
            assert!(
                line.split_whitespace().count() > 1,
                "`gantry {group}` lists a command without help: {line:?}\n{help}"
            );
        }
    }
}

/// The lines of a help text's "Commands:" section.
fn listed(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with("help "))
        .collect()
}

fn commands_of(help: &str) -> Vec<String> {
    listed(help)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn an_unreachable_server_is_named_with_the_cause_and_how_to_start_one() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let o = gantry(&["jobs", "list", "--server", "http://127.0.0.1:1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("http://127.0.0.1:1 "), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(
        err.contains("gantry up") && err.contains("GANTRY_URL"),
        "{err}"
    );
}

#[test]
fn table_headers_are_upper_case_everywhere() {
    let g = Gantry::server_only();
    for args in [
        &["jobs", "list"][..],
        &["configs", "list"],
        &["tables", "list"],
        &["files", "list"],
        &["projects", "list"],
        &["tokens", "list"],
    ] {
        let o = g.cli(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let out = stdout(&o);
        let header = out.lines().next().unwrap_or_default();
        assert!(
            !header.is_empty() && header == header.to_uppercase(),
            "{args:?}: {out}"
        );
    }
}
