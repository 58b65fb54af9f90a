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

#[test]
fn a_config_file_sets_what_the_environment_and_flags_do_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let file = dir.path().join("gantry.toml");
    std::fs::write(
        &file,
        format!(
            "home = {home:?}\nlisten = \"127.0.0.1:0\"\nslots = 3\nshutdown_grace = \"5s\"\nlog_cap = \"2m\"\ntoken = \"gty_very_secret\"\nstorage_url = \"s3://u:pw@host/b\"\n"
        ),
    )
    .expect("write");
    let show = |extra: &[&str]| {
        let mut args = vec!["config", "show", "--output", "json"];
        args.extend_from_slice(extra);
        let o = Command::new(bin())
            .args(&args)
            .env("GANTRY_CONFIG", &file)
            .env("GANTRY_SLOTS", "5")
            .env_remove("GANTRY_HOME")
            .env_remove("GANTRY_TOKEN")
            .output()
            .expect("gantry");
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).expect("json")
    };
    let v = show(&[]);
    let from_file = format!("file {}", file.display());
    assert_eq!(v["listen"]["source"], from_file.as_str(), "{v}");
    assert_eq!(v["shutdown_grace"]["value"], "5s");
    assert_eq!(v["slots"]["value"], "5", "the environment beats the file");
    assert_eq!(v["slots"]["source"], "environment GANTRY_SLOTS");
    assert_eq!(v["max_output_files"]["source"], "default");
    assert_eq!(v["token"]["value"], "[hidden]");
    assert_eq!(v["storage_url"]["value"], "s3://u:[hidden]@host/b");
    let text = v.to_string();
    assert!(
        !text.contains("gty_very_secret") && !text.contains("pw@"),
        "{text}"
    );

    // `gantry up` with that file: its home and address come from the file
    // (the default would be ./.gantry and 127.0.0.1:8420).
    let mut child = Command::new(bin())
        .args(["up", "--config", file.to_str().expect("path")])
        .env_remove("GANTRY_HOME")
        .env_remove("GANTRY_LISTEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("up");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listening = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("gantry up starts");
        if let Some(addr) = line.strip_prefix("Gantry API listening on ") {
            break addr.to_string();
        }
    };
    assert!(!listening.ends_with(":8420"), "{listening}");
    assert!(
        home.join("gantry.db").exists(),
        "the home named in the file is used"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    // An unknown key is an error naming it; nothing starts.
    std::fs::write(&file, "slotz = 3\n").expect("write");
    let o = Command::new(bin())
        .args(["up", "--config", file.to_str().expect("path")])
        .output()
        .expect("up");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key `slotz`"), "{}", stderr(&o));
}

#[test]
fn gantry_logs_json_lines_with_log_format_json() {
    let mut g = Gantry::up(&["--log-format", "json"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let line = loop {
        let found = g
            .log
            .lock()
            .expect("log")
            .iter()
            .find(|l| l.contains("worker started"))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", g.log.lock());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["message"], "worker started", "{v}");
    assert_eq!(v["level"], "INFO");
    assert!(v["worker"].is_string() && v["timestamp"].is_string(), "{v}");
    g.stop_with("TERM", std::time::Duration::from_secs(20));
}

#[test]
fn doctor_checks_the_machine_and_says_what_to_fix() {
    let g = Gantry::server_only();
    let doctor = |env: &[(&str, &str)]| {
        let o = Command::new(bin())
            .args(["doctor", "--output", "json"])
            .env("GANTRY_HOME", g.home_path())
            .envs(env.iter().copied())
            .output()
            .expect("doctor");
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
        let all = v.clone();
        let by_name = move |name: &str| {
            all.as_array()
                .expect("checks")
                .iter()
                .find(|c| c["check"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} check: {all}"))
        };
        (o.status.code(), v, by_name)
    };
    let (code, v, check) = doctor(&[]);
    assert_eq!(code, Some(0), "{v}");
    for name in [
        "engine",
        "cgroups",
        "seccomp",
        "clock",
        "store",
        "object store",
        "secret key",
        "disk (home)",
    ] {
        assert_eq!(check(name)["result"], "ok", "{name}: {v}");
    }
    assert!(check("store")["detail"]
        .as_str()
        .is_some_and(|d| d.contains("takes writes")));
    assert!(
        files_under(&g.home_path().join("objects")).is_empty(),
        "the probe object is deleted"
    );

    // A key others can read, and no engine: both fail with their fix.
    let key = g.home_path().join("secret.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, v, check) = doctor(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(check("secret key")["result"], "FAIL");
    assert!(check("secret key")["fix"]
        .as_str()
        .is_some_and(|f| f.starts_with("chmod 600")));
    assert_eq!(check("engine")["result"], "FAIL");
    assert!(check("engine")["fix"]
        .as_str()
        .is_some_and(|f| f.contains("DOCKER_HOST")));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}
