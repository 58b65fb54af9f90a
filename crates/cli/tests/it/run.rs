//! `gantry run`: the component author's loop, no server.

use crate::util::*;
use std::process::Command;

fn run(spec: &std::path::Path, data: &std::path::Path) -> std::process::Output {
    let home = tempfile::tempdir().expect("home");
    Command::new(bin())
        .args([
            "run",
            spec.to_str().expect("path"),
            "--data",
            data.to_str().expect("path"),
        ])
        .env("GANTRY_HOME", home.path())
        .output()
        .expect("gantry run")
}

#[test]
fn runs_against_a_data_folder_and_exit_code_follows_the_job() {
    ensure_images();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("in/tables")).expect("mkdir");
    std::fs::write(
        data.join("in/tables/people.csv"),
        "id,name\n1,alice\n2,bob\n",
    )
    .expect("csv");
    let spec = dir.path().join("job.yaml");
    std::fs::write(
        &spec,
        format!(
            r#"image: {IMAGE}
command: [sh, -c, 'tr a-z A-Z < /data/in/tables/people.csv > /data/out/tables/upper.csv; echo "$KBC_DATADIR $GANTRY_JOB_ID"; grep -o "\"greeting\": \"hi\"" /data/config.json; grep -o "\"action\": \"run\"" /data/config.json; cat /data/in/state.json; echo; ls /data/in/files /data/out/files']
parameters: {{greeting: hi}}
"#
        ),
    )
    .expect("spec");
    let out = run(&spec, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(data.join("out/tables/upper.csv")).expect("out"),
        "ID,NAME\n1,ALICE\n2,BOB\n"
    );
    let text = stdout(&out);
    assert!(text.contains("/data/ local-"), "{text}");
    assert!(
        text.contains(r#""greeting": "hi""#) && text.contains(r#""action": "run""#),
        "{text}"
    );
    assert!(text.contains("{}"), "empty state: {text}");
    assert!(stderr(&out).contains("job succeeded"));

    for (script, code) in [("exit 1", 1), ("exit 42", 42)] {
        std::fs::write(
            &spec,
            format!("image: {IMAGE}\ncommand: [sh, -c, '{script}']\n"),
        )
        .expect("spec");
        assert_eq!(run(&spec, &data).status.code(), Some(code), "{script}");
    }
    std::fs::write(
        &spec,
        format!("image: {IMAGE}\ncommand: [sh, -c, 'sleep 5']\nlimits: {{timeout: 200ms}}\n"),
    )
    .expect("spec");
    assert_eq!(run(&spec, &data).status.code(), Some(124));
    std::fs::write(&spec, "image: gantry-test/absent:1\npull: never\n").expect("spec");
    assert_eq!(run(&spec, &data).status.code(), Some(125));
    std::fs::write(&spec, format!("image: {IMAGE}\nlimits: {{cpus: -1}}\n")).expect("spec");
    let bad = run(&spec, &data);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("limits.cpus"), "{}", stderr(&bad));
}
