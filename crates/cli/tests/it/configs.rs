//! Configurations: stored specs whose state carries from one successful run
//! to the next; secrets sealed at rest.

use crate::util::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn state_carries_over_only_from_successful_runs() {
    let g = Gantry::up(&[]);
    let api = g.client();
    // Reads the count from in/state.json, writes count+1 to out/state.json;
    // fails (after writing) when parameters.fail is set.
    let script = r#"n=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' /data/in/state.json); n=${n:-0}; echo "count was $n"; echo "{\"count\": $((n+1))}" > /data/out/state.json; grep -q '"fail": true' /data/config.json && exit 1; echo "config $GANTRY_CONFIG_ID"; exit 0"#;
    let spec = g.write_spec(
        "counter.yaml",
        &serde_json::to_string(&sh(script)).expect("json"),
    );
    let out = g.cli(&["configs", "create", "counter", spec.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = g.cli(&["configs", "create", "counter", spec.to_str().expect("path")]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    for expected in [1, 2] {
        let out = g.cli(&["configs", "run", "counter", "--wait"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let st = g.cli(&["configs", "state", "counter", "--output", "json"]);
        let state: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
        assert_eq!(state, json!({"count": expected}));
    }
    let (_, page) = api.get("/v1/jobs?limit=1").await;
    let last = &page["jobs"][0];
    assert_eq!(last["config"], "counter");
    let msgs = api
        .messages(last["id"].as_str().expect("id"), "stdout")
        .await;
    assert!(
        msgs.contains(&"count was 1".to_string()) && msgs.contains(&"config counter".to_string()),
        "{msgs:?}"
    );

    // A failed run leaves the state alone.
    let mut failing = sh(script);
    failing["parameters"] = json!({"fail": true});
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            "/v1/configs/counter",
            Some(json!({"spec": failing})),
        )
        .await;
    assert_eq!(status, 200);
    let out = g.cli(&["configs", "run", "counter", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, state) = api.get("/v1/configs/counter/state").await;
    assert_eq!(state, json!({"count": 2}));

    let list = g.cli(&["configs", "list"]);
    assert!(stdout(&list).contains("counter"), "{}", stdout(&list));
    let (_, cfg) = api.get("/v1/configs/counter").await;
    assert_eq!(cfg["version"], 2);
    assert!(g.cli(&["configs", "delete", "counter"]).status.success());
    let (status, err) = api.get("/v1/configs/counter").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_encrypted_at_rest_and_reach_only_the_container() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let secret = "pa55-w0rd-XYZZY";
    // The script names only a prefix: the clear value is nowhere in the spec.
    let mut spec = sh("grep -c '\"#password\": \"pa55-w0rd-XY' /data/config.json");
    spec["parameters"] = json!({"#password": secret, "user": "bob"});
    let (status, cfg) = api
        .post("/v1/configs", json!({"id": "with-secret", "spec": spec}))
        .await;
    assert_eq!(status, 201, "{cfg}");
    assert!(!cfg.to_string().contains(secret), "{cfg}");
    assert!(cfg["spec"]["parameters"]["#password"]
        .as_str()
        .is_some_and(|v| v.starts_with("gantry:enc:v1:")));
    assert_eq!(cfg["spec"]["parameters"]["user"], "bob");

    let (_, job) = api.post("/v1/jobs", json!({"config": "with-secret"})).await;
    let job = api.wait(job["id"].as_str().expect("id")).await;
    assert_eq!(
        job["status"], "succeeded",
        "the container saw the clear value: {job}"
    );
    assert_eq!(
        api.messages(job["id"].as_str().expect("id"), "stdout")
            .await,
        vec!["1"]
    );

    // The attempt's data folder (its config.json holds the clear value for
    // the container) is removed just after the job's end is committed.
    let work = g.home_path().join("work");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&work).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "data folder left behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Nothing under the home holds the clear value (database, WAL, anything).
    assert_in_no_file(g.home_path(), secret);
    use std::os::unix::fs::PermissionsExt;
    for f in ["secret.key", "token"] {
        let mode = std::fs::metadata(g.home_path().join(f))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
}
