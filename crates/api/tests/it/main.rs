//! Router tests: `app()` on a temp SQLite store, a local object store and a
//! vault, driven with `oneshot` (no Docker, no socket). They pin the HTTP
//! contract: auth, tenancy, validation, the error table, configurations and
//! the OpenAPI document.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use gantry_api::{app, AppState};
use gantry_core::ProjectId;
use gantry_store::Store;
use gantry_store_sqlite::SqliteStore;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    _dir: tempfile::TempDir,
    state: AppState,
    admin: String,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("gantry.db")).expect("store"));
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).expect("objects");
    let storage = gantry_storage::Storage::open(&objects.display().to_string(), store.clone())
        .expect("storage");
    let vault = gantry_vault::Vault::open_or_create(&dir.path().join("key")).expect("vault");
    let admin = store
        .create_token(&ProjectId::default_project(), true, "admin")
        .await
        .expect("token")
        .secret;
    Api {
        _dir: dir,
        state: AppState {
            store,
            storage,
            vault,
            readiness: None,
            actions: None,
        },
        admin,
    }
}

impl Api {
    /// A token of a new project `name` (not an admin).
    async fn project_token(&self, name: &str) -> String {
        let id: ProjectId = name.parse().expect("project id");
        self.state
            .store
            .create_project(&id, &[])
            .await
            .expect("project");
        self.state
            .store
            .create_token(&id, false, "user")
            .await
            .expect("token")
            .secret
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, uri, token, body, &[]).await
    }

    /// `call` with extra request headers.
    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    /// POSTs raw bytes (`application/octet-stream`) with the admin token.
    async fn post_bytes(&self, uri: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes))
            .expect("request");
        self.send(req).await
    }

    /// The router's answer: its status and its body as JSON (or as a JSON
    /// string when it is not JSON; `null` when empty).
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(self.state.clone())
            .oneshot(req)
            .await
            .expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_v1_route_needs_a_valid_token() {
    let a = api().await;
    for (method, uri) in [
        (Method::GET, "/v1/jobs"),
        (Method::POST, "/v1/jobs"),
        (Method::GET, "/v1/configs"),
        (Method::GET, "/v1/tables"),
        (Method::GET, "/v1/files"),
        (Method::GET, "/v1/tokens"),
        (Method::GET, "/metrics"),
    ] {
        let (st, body) = a.call(method.clone(), uri, None, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
        assert_eq!(code(&body), "unauthorized");
        let (st, _) = a.call(method.clone(), uri, Some("nope"), None).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} with a bad token"
        );
    }
}

#[tokio::test]
async fn another_projects_jobs_and_configs_answer_not_found() {
    let a = api().await;
    let (st, job) = a
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&a.admin),
            Some(json!({"spec": {"image": "busybox"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().expect("id");
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/configs",
            Some(&a.admin),
            Some(json!({"id": "secret-cfg", "spec": {"image": "busybox"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    let other = a.project_token("other").await;
    for uri in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/events"),
        "/v1/configs/secret-cfg".to_string(),
        "/v1/configs/secret-cfg/state".to_string(),
    ] {
        let (st, body) = a.call(Method::GET, &uri, Some(&other), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(code(&body), "not_found");
    }
    let (st, _) = a
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Submitting another project's configuration is not found either.
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&other),
            Some(json!({"config": "secret-cfg"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Its own list does not show the job.
    let (_, list) = a.call(Method::GET, "/v1/jobs", Some(&other), None).await;
    assert_eq!(list["jobs"], json!([]));
}

#[tokio::test]
async fn submit_validation_names_the_key_path_and_policy() {
    let a = api().await;
    let cases = [
        (
            json!({"spec": {"image": "busybox", "limits": {"memory": "lots"}}}),
            "invalid_spec",
            "limits.memory",
        ),
        (json!({"spec": {"image": ""}}), "invalid_spec", "image"),
        (
            json!({"spec": {"image": "busybox", "user": "root"}}),
            "invalid_spec",
            "user",
        ),
        (
            json!({"spec": {"image": "busybox"}, "config": "x"}),
            "invalid_request",
            "exactly one",
        ),
        (
            json!({"spec": {"image": "busybox"}, "delay": "1s", "run_after": "2030-01-01T00:00:00Z"}),
            "invalid_request",
            "at most one",
        ),
        (
            json!({"spec": {"image": "busybox"}, "priority": 7}),
            "invalid_spec",
            "priority",
        ),
        (
            json!({"spec": {"image": "busybox"}, "surprise": 1}),
            "invalid_request",
            "surprise",
        ),
    ];
    for (body, want_code, want_text) in cases {
        let (st, resp) = a
            .call(Method::POST, "/v1/jobs", Some(&a.admin), Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(code(&resp), want_code, "{body}: {resp}");
        let msg = resp["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(want_text), "{body}: {msg}");
    }
    // A batch names the index of the job it refused, and queues none.
    let (st, resp) = a
        .call(
            Method::POST,
            "/v1/jobs/batch",
            Some(&a.admin),
            Some(json!({"jobs": [{"spec": {"image": "busybox"}}, {"spec": {"image": ""}}]})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("jobs[1]: "));
    let (_, list) = a.call(Method::GET, "/v1/jobs", Some(&a.admin), None).await;
    assert_eq!(list["jobs"], json!([]));
}

#[tokio::test]
async fn the_error_table_answers_its_statuses() {
    let a = api().await;
    let user = a.project_token("team").await;
    // 404 for a route that does not exist, as JSON.
    let (st, body) = a
        .call(Method::GET, "/v1/nothing", Some(&a.admin), None)
        .await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    // 415 for a body that is not JSON.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("image: busybox"))
        .expect("request");
    let resp = app(a.state.clone()).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // 403 for admin-only routes with a project token.
    for (m, uri) in [(Method::GET, "/metrics"), (Method::GET, "/v1/tokens")] {
        let (st, body) = a.call(m, uri, Some(&user), None).await;
        assert_eq!(
            (st, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{uri}"
        );
    }
    // 409 for a configuration id taken.
    let cfg = json!({"id": "dup", "spec": {"image": "busybox"}});
    let (st, _) = a
        .call(Method::POST, "/v1/configs", Some(&user), Some(cfg.clone()))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, body) = a
        .call(Method::POST, "/v1/configs", Some(&user), Some(cfg))
        .await;
    assert_eq!((st, code(&body)), (StatusCode::CONFLICT, "conflict"));
    // 400 for a bad query parameter, as JSON.
    let (st, body) = a
        .call(Method::GET, "/v1/jobs?limit=0", Some(&user), None)
        .await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // A malformed job id cannot name a job: 404, not 400.
    let (st, _) = a
        .call(Method::GET, "/v1/jobs/not-a-uuid", Some(&user), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn configurations_round_trip_with_secrets_sealed() {
    let a = api().await;
    let t = a.project_token("cfgs").await;
    let spec = json!({"image": "busybox", "parameters": {"#token": "s3cret", "n": 1}});
    let (st, made) = a
        .call(
            Method::POST,
            "/v1/configs",
            Some(&t),
            Some(json!({"id": "etl", "spec": spec})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(made["version"], json!(1));
    assert!(!made.to_string().contains("s3cret"), "sealed: {made}");
    let (st, got) = a.call(Method::GET, "/v1/configs/etl", Some(&t), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["spec"]["parameters"]["n"], json!(1));
    let (st, updated) = a
        .call(
            Method::PUT,
            "/v1/configs/etl",
            Some(&t),
            Some(json!({"spec": {"image": "busybox:2"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], json!(2));
    let (_, list) = a.call(Method::GET, "/v1/configs", Some(&t), None).await;
    assert_eq!(list["configs"].as_array().map(Vec::len), Some(1));
    let (st, job) = a
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&t),
            Some(json!({"config": "etl"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(job["config"], json!("etl"));
    assert_eq!(job["spec"]["image"], json!("busybox:2"));
    let (st, _) = a
        .call(Method::DELETE, "/v1/configs/etl", Some(&t), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = a.call(Method::GET, "/v1/configs/etl", Some(&t), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_is_served_and_covers_every_route() {
    let a = api().await;
    let (st, doc) = a.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        doc,
        serde_json::to_value(gantry_api::openapi()).expect("json")
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/v1/jobs", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/configs/{id}", "put"),
        ("/v1/configs/{id}/actions/{action}", "post"),
        ("/v1/tables/{id}/versions/{version}/pin", "delete"),
        ("/v1/files", "post"),
        ("/v1/tokens/{id}", "delete"),
        ("/v1/projects/{id}", "patch"),
        ("/v1/schedules/{id}/resume", "post"),
        ("/v1/pipeline-runs/{id}/cancel", "post"),
        ("/v1/webhooks/{id}/rotate", "post"),
        ("/v1/hooks/{id}", "post"),
        ("/v1/runs", "post"),
        ("/metrics", "get"),
        ("/readyz", "get"),
        ("/healthz", "get"),
        ("/v1/openapi.json", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        // Every path parameter of the template is described.
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            assert!(
                declared.contains(&name),
                "{method} {path}: {{{name}}} undeclared"
            );
        }
    }
    // Every operation needing a token says so, and lists 401.
    let mut ops = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            ops += 1;
            if op.get("security").is_some() {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
    assert!(ops >= 55, "only {ops} operations");
}

/// Regression (found by schemathesis): a file whose name held a control
/// character or non-ASCII letters answered 500 on download, its name making
/// the `Content-Disposition` header invalid.
#[tokio::test]
async fn a_file_with_any_name_downloads() {
    let a = api().await;
    for (query, name) in [
        ("n%01%C3%BCx%22.txt", "n\u{1}üx\".txt"),
        ("plain.csv", "plain.csv"),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/files?name={query}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
            .body(Body::from("hello"))
            .expect("request");
        let resp = app(a.state.clone()).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let made: Value =
            serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes())
                .expect("json");
        assert_eq!(made["name"], json!(name));
        let id = made["id"].as_i64().expect("id");
        let req = Request::builder()
            .uri(format!("/v1/files/{id}/content"))
            .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
            .body(Body::empty())
            .expect("request");
        let resp = app(a.state.clone()).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "{name:?}");
        let cd = resp.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii header")
            .to_string();
        assert!(cd.starts_with("attachment; filename=\""), "{cd}");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"hello");
    }
}

#[tokio::test]
async fn sync_actions_check_the_name_the_configuration_and_the_engine() {
    let a = api().await;
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/configs",
            Some(&a.admin),
            Some(json!({"id": "ex", "spec": {"image": "busybox"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // `run` is a job, not an action.
    let (st, body) = a
        .call(
            Method::POST,
            "/v1/configs/ex/actions/run",
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Another project's configuration is not found.
    let other = a.project_token("elsewhere").await;
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/configs/ex/actions/test",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // No engine in this process: 503, saying where actions run.
    let (st, body) = a
        .call(
            Method::POST,
            "/v1/configs/ex/actions/test",
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}

/// Regression (found by schemathesis): an `import_max_bytes` above 2^63-1
/// was answered 200 and stored as 2^63-1, silently changed.
#[tokio::test]
async fn an_import_cap_too_large_to_store_is_refused() {
    let a = api().await;
    let req = Request::builder()
        .method(Method::PATCH)
        .uri("/v1/projects/default")
        .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"import_max_bytes": 9223372036854775808}"#))
        .expect("request");
    let resp = app(a.state.clone()).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (st, ok) = a
        .call(
            Method::PATCH,
            "/v1/projects/default",
            Some(&a.admin),
            Some(json!({"import_max_bytes": 9_223_372_036_854_775_807_u64})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ok["import_max_bytes"], json!(9_223_372_036_854_775_807_u64));
}

/// Regressions schemathesis found in the image routes: what the document's
/// patterns allow is accepted and what they refuse is refused, counted in
/// characters as JSON Schema counts (C1 controls and U+FEFF are refused,
/// multi-byte names are not); a missing kept image is a documented 404.
#[tokio::test]
async fn image_routes_hold_to_their_documented_patterns() {
    let api = api().await;
    let t = Some(api.admin.as_str());
    for bad in ["\u{0081}", "a\u{feff}b", "a b", ""] {
        let (s, v) = api
            .call(
                Method::POST,
                "/v1/images/keep",
                t,
                Some(json!({"image": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
        let (s, _) = api
            .call(
                Method::POST,
                "/v1/stacks",
                t,
                Some(json!({"name": "s", "image": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let (s, v) = api
        .call(
            Method::POST,
            "/v1/images/keep",
            t,
            Some(json!({"image": "registry.example/é:1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // 256 characters of 4 bytes each: schema-valid, so accepted.
    let user = "𝄞".repeat(256);
    let (s, v) = api
        .call(
            Method::POST,
            "/v1/registries",
            t,
            Some(json!({"host": "r.example:5000", "username": user, "password": "p".repeat(2048)})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = api
        .call(
            Method::POST,
            "/v1/registries",
            t,
            Some(json!({"host": "r.example", "username": "u\u{0085}", "password": "p"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = api
        .call(Method::DELETE, "/v1/images/keep?image=never-kept", t, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// Checks `value` against `schema` of the OpenAPI document `doc` (`$ref`s
/// resolved): JSON types, enums, required properties, and no property the
/// schema does not list. `at` names the place in errors.
fn check_schema(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: dangling {r}"));
        }
        return check_schema(doc, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema[key].as_array() {
            let errors: Vec<String> = branches
                .iter()
                .filter_map(|b| check_schema(doc, b, value, at).err())
                .collect();
            if errors.len() == branches.len() {
                return Err(format!("{at}: no branch of {key} fits: {errors:?}"));
            }
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for b in all {
            check_schema(doc, b, value, at)?;
        }
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !fits {
        return Err(format!(
            "{at}: {value} is {kind}, the schema says {types:?}"
        ));
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(value) {
            return Err(format!("{at}: {value} is not one of {choices:?}"));
        }
    }
    if let (Some(props), Value::Object(fields)) = (schema["properties"].as_object(), value) {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("");
            if !fields.contains_key(name) {
                return Err(format!("{at}: required '{name}' is missing"));
            }
        }
        for (name, v) in fields {
            let Some(p) = props.get(name) else {
                return Err(format!("{at}: '{name}' is not in the schema"));
            };
            check_schema(doc, p, v, &format!("{at}.{name}"))?;
        }
    }
    if let (Some(items), Value::Array(elements)) = (schema.get("items"), value) {
        for (i, e) in elements.iter().enumerate() {
            check_schema(doc, items, e, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Asserts that an answer fits the schema the document gives for it, and
/// that that schema is a named one (not a plain object).
fn assert_documented(doc: &Value, method: &str, path: &str, status: StatusCode, answer: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema["$ref"].is_string(),
        "{method} {path} {status}: not a named schema: {schema}"
    );
    if let Err(e) = check_schema(doc, schema, answer, "answer") {
        panic!("{method} {path} {status}: {e}\n{answer:#}");
    }
}

#[test]
fn the_schema_check_refuses_what_a_schema_does_not_say() {
    let doc = serde_json::to_value(gantry_api::openapi()).expect("json");
    let schema = json!({"$ref": "#/components/schemas/HookList"});
    assert!(check_schema(&doc, &schema, &json!({"webhooks": []}), "a").is_ok());
    assert!(check_schema(&doc, &schema, &json!({"webhooks": [], "more": 1}), "a").is_err());
    assert!(check_schema(&doc, &schema, &json!({"webhooks": [{"id": 1}]}), "a").is_err());
    assert!(check_schema(&doc, &schema, &json!({}), "a").is_err());
}

/// The answers of schedules, pipelines, pipeline runs (with their
/// notifications) and webhooks are described by named schemas that they
/// fit exactly, and read back into the wire types the CLI uses.
#[tokio::test]
async fn trigger_answers_fit_their_documented_schemas() {
    let a = api().await;
    let doc = serde_json::to_value(gantry_api::openapi()).expect("json");
    let t = a.project_token("triggers").await;
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/configs",
            Some(&t),
            Some(json!({"id": "etl", "spec": {"image": "busybox"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Schedules.
    let (st, sc) = a
        .call(
            Method::POST,
            "/v1/schedules",
            Some(&t),
            Some(json!({"id": "nightly", "config": "etl", "cron": "0 3 * * *", "timezone": "Europe/Prague"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sc}");
    assert_documented(&doc, "post", "/v1/schedules", st, &sc);
    assert_eq!(sc["status"], "active");
    assert_eq!(sc["pipeline"], Value::Null, "present as null: {sc}");
    assert_eq!(sc["next"].as_array().map(Vec::len), Some(5));
    let typed: gantry_wire::ScheduleView = serde_json::from_value(sc.clone()).expect("typed");
    assert_eq!(serde_json::to_value(&typed).expect("json"), sc);
    let (st, v) = a
        .call(Method::POST, "/v1/schedules/nightly/pause", Some(&t), None)
        .await;
    assert_documented(&doc, "post", "/v1/schedules/{id}/pause", st, &v);
    assert_eq!(v["status"], "paused");
    let (st, v) = a
        .call(Method::POST, "/v1/schedules/nightly/resume", Some(&t), None)
        .await;
    assert_documented(&doc, "post", "/v1/schedules/{id}/resume", st, &v);
    let (st, v) = a
        .call(Method::GET, "/v1/schedules/nightly", Some(&t), None)
        .await;
    assert_documented(&doc, "get", "/v1/schedules/{id}", st, &v);
    let (st, v) = a.call(Method::GET, "/v1/schedules", Some(&t), None).await;
    assert_documented(&doc, "get", "/v1/schedules", st, &v);
    assert_eq!(v["schedules"][0]["id"], "nightly");

    // Pipelines and their runs.
    let phases = json!([
        {"name": "extract", "tasks": [{"config": "etl", "parameters": {"#key": "s3cret"}}]},
        {"tasks": [{"config": "etl", "continue_on_failure": true}]}
    ]);
    let (st, pl) = a
        .call(
            Method::POST,
            "/v1/pipelines",
            Some(&t),
            Some(json!({"id": "daily", "phases": phases})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{pl}");
    assert_documented(&doc, "post", "/v1/pipelines", st, &pl);
    assert!(!pl.to_string().contains("s3cret"), "sealed: {pl}");
    assert_eq!(pl["phases"][0]["name"], "extract");
    assert_eq!(pl["phases"][1]["tasks"][0]["continue_on_failure"], true);
    assert!(pl["phases"][1].get("name").is_none(), "{pl}");
    let typed: gantry_wire::PipelineView = serde_json::from_value(pl.clone()).expect("typed");
    assert_eq!(serde_json::to_value(&typed).expect("json"), pl);
    let (st, v) = a
        .call(
            Method::PUT,
            "/v1/pipelines/daily",
            Some(&t),
            Some(json!({"phases": phases})),
        )
        .await;
    assert_documented(&doc, "put", "/v1/pipelines/{id}", st, &v);
    assert_eq!(v["version"], 2);
    let (st, v) = a.call(Method::GET, "/v1/pipelines", Some(&t), None).await;
    assert_documented(&doc, "get", "/v1/pipelines", st, &v);
    let (st, v) = a
        .call(Method::GET, "/v1/pipelines/daily", Some(&t), None)
        .await;
    assert_documented(&doc, "get", "/v1/pipelines/{id}", st, &v);
    let (st, run) = a
        .call(Method::POST, "/v1/pipelines/daily/run", Some(&t), None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{run}");
    assert_documented(&doc, "post", "/v1/pipelines/{id}/run", st, &run);
    assert!(run.get("notifications").is_none(), "only on GET: {run}");
    assert_eq!(run["trigger"], Value::Null, "present as null: {run}");
    let id = run["id"].as_str().expect("run id").to_string();
    let (st, v) = a
        .call(
            Method::GET,
            &format!("/v1/pipeline-runs/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_documented(&doc, "get", "/v1/pipeline-runs/{id}", st, &v);
    assert_eq!(v["notifications"], json!([]));
    let typed: gantry_wire::PipelineRunView = serde_json::from_value(v.clone()).expect("typed");
    assert_eq!(serde_json::to_value(&typed).expect("json"), v);
    let (st, v) = a
        .call(Method::GET, "/v1/pipeline-runs", Some(&t), None)
        .await;
    assert_documented(&doc, "get", "/v1/pipeline-runs", st, &v);
    let (st, v) = a
        .call(Method::GET, "/v1/pipelines/daily/runs", Some(&t), None)
        .await;
    assert_documented(&doc, "get", "/v1/pipelines/{id}/runs", st, &v);
    let (st, v) = a
        .call(
            Method::POST,
            &format!("/v1/pipeline-runs/{id}/cancel"),
            Some(&t),
            None,
        )
        .await;
    assert_documented(&doc, "post", "/v1/pipeline-runs/{id}/cancel", st, &v);
    // A run that asks to be notified shows its notification once it ended.
    let (st, _) = a
        .call(
            Method::POST,
            "/v1/pipelines",
            Some(&t),
            Some(json!({"id": "told", "phases": phases, "notify": [{"url": "https://example.com/n", "on": "always"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, run) = a
        .call(Method::POST, "/v1/pipelines/told/run", Some(&t), None)
        .await;
    let told = run["id"].as_str().expect("run id").to_string();
    let (st, v) = a
        .call(
            Method::POST,
            &format!("/v1/pipeline-runs/{told}/cancel"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = a
        .call(
            Method::GET,
            &format!("/v1/pipeline-runs/{told}"),
            Some(&t),
            None,
        )
        .await;
    assert_documented(&doc, "get", "/v1/pipeline-runs/{id}", st, &v);
    assert_eq!(v["status"], "cancelled", "{v}");
    assert_eq!(v["notifications"][0]["url"], "https://example.com/n", "{v}");
    assert_eq!(v["notifications"][0]["status"], "pending", "{v}");

    // Webhooks and deliveries.
    let (st, hook) = a
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&t),
            Some(json!({"config": "etl"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{hook}");
    assert_documented(&doc, "post", "/v1/webhooks", st, &hook);
    assert!(hook["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    let hid = hook["id"].as_str().expect("hook id").to_string();
    let (st, v) = a
        .call(
            Method::POST,
            &format!("/v1/webhooks/{hid}/rotate"),
            Some(&t),
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_documented(&doc, "post", "/v1/webhooks/{id}/rotate", st, &v);
    assert!(v["old_secret_valid_until"].is_string(), "{v}");
    let (st, v) = a
        .call(Method::GET, &format!("/v1/webhooks/{hid}"), Some(&t), None)
        .await;
    assert_documented(&doc, "get", "/v1/webhooks/{id}", st, &v);
    assert!(v.get("secret").is_none(), "shown once: {v}");
    let typed: gantry_wire::HookView = serde_json::from_value(v.clone()).expect("typed");
    assert_eq!(serde_json::to_value(&typed).expect("json"), v);
    let (st, v) = a.call(Method::GET, "/v1/webhooks", Some(&t), None).await;
    assert_documented(&doc, "get", "/v1/webhooks", st, &v);
    let (st, tokened) = a
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&t),
            Some(json!({"pipeline": "daily", "auth": "token"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{tokened}");
    assert!(tokened.get("secret").is_none(), "{tokened}");
    let url = tokened["url"].as_str().expect("url").to_string();
    let (st, made) = a
        .call_with(
            Method::POST,
            &url,
            Some(&t),
            Some(json!({"x": 1})),
            &[("webhook-id", "d-1")],
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{made}");
    assert_documented(&doc, "post", "/v1/hooks/{id}", st, &made);
    assert_eq!(made["delivery"], "d-1");
    assert!(
        made["pipeline_run"].is_string() && made.get("job").is_none(),
        "{made}"
    );
    let (st, again) = a
        .call_with(
            Method::POST,
            &url,
            Some(&t),
            Some(json!({"x": 1})),
            &[("webhook-id", "d-1")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_documented(&doc, "post", "/v1/hooks/{id}", st, &again);
    assert_eq!(
        again,
        json!({"pipeline_run": made["pipeline_run"], "replay": true})
    );
}

/// Token, file and worker ids are typed at the edge: the answers carry
/// them in their documented forms, and an id that cannot be one answers
/// 404 like an unknown one.
#[tokio::test]
async fn token_file_and_worker_ids_are_typed_at_the_edge() {
    let a = api().await;
    let doc = serde_json::to_value(gantry_api::openapi()).expect("json");
    let (st, list) = a
        .call(Method::GET, "/v1/tokens", Some(&a.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_documented(&doc, "get", "/v1/tokens", st, &list);
    let typed: gantry_wire::TokenList = serde_json::from_value(list.clone()).expect("typed");
    let id = typed.tokens[0].id.clone();
    assert_eq!(id.as_str().len(), gantry_core::TokenId::LEN);
    let (st, workers) = a
        .call(Method::GET, "/v1/workers", Some(&a.admin), None)
        .await;
    assert_documented(&doc, "get", "/v1/workers", st, &workers);
    for (method, uri) in [
        (Method::DELETE, "/v1/tokens/not-a-token"),
        (Method::DELETE, "/v1/tokens/0123456789ab"),
        (Method::POST, "/v1/workers/a%20b/drain"),
        (Method::POST, "/v1/workers/nobody/drain"),
        (Method::GET, "/v1/files/x"),
        (Method::GET, "/v1/files/999"),
    ] {
        let (st, body) = a.call(method.clone(), uri, Some(&a.admin), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {uri}: {body}");
        assert_eq!(code(&body), "not_found");
    }
    // An upper-case public id names the same token.
    let (st, made) = a
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&a.admin),
            Some(json!({"project": "default", "description": "ci"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_documented(&doc, "post", "/v1/tokens", st, &made);
    let upper = made["id"].as_str().expect("id").to_ascii_uppercase();
    let (st, body) = a
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{upper}"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
}

/// Every successful JSON answer in the document is a named schema (a view
/// of `gantry_wire` or of the handler), except the answers that are free
/// JSON by nature: a configuration's state and a sync action's answer, which
/// are whatever the component wrote.
#[test]
fn every_json_answer_names_its_schema() {
    let doc = serde_json::to_value(gantry_api::openapi()).expect("json");
    let free = [
        ("get", "/v1/configs/{id}/state"),
        ("post", "/v1/configs/{id}/actions/{action}"),
        ("get", "/v1/openapi.json"),
    ];
    let mut unnamed = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for (status, resp) in op["responses"].as_object().expect("responses") {
                let Some(schema) = resp["content"]["application/json"]["schema"].as_object() else {
                    continue;
                };
                let named = schema.contains_key("$ref")
                    || schema.get("type") == Some(&json!("array"))
                        && schema["items"].get("$ref").is_some();
                if status.starts_with('2')
                    && !named
                    && !free.contains(&(method.as_str(), path.as_str()))
                {
                    unnamed.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "answers without a named schema: {unnamed:#?}"
    );
}

/// The image catalogue's answers (registries, stacks, packages, what
/// workers hold, the warm list), `/readyz` and `POST /v1/runs` fit named
/// schemas exactly and read back into the wire types the CLI uses.
#[tokio::test]
async fn image_and_run_answers_fit_their_documented_schemas() {
    let a = api().await;
    let doc = serde_json::to_value(gantry_api::openapi()).expect("json");
    let t = Some(a.admin.as_str());
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
        let typed: T = serde_json::from_value(v.clone()).expect("typed");
        assert_eq!(&serde_json::to_value(&typed).expect("json"), v);
    }

    let (st, v) = a
        .call(
            Method::POST,
            "/v1/registries",
            t,
            Some(json!({"host": "127.0.0.1:5000", "username": "u", "password": "hunter2"})),
        )
        .await;
    assert_documented(&doc, "post", "/v1/registries", st, &v);
    assert!(!v.to_string().contains("hunter2"), "{v}");
    round_trip::<gantry_wire::RegistryView>(&v);
    let (st, v) = a.call(Method::GET, "/v1/registries", t, None).await;
    assert_documented(&doc, "get", "/v1/registries", st, &v);
    round_trip::<gantry_wire::RegistryList>(&v);
    assert_eq!(v["registries"][0]["host"], "127.0.0.1:5000");

    let (st, v) = a
        .call(
            Method::POST,
            "/v1/stacks",
            t,
            Some(json!({"name": "py", "image": "gantry-python:3"})),
        )
        .await;
    assert_documented(&doc, "post", "/v1/stacks", st, &v);
    round_trip::<gantry_wire::StackView>(&v);
    let (st, v) = a.call(Method::GET, "/v1/stacks", t, None).await;
    assert_documented(&doc, "get", "/v1/stacks", st, &v);
    round_trip::<gantry_wire::StackList>(&v);

    // A package: a zip holding one file.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("main.py", zip::write::SimpleFileOptions::default())
        .expect("entry");
    std::io::Write::write_all(&mut zip, b"print('hi')\n").expect("write");
    let bytes = zip.finish().expect("zip").into_inner();
    let (st, v) = a.post_bytes("/v1/packages/hello", bytes).await;
    assert_documented(&doc, "post", "/v1/packages/{name}", st, &v);
    round_trip::<gantry_wire::PackageView>(&v);
    assert_eq!(
        (v["name"].clone(), v["rev"].clone()),
        (json!("hello"), json!(1))
    );
    let (st, v) = a.call(Method::GET, "/v1/packages", t, None).await;
    assert_documented(&doc, "get", "/v1/packages", st, &v);
    round_trip::<gantry_wire::PackageList>(&v);

    // What workers hold: one record, as a worker writes it.
    a.state
        .store
        .touch_image(&gantry_store::EngineImage {
            worker_id: "w1".parse().expect("id"),
            reference: "gantry-python:3".into(),
            image_id: "sha256:00".into(),
            kind: "pulled".into(),
            size: 10,
            warm: false,
            last_used: 0,
            created_at: 0,
        })
        .await
        .expect("touch");
    let (st, v) = a.call(Method::GET, "/v1/images", t, None).await;
    assert_documented(&doc, "get", "/v1/images", st, &v);
    round_trip::<gantry_wire::ImageList>(&v);
    assert_eq!(v["images"][0]["worker"], "w1", "{v}");

    let (st, v) = a
        .call(
            Method::POST,
            "/v1/images/keep",
            t,
            Some(json!({"image": "gantry-python:3"})),
        )
        .await;
    assert_documented(&doc, "post", "/v1/images/keep", st, &v);
    let (st, v) = a.call(Method::GET, "/v1/images/keep", t, None).await;
    assert_documented(&doc, "get", "/v1/images/keep", st, &v);
    round_trip::<gantry_wire::KeptList>(&v);

    let (st, v) = a.call(Method::GET, "/readyz", None, None).await;
    assert_documented(&doc, "get", "/readyz", st, &v);
    assert_eq!(v, json!({"status": "ready", "store": "ok", "engine": null}));

    // A run of no configuration: its mapping, then one table.
    let mut body = Vec::new();
    for (path, bytes) in [
        (
            "mapping.json",
            br#"{"tables": [{"source": "t.csv", "destination": "out.c-run.t"}]}"#.to_vec(),
        ),
        ("tables/t.csv", b"id,v\n1,a\n".to_vec()),
    ] {
        body.extend((path.len() as u32).to_be_bytes());
        body.extend(path.as_bytes());
        body.extend((bytes.len() as u64).to_be_bytes());
        body.extend(bytes);
    }
    let (st, v) = a.post_bytes("/v1/runs", body).await;
    assert_documented(&doc, "post", "/v1/runs", st, &v);
    round_trip::<gantry_wire::RunCommitted>(&v);
    assert_eq!(
        v,
        json!({"tables": ["out.c-run.t"], "files": 0, "state": false, "made_by": "run"})
    );
}

/// A live log stream whose store fails says so with one `event: error` (a
/// generic message, like a 5xx) and ends, instead of ending silently as a
/// finished job's stream would.
#[tokio::test]
async fn a_live_log_stream_ends_with_an_error_event_when_the_store_fails() {
    let a = api().await;
    let job = a
        .state
        .store
        .enqueue(gantry_store::NewJob::new(
            ProjectId::default_project(),
            None,
            json!({"image": "busybox"}),
            1,
            std::time::Duration::ZERO,
        ))
        .await
        .expect("enqueue");
    // Break the store under the server: its events table goes away.
    let db = rusqlite::Connection::open(a._dir.path().join("gantry.db")).expect("open");
    db.execute_batch("DROP TABLE events").expect("drop");
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/jobs/{}/events", job.id))
        .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let resp = app(a.state.clone()).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        resp.into_body().collect(),
    )
    .await
    .expect("the stream ends")
    .expect("body")
    .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("\"code\":\"internal\""), "{text}");
    assert!(!text.contains("events"), "no store detail leaks: {text}");
    assert!(!text.contains("event: end"), "{text}");
}
