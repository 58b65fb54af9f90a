//! Tenancy: project-scoped tokens see nothing of other projects (404, not
//! 403), admin-only project and token management, hashed tokens.

use crate::util::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_one_project_cannot_see_or_name_another() {
    let g = Gantry::up(&[]);
    let admin = g.client();

    // The admin creates a project and a token for it (CLI).
    let o = g.cli(&["projects", "create", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = g.cli(&[
        "tokens",
        "create",
        "--project",
        "acme",
        "--description",
        "ci",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let o = g.cli(&["projects", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&o);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("acme ") && l.contains(" none "))
            && listed.lines().any(|l| l.starts_with("default ")),
        "{listed}"
    );
    let secret = created["token"].as_str().expect("token").to_string();
    assert!(secret.starts_with("gty_"), "{created}");
    let acme = Api {
        http: reqwest::Client::new(),
        url: admin.url.clone(),
        token: Some(secret.clone()),
    };

    // Objects of the default project.
    let job = admin.run(sh("echo hello")).await;
    let job_id = job["id"].as_str().expect("id").to_string();
    let (s, _) = admin
        .post("/v1/configs", json!({"id": "nightly", "spec": sh("true")}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = admin
        .import("in.c-main.people", "", "id,name\n1,ann\n")
        .await;
    assert_eq!(s, 201);
    let resp = admin
        .req(Method::POST, "/v1/files?name=secret.txt&tag=t")
        .body("default's file")
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let file: Value = resp.json().await.expect("json");
    let file_id = file["id"].to_string();

    // Acme's token: every one of them is "not found", never "forbidden".
    for path in [
        format!("/v1/jobs/{job_id}"),
        format!("/v1/jobs/{job_id}/events"),
        "/v1/configs/nightly".to_string(),
        "/v1/configs/nightly/state".to_string(),
        "/v1/tables/in.c-main.people".to_string(),
        "/v1/tables/in.c-main.people/export".to_string(),
        "/v1/tables/in.c-main.people/versions".to_string(),
        format!("/v1/files/{file_id}"),
        format!("/v1/files/{file_id}/content"),
        "/v1/projects/default".to_string(),
    ] {
        let (s, body) = acme.get(&path).await;
        assert_eq!(s, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    let (s, _) = acme
        .post(&format!("/v1/jobs/{job_id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = acme.post("/v1/jobs", json!({"config": "nightly"})).await;
    assert_eq!(s, 404, "a configuration of another project cannot be run");
    let (s, _) = acme
        .call(Method::DELETE, "/v1/tables/in.c-main.people", None)
        .await;
    assert_eq!(s, 404);
    for (path, key) in [
        ("/v1/jobs", "jobs"),
        ("/v1/configs", "configs"),
        ("/v1/tables", "tables"),
        ("/v1/files", "files"),
    ] {
        let (s, body) = acme.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        assert_eq!(
            body[key],
            json!([]),
            "{path} lists nothing of default: {body}"
        );
    }

    // Acme's own objects, even under the same names, are its own.
    let (s, _) = acme
        .import("in.c-main.people", "", "id,name\n9,zed\n")
        .await;
    assert_eq!(s, 201);
    let acme_job = acme.run(sh("echo acme")).await;
    assert_eq!(acme_job["status"], "succeeded", "{acme_job}");
    assert_eq!(acme_job["project"], "acme");
    assert_eq!(
        admin.rows("in.c-main.people").await,
        vec!["id,name", "1,ann"]
    );
    assert_eq!(
        acme.rows("in.c-main.people").await,
        vec!["id,name", "9,zed"]
    );
    // The admin token is itself scoped to its project for data.
    let (s, _) = admin
        .get(&format!(
            "/v1/jobs/{}",
            acme_job["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(s, 404);
    let (s, body) = acme.get("/v1/projects/acme").await;
    assert_eq!((s, body["id"].clone()), (200, json!("acme")));

    // Managing projects and tokens, and metrics (they name every project),
    // need an admin token.
    for (method, path, body) in [
        (Method::GET, "/metrics", None),
        (Method::GET, "/v1/projects", None),
        (Method::POST, "/v1/projects", Some(json!({"id": "evil"}))),
        (
            Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"allow": ["root-user"]})),
        ),
        (Method::GET, "/v1/tokens", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"project": "acme", "admin": true})),
        ),
    ] {
        let (s, b) = acme.call(method, path, body).await;
        assert_eq!(s, 403, "{path}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
    }
    // Bad input to the admin routes.
    let (s, b) = admin.post("/v1/projects", json!({"id": "../x"})).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = admin.post("/v1/projects", json!({"id": "acme"})).await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = admin
        .post(
            "/v1/projects",
            json!({"id": "p2", "allow": ["host-network"]}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = admin.post("/v1/tokens", json!({"project": "nope"})).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = admin.get("/v1/tokens?projekt=acme").await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("invalid_request")),
        "{b}"
    );

    // Tokens are listed by id, never by secret or hash; the store keeps only
    // hashes (the secret appears in no file under the home).
    let o = g.cli(&["tokens", "list", "--project", "acme", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&o);
    assert!(
        !listed.contains(&secret) && listed.contains("\"ci\""),
        "{listed}"
    );
    assert_in_no_file(g.home_path(), &secret);
    // Revoked: the token no longer authenticates.
    let token_id = created["id"].as_str().expect("id");
    let o = g.cli(&["tokens", "revoke", token_id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (s, _) = acme.get("/v1/jobs").await;
    assert_eq!(s, 401);
    let o = g.cli(&["tokens", "revoke", token_id]);
    assert!(!o.status.success(), "revoking twice is an error");
}
