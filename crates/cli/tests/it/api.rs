//! The HTTP API's contract: auth, errors with stable codes, limits, documents.

use crate::util::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn requests_need_a_valid_token() {
    let g = Gantry::up(&[]);
    let anon = g.client().without_token();
    let (status, body) = anon.get("/v1/jobs").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let mut wrong = g.client();
    wrong.token = Some("gty_not_a_real_token".into());
    assert_eq!(wrong.get("/v1/jobs").await.0, 401);
    // Health, readiness and the document need no token; metrics need one.
    assert_eq!(anon.get("/metrics").await.0, 401);
    assert_eq!(anon.get("/healthz").await.0, 200);
    let (status, ready) = anon.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["engine"], "ok");
    let (status, doc) = anon.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    // Derived from the handlers (utoipa): OpenAPI 3.1.
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/jobs/{id}/events"].is_object());
    // The token is stored hashed: the database does not contain it.
    let db = std::fs::read(g.home_path().join("gantry.db")).expect("db");
    assert!(!db.windows(g.token.len()).any(|w| w == g.token.as_bytes()));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let (status, body) = api
        .post(
            "/v1/jobs",
            json!({"spec": {"image": IMAGE, "limits": {"memroy": "1g"}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("limits.memroy:")),
        "{body}"
    );

    let (status, body) = api
        .post(
            "/v1/jobs",
            json!({"spec": {"image": IMAGE, "limits": {"memory": "lots"}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("limits.memory")),
        "{body}"
    );

    let (status, body) = api
        .post("/v1/jobs", json!({"spec": {"command": ["true"]}}))
        .await;
    assert_eq!(
        (
            status,
            body["error"]["message"]
                .as_str()
                .map(|m| m.starts_with("image:"))
        ),
        (400, Some(true)),
        "{body}"
    );

    let (status, body) = api
        .post("/v1/jobs", json!({"spec": {"image": IMAGE}, "config": "x"}))
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = api.post("/v1/jobs", json!({"config": "missing"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let raw = api
        .req(reqwest::Method::POST, "/v1/jobs")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "invalid_request");

    // The server answers 413 without reading the rest and closes the
    // connection, so this request gets a client (connection) of its own.
    let big = "x".repeat(2 << 20);
    let (status, body) = g
        .client()
        .post(
            "/v1/jobs",
            json!({"spec": {"image": IMAGE, "env": {"BIG": big}}}),
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "too_large");

    let (status, body) = api.get("/v1/jobs/not-a-job-id").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = api
        .get("/v1/jobs/01a1fdc3-038d-700f-934f-128081a8f649")
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/v1/jobs?status=bogus").await;
    assert_eq!(status, 400);
    let (status, _) = api.get("/v1/configs/..%2Fetc").await;
    assert_eq!(status, 400);

    // The CLI names the key path before sending anything.
    let spec = g.write_spec(
        "typo.yaml",
        &format!("image: {IMAGE}\nlimits:\n  memroy: 1g\n"),
    );
    let out = g.cli(&["jobs", "submit", spec.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("limits.memroy"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_list_pages_with_a_cursor_and_filters_by_status() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = api.submit(sh("true")).await;
        api.wait(&id).await;
        ids.push(id);
    }
    let (_, page) = api.get("/v1/jobs?limit=2").await;
    let first: Vec<_> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(first, vec![ids[2].clone(), ids[1].clone()], "newest first");
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, page2) = api.get(&format!("/v1/jobs?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["jobs"][0]["id"], ids[0].as_str());
    assert!(page2["next_cursor"].is_null());
    let (_, failed) = api.get("/v1/jobs?status=failed").await;
    assert_eq!(failed["jobs"].as_array().map(Vec::len), Some(0));
    let (_, metrics) = api.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("gantry_jobs{status=\"succeeded\"} 3")),
        "{metrics}"
    );
    let listed = g.cli(&["jobs", "list"]);
    assert!(stdout(&listed).contains(&ids[0]), "{}", stdout(&listed));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ids_and_injection_attempts_are_refused_and_change_nothing() {
    let g = Gantry::server_only();
    let api = g.client();
    let (s, _) = api.import("in.c-main.t", "", "id\n1\n").await;
    assert_eq!(s, 201);
    for id in [
        "in.c-main.t'%3B%20DROP%20TABLE%20jobs%3B--",
        "in.c-main.t%20OR%201%3D1",
        "..%2F..%2Fetc%2Fpasswd",
        "in.c-..%2F..%2Fx.y",
        "out.c-main.%00",
        "nope",
    ] {
        let (s, body) = api.get(&format!("/v1/tables/{id}")).await;
        assert_eq!(s, 400, "{id}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{id}: {body}");
        let (s, body) = api.import(id, "", "id\n2\n").await;
        assert!(s == 400 || s == 404, "{id}: {s} {body}");
    }
    for (path, want) in [
        ("/v1/jobs/1%20OR%201%3D1", 404),
        ("/v1/files/1%20OR%201%3D1", 404),
        ("/v1/configs/x'%3B--", 400),
    ] {
        let (s, body) = api.get(path).await;
        assert_eq!(s, want, "{path}: {body}");
    }
    let (s, body) = api
        .import(
            "in.c-main.t",
            "primary_key=id%27%3B%20DROP%20TABLE%20jobs",
            "id\n3\n",
        )
        .await;
    assert_eq!(s, 400, "{body}");
    // Storage and the store are untouched.
    assert_eq!(api.rows("in.c-main.t").await, vec!["id", "1"]);
    let (s, _) = api.get("/v1/jobs").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_jobs_is_queued_whole_or_not_at_all() {
    let g = Gantry::server_only();
    let api = g.client();
    let spec = json!({"image": IMAGE, "command": ["true"]});
    let (s, body) = api
        .post(
            "/v1/jobs/batch",
            json!({"jobs": [{"spec": spec}, {"spec": spec}, {"spec": spec}]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        let (s, job) = api.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!((s, job["status"].as_str()), (200, Some("queued")), "{job}");
    }
    // One bad spec: a 400 naming it, and nothing queued.
    let (s, body) = api
        .post(
            "/v1/jobs/batch",
            json!({"jobs": [{"spec": spec}, {"spec": {"image": IMAGE, "limits": {"memroy": "1g"}}}]}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("jobs[1]: ") && msg.contains("memroy"),
        "{msg}"
    );
    let (_, missing) = api
        .post("/v1/jobs/batch", json!({"jobs": [{"config": "nope"}]}))
        .await;
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("jobs[0]: "),
        "{missing}"
    );
    for bad in [
        json!({"jobs": []}),
        json!({"jobs": vec![json!({"spec": spec}); 1001]}),
    ] {
        let (s, body) = api.post("/v1/jobs/batch", bad).await;
        assert_eq!(s, 400, "{body}");
    }
    let (_, all) = api.get("/v1/jobs?limit=1000").await;
    assert_eq!(
        all["jobs"].as_array().map(Vec::len),
        Some(3),
        "nothing else was queued"
    );
}
