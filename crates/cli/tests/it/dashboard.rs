//! The web dashboard over real HTTP (no browser): sign-in and its cookie,
//! CSRF and cross-origin refusal on every POST, project scoping (another
//! project's objects are 404), secrets shown as `[hidden]`, everything a job
//! or a user wrote HTML-escaped, and the cookie-authenticated log stream.
//! Schedules, pipelines, pipeline runs and the trigger filters of the jobs
//! page are covered the same way. The browser tests are in `browser.rs`.

use crate::util::*;
use serde_json::{json, Value};

/// A browser-like client: no redirects followed, cookies by hand.
pub struct Ui {
    pub http: reqwest::Client,
    pub url: String,
    pub cookie: Option<String>,
    pub csrf: String,
}

impl Ui {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            url: url.to_string(),
            cookie: None,
            csrf: String::new(),
        }
    }

    /// Signs in; returns the response's status and `Set-Cookie`.
    pub async fn login(&mut self, token: &str) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}/ui/login", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}&next=%2Fui%2Fjobs", urlenc(token)))
            .send()
            .await
            .expect("login");
        let status = resp.status().as_u16();
        let set = resp
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        if status == 303 {
            self.cookie = set.split(';').next().map(str::to_string);
            let (_, page) = self.get("/ui/jobs").await;
            self.csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
            assert_eq!(self.csrf.len(), 64, "{page}");
        }
        (status, set)
    }

    fn with_cookie(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => r.header("cookie", c),
            None => r,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .with_cookie(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    pub async fn get_resp(&self, path: &str) -> reqwest::Response {
        self.with_cookie(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("get")
    }

    /// Posts a form (with this session's CSRF token unless `csrf` is given).
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> (u16, String, String) {
        let mut body = format!("csrf={}", urlenc(csrf.unwrap_or(&self.csrf)));
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", urlenc(v)));
        }
        let mut r = self
            .with_cookie(self.http.post(format!("{}{path}", self.url)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let resp = r.send().await.expect("post");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        (status, location, resp.text().await.expect("body"))
    }
}

pub fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).map(|i| i + start.len()).unwrap_or(s.len());
    let rest = &s[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_sign_in_csrf_scoping_secrets_and_escaping() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut ui = Ui::new(&g.url);

    // `/` leads to the jobs page; without a session, to the sign-in page.
    let resp = ui.get_resp("/").await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/ui/jobs");
    let resp = ui.get_resp("/ui/jobs?status=failed").await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/ui/login?next=%2Fui%2Fjobs%3Fstatus%3Dfailed"
    );
    let (s, page) = ui.get("/ui/login").await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"token\""), "{page}");
    // The event stream is no way around the session either.
    let (s, _, _) = ui.post("/ui/jobs/x/cancel", &[], Some("x"), None).await;
    assert_eq!(s, 401);

    // A wrong token is refused; the right one gets a strict, HttpOnly cookie.
    let (s, set) = ui.login("gty_not_a_token").await;
    assert_eq!((s, set.as_str()), (401, ""));
    let (s, set) = ui.login(&g.token).await;
    assert_eq!(s, 303, "{set}");
    assert!(set.starts_with("gantry_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let resp = ui.get_resp("/ui/jobs").await;
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");

    // A job whose spec and output carry markup and a secret.
    let mut spec = sh("echo '<script>alert(\"out\")</script>'; echo done; \
                       printf 'a\\n1\\n' > /data/out/tables/result.csv; \
                       echo hi > /data/out/files/made.txt");
    spec["parameters"] = json!({"#password": "hunter2", "note": "<img src=x onerror=alert(1)>"});
    spec["storage"] = json!({"output": {
        "tables": [{"source": "result.csv", "destination": "out.c-main.result"}],
        "files": [{"source": "made.txt", "tags": ["made"]}]
    }});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id");
    let (s, page) = ui.get(&format!("/ui/jobs/{id}")).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("&lt;script&gt;alert("), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(page.contains("[hidden]"), "{page}");
    assert!(
        !page.contains("hunter2") && !page.contains("gantry:enc:"),
        "{page}"
    );
    // Its outputs link to the table version and the file it made.
    assert!(
        page.contains("href=\"/ui/tables/out.c-main.result/versions/1\""),
        "{page}"
    );
    assert!(page.contains("made.txt"), "{page}");
    assert!(page.contains("Effective limits"), "{page}");
    let (s, list) = ui.get("/ui/jobs?status=succeeded").await;
    assert_eq!(s, 200);
    assert!(list.contains(id), "{list}");
    let (_, list) = ui.get("/ui/jobs?status=failed").await;
    assert!(!list.contains(id), "{list}");

    // The cookie-authenticated log stream is the API's: log events, then end.
    let resp = ui.get_resp(&format!("/ui/jobs/{id}/events")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));
    let body = resp.text().await.expect("stream ends with the job");
    assert!(body.contains("event: log"), "{body}");
    assert!(
        body.contains("<script>alert"),
        "the raw line, as JSON: {body}"
    );
    assert!(body.contains("event: end"), "{body}");

    // Every POST needs the session's CSRF token, and no foreign Origin.
    let running = api.submit(sh("echo up; sleep 300")).await;
    api.wait_status(&running, "running").await;
    let cancel = format!("/ui/jobs/{running}/cancel");
    let (s, _, page) = ui.post(&cancel, &[], Some(""), None).await;
    assert_eq!(s, 403, "{page}");
    let (s, _, _) = ui.post(&cancel, &[], Some(&"0".repeat(64)), None).await;
    assert_eq!(s, 403);
    let (s, _, _) = ui
        .post(&cancel, &[], None, Some("http://evil.example"))
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        api.get(&format!("/v1/jobs/{running}")).await.1["cancel_requested"],
        false
    );
    let (s, loc, _) = ui.post(&cancel, &[], None, Some(&g.url)).await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("/ui/jobs/{running}").as_str())
    );
    assert_eq!(api.wait(&running).await["status"], "cancelled");

    // Re-run submits the same spec (its secret still sealed) as a new job.
    let (s, loc, _) = ui
        .post(&format!("/ui/jobs/{id}/rerun"), &[], None, None)
        .await;
    assert_eq!(s, 303);
    let again = loc.strip_prefix("/ui/jobs/").expect("job page").to_string();
    assert_ne!(again, id);
    let rerun = api.wait(&again).await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(
        api.messages(&again, "stdout").await,
        vec!["<script>alert(\"out\")</script>", "done"]
    );

    // Objects of this project, for the scoping checks below.
    assert_eq!(
        api.post(
            "/v1/configs",
            json!({"id": "nightly", "spec": sh("echo nightly")})
        )
        .await
        .0,
        201
    );
    let (s, _) = api
        .import("in.c-main.people", "", "id,name\n1,<b>alice</b>\n")
        .await;
    assert_eq!(s, 201);
    let (s, page) = ui.get("/ui/tables/in.c-main.people/versions/1").await;
    assert_eq!(s, 200);
    assert!(page.contains("&lt;b&gt;alice&lt;&#x2f;b&gt;"), "{page}");
    let resp = api
        .req(reqwest::Method::POST, "/v1/files?name=r.txt&tag=t1")
        .body("report")
        .send()
        .await
        .expect("upload");
    let file: Value = resp.json().await.expect("file");
    let file_id = file["id"].to_string();
    let (s, page) = ui.get("/ui/files?tag=t1").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("r.txt"), "{page}");
    let resp = ui.get_resp(&format!("/ui/files/{file_id}/download")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .expect("cd")
        .starts_with("attachment"));
    assert_eq!(resp.text().await.expect("file"), "report");
    // The configuration page runs it.
    let (s, loc, _) = ui.post("/ui/configs/nightly/run", &[], None, None).await;
    assert_eq!(s, 303);
    let run = loc.strip_prefix("/ui/jobs/").expect("job page").to_string();
    assert_eq!(api.wait(&run).await["config"], "nightly");
    let (_, page) = ui.get("/ui/configs/nightly").await;
    assert!(page.contains(&run), "{page}");
    let (_, page) = ui.get("/ui/jobs?config=nightly").await;
    assert!(page.contains(&run) && !page.contains(id), "{page}");

    // Another project's token sees none of it: every object is 404.
    let o = g.cli(&["projects", "create", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = g.cli(&["tokens", "create", "--project", "acme", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acme_token = serde_json::from_str::<Value>(&stdout(&o)).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut acme = Ui::new(&g.url);
    assert_eq!(acme.login(&acme_token).await.0, 303);
    assert_ne!(acme.csrf, ui.csrf);
    for path in [
        format!("/ui/jobs/{id}"),
        format!("/ui/jobs/{id}/events"),
        "/ui/configs/nightly".to_string(),
        "/ui/tables/in.c-main.people".to_string(),
        "/ui/tables/in.c-main.people/versions/1".to_string(),
        format!("/ui/files/{file_id}/download"),
        "/ui/projects".to_string(),
        "/ui/tokens".to_string(),
    ] {
        let (s, page) = acme.get(&path).await;
        assert_eq!(s, 404, "{path}: {page}");
        assert!(
            !page.contains("alice") && !page.contains("echo nightly"),
            "{page}"
        );
    }
    let (_, list) = acme.get("/ui/jobs").await;
    assert!(!list.contains(id), "{list}");
    let (_, list) = acme.get("/ui/files").await;
    assert!(!list.contains("r.txt"), "{list}");
    for path in [
        format!("/ui/jobs/{id}/cancel"),
        format!("/ui/jobs/{id}/rerun"),
        "/ui/configs/nightly/run".to_string(),
    ] {
        let (s, _, _) = acme.post(&path, &[], None, None).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, _, _) = acme
        .post(
            "/ui/tables/in.c-main.people/restore",
            &[("version", "1")],
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    // The other session's CSRF token is no good here.
    let (s, _, _) = acme
        .post(&format!("/ui/jobs/{id}/cancel"), &[], Some(&ui.csrf), None)
        .await;
    assert_eq!(s, 403);

    // The admin makes a token in the dashboard; its secret shows once.
    let (s, _, page) = ui
        .post(
            "/ui/tokens",
            &[("project", "acme"), ("description", "<i>ops</i>")],
            None,
            None,
        )
        .await;
    assert_eq!(s, 201, "{page}");
    let secret = between(&page, "<pre id=\"secret\">", "</pre>").to_string();
    assert!(secret.starts_with("gty_"), "{page}");
    assert!(page.contains("&lt;i&gt;ops&lt;&#x2f;i&gt;"), "{page}");
    let (_, page) = ui.get("/ui/tokens").await;
    assert!(!page.contains(&secret), "the secret shows once only");
    let mut ops = Ui::new(&g.url);
    assert_eq!(ops.login(&secret).await.0, 303);
    // Revoking it in the dashboard ends its session.
    let (_, tokens) = ui.get("/ui/tokens").await;
    let ops_row = tokens
        .split("<tr>")
        .find(|r| r.contains("&lt;i&gt;ops"))
        .expect("the ops token's row");
    let ops_id = between(ops_row, "<td><code>", "</code>").to_string();
    let (s, loc, _) = ui
        .post(&format!("/ui/tokens/{ops_id}/revoke"), &[], None, None)
        .await;
    assert_eq!((s, loc.as_str()), (303, "/ui/tokens"));
    assert_eq!(
        ops.get("/ui/jobs").await.0,
        303,
        "a revoked token's session ends"
    );
    // Projects: one made here, and a bad name refused with its reason.
    let (s, _, _) = ui.post("/ui/projects", &[("id", "beta")], None, None).await;
    assert_eq!(s, 303);
    let (s, _, page) = ui
        .post("/ui/projects", &[("id", "Bad Name!")], None, None)
        .await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("id=\"error\""), "{page}");
    let (_, page) = ui.get("/ui/projects").await;
    assert!(page.contains("<td>beta</td>"), "{page}");

    // Signing out clears the cookie.
    let (s, loc, _) = ui.post("/ui/logout", &[], None, None).await;
    assert_eq!((s, loc.as_str()), (303, "/ui/login"));
}

/// Paging of the jobs page, alone and filtered by configuration (which the
/// page fills by reading batches from the store). No worker: jobs stay queued.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_jobs_pages_and_filters_by_configuration() {
    let g = Gantry::server_only();
    let api = g.client();
    assert_eq!(
        api.post("/v1/configs", json!({"id": "c", "spec": sh("true")}))
            .await
            .0,
        201
    );
    let mut of_c = Vec::new();
    let mut all = Vec::new();
    for i in 0..60 {
        let id = if i % 2 == 0 {
            let (s, job) = api.post("/v1/jobs", json!({"config": "c"})).await;
            assert_eq!(s, 201, "{job}");
            let id = job["id"].as_str().expect("id").to_string();
            of_c.push(id.clone());
            id
        } else {
            api.submit(sh("true")).await
        };
        all.push(id);
    }
    let mut ui = Ui::new(&g.url);
    assert_eq!(ui.login(&g.token).await.0, 303);
    let ids = |page: &str| -> Vec<String> {
        page.split("<tr class=\"job\" data-id=\"")
            .skip(1)
            .map(|r| r[..r.find('"').expect("id end")].to_string())
            .collect()
    };
    let older = |page: &str| -> Option<String> {
        page.find("id=\"older\" href=\"").map(|_| {
            between(page, "id=\"older\" href=\"", "\"")
                .replace("&amp;", "&")
                .replace("&#x2f;", "/")
        })
    };
    // Every job, newest first, 25 a page.
    let mut seen = Vec::new();
    let mut path = "/ui/jobs?status=queued".to_string();
    loop {
        let (s, page) = ui.get(&path).await;
        assert_eq!(s, 200, "{page}");
        let got = ids(&page);
        assert!(got.len() <= 25);
        seen.extend(got);
        match older(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    let newest_first: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    // Only configuration c's jobs, in pages of 25.
    let (_, page) = ui.get("/ui/jobs?config=c").await;
    let first = ids(&page);
    assert_eq!(first.len(), 25);
    let next = older(&page).expect("an older page");
    let (_, page) = ui.get(&next).await;
    let mut got = first;
    got.extend(ids(&page));
    assert_eq!(got, of_c.iter().rev().cloned().collect::<Vec<_>>());
    // A status no job has.
    let (_, page) = ui.get("/ui/jobs?config=c&status=failed").await;
    assert!(ids(&page).is_empty() && page.contains("match these filters"));
    let (s, _) = ui.get("/ui/jobs?status=bogus").await;
    assert_eq!(s, 400);
}

/// Waits (bounded) until `check` holds for the API's answer at `path`.
async fn wait_for(api: &Api, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (s, body) = api.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        if check(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never got there: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Schedules (list, next fire times, ticks and the jobs they made, pause and
/// resume), pipelines (phases, run button), a pipeline run's phase view and
/// cancel, the trigger and run filters of the jobs page; CSRF on each new
/// form, another project's objects 404, markup in a task's parameters and in
/// an id escaped. No worker: jobs stay queued.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_schedules_pipelines_runs_and_trigger_filters() {
    let g = Gantry::server_only();
    let api = g.client();
    for id in ["c", "d"] {
        let (s, body) = api
            .post("/v1/configs", json!({"id": id, "spec": sh("true")}))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, body) = api
        .post(
            "/v1/pipelines",
            json!({"id": "etl", "phases": [
                {"name": "extract", "tasks": [{"config": "c", "parameters": {
                    "note": "<img src=x onerror=alert(1)>", "#secret": "hunter2"}}]},
                {"name": "load", "tasks": [{"config": "d", "continue_on_failure": true}]},
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = api
        .post(
            "/v1/schedules",
            json!({"id": "often", "config": "c", "every": "2s", "overlap": "allow"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, nightly) = api
        .post(
            "/v1/schedules",
            json!({"id": "nightly", "pipeline": "etl", "cron": "30 3 * * *",
                   "timezone": "Europe/Prague"}),
        )
        .await;
    assert_eq!(s, 201, "{nightly}");
    let direct = api.submit(sh("true")).await;

    let mut ui = Ui::new(&g.url);
    assert_eq!(ui.login(&g.token).await.0, 303);
    let (s, page) = ui.get("/ui/jobs").await;
    assert_eq!(s, 200);
    for link in ["href=\"/ui/schedules\"", "href=\"/ui/pipelines\""] {
        assert!(page.contains(link), "{link}: {page}");
    }

    // The list: target, cron or interval, time zone, status, next fire time.
    let (s, page) = ui.get("/ui/schedules").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("data-id=\"often\""), "{page}");
    assert!(page.contains("every 2s"), "{page}");
    assert!(page.contains("<code>30 3 * * *</code>"), "{page}");
    assert!(page.contains("Europe&#x2f;Prague"), "{page}");
    assert!(
        page.contains("pipeline <a href=\"/ui/pipelines/etl\">etl</a>"),
        "{page}"
    );
    // A schedule's page: the API's own five next fire times.
    let (s, page) = ui.get("/ui/schedules/nightly").await;
    assert_eq!(s, 200, "{page}");
    let next = nightly["next"].as_array().expect("next");
    assert_eq!(next.len(), 5);
    for t in next {
        let t = t.as_str().expect("time").replace('/', "&#x2f;");
        assert!(page.contains(&t), "{t}: {page}");
    }
    assert!(page.contains("id=\"pause\""), "{page}");

    // Its ticks and the jobs they made.
    let often = wait_for(&api, "/v1/schedules/often", |v| {
        v["recent"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t["job"].is_string()))
    })
    .await;
    let scheduled = often["recent"]
        .as_array()
        .and_then(|r| r.iter().find_map(|t| t["job"].as_str()))
        .expect("a job")
        .to_string();
    let (_, page) = ui.get("/ui/schedules/often").await;
    assert!(
        page.contains(&format!("href=\"/ui/jobs/{scheduled}\"")),
        "{page}"
    );
    assert!(
        page.contains(&format!("<tr class=\"job\" data-id=\"{scheduled}\"")),
        "{page}"
    );

    // Pause and resume are CSRF-checked forms.
    let (s, _, _) = ui
        .post(
            "/ui/schedules/often/pause",
            &[],
            Some(&"0".repeat(64)),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = ui
        .post(
            "/ui/schedules/often/pause",
            &[],
            None,
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(api.get("/v1/schedules/often").await.1["status"], "active");
    let (s, loc, _) = ui.post("/ui/schedules/often/pause", &[], None, None).await;
    assert_eq!((s, loc.as_str()), (303, "/ui/schedules/often"));
    assert_eq!(api.get("/v1/schedules/often").await.1["status"], "paused");
    let (_, page) = ui.get("/ui/schedules/often").await;
    assert!(
        page.contains("id=\"resume\"") && page.contains(">paused<"),
        "{page}"
    );
    let (s, _, _) = ui.post("/ui/schedules/often/resume", &[], None, None).await;
    assert_eq!(s, 303);
    assert_eq!(api.get("/v1/schedules/often").await.1["status"], "active");
    let (s, _, _) = ui.post("/ui/schedules/often/pause", &[], None, None).await;
    assert_eq!(s, 303);

    // Pipelines: phases and tasks, a parameter's markup escaped, its secret hidden.
    let (s, page) = ui.get("/ui/pipelines").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("data-id=\"etl\""), "{page}");
    let (s, page) = ui.get("/ui/pipelines/etl").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("extract") && page.contains("load"), "{page}");
    assert!(page.contains("continue on failure"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("[hidden]") && !page.contains("hunter2"),
        "{page}"
    );
    assert!(!page.contains("gantry:enc:"), "{page}");
    // The run button (CSRF-checked) starts a run and shows its page.
    let (s, _, _) = ui.post("/ui/pipelines/etl/run", &[], Some(""), None).await;
    assert_eq!(s, 403);
    assert_eq!(
        api.get("/v1/pipelines/etl/runs").await.1["runs"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let (s, loc, _) = ui.post("/ui/pipelines/etl/run", &[], None, None).await;
    assert_eq!(s, 303, "{loc}");
    let run = loc
        .strip_prefix("/ui/pipeline-runs/")
        .expect("run page")
        .to_string();
    let shown = wait_for(&api, &format!("/v1/pipeline-runs/{run}"), |r| {
        r["tasks"][0]["job"].is_string()
    })
    .await;
    let task_job = shown["tasks"][0]["job"].as_str().expect("job").to_string();
    let (s, page) = ui.get(&loc).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"run-status\""), "{page}");
    assert!(
        page.contains("<b>extract</b>") && page.contains("<b>load</b>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/ui/jobs/{task_job}\"")),
        "{page}"
    );
    assert!(page.contains("id=\"cancel\""), "{page}");
    let (_, page) = ui.get("/ui/pipelines/etl").await;
    assert!(page.contains(&format!("data-id=\"{run}\"")), "{page}");

    // The jobs page filters by trigger and by pipeline run.
    let (_, page) = ui.get("/ui/jobs?trigger=direct").await;
    assert!(page.contains(&direct), "{page}");
    assert!(
        !page.contains(&scheduled) && !page.contains(&task_job),
        "{page}"
    );
    let (_, page) = ui.get("/ui/jobs?trigger=schedule").await;
    assert!(page.contains(&scheduled), "{page}");
    assert!(
        !page.contains(&direct) && !page.contains(&task_job),
        "{page}"
    );
    let (_, page) = ui.get("/ui/jobs?trigger=pipeline").await;
    assert!(
        page.contains(&task_job) && !page.contains(&direct),
        "{page}"
    );
    let (_, page) = ui.get(&format!("/ui/jobs?run={run}&config=c")).await;
    assert!(page.contains(&format!("data-id=\"{task_job}\"")), "{page}");
    assert!(
        !page.contains(&direct) && !page.contains(&scheduled),
        "{page}"
    );
    assert!(
        page.contains("selected>c<") || page.contains(" selected>c"),
        "{page}"
    );
    let (_, page) = ui.get("/ui/jobs?trigger=webhook").await;
    assert!(page.contains("match these filters"), "{page}");
    let (s, _) = ui.get("/ui/jobs?trigger=bogus").await;
    assert_eq!(s, 400);

    // Another project: every schedule, pipeline and run is 404, the forms too.
    let o = g.cli(&["projects", "create", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = g.cli(&["tokens", "create", "--project", "acme", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acme_token = serde_json::from_str::<Value>(&stdout(&o)).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut acme = Ui::new(&g.url);
    assert_eq!(acme.login(&acme_token).await.0, 303);
    for path in [
        "/ui/schedules/often".to_string(),
        "/ui/pipelines/etl".to_string(),
        format!("/ui/pipeline-runs/{run}"),
    ] {
        let (s, page) = acme.get(&path).await;
        assert_eq!(s, 404, "{path}: {page}");
    }
    for path in [
        "/ui/schedules/often/resume".to_string(),
        "/ui/pipelines/etl/run".to_string(),
        format!("/ui/pipeline-runs/{run}/cancel"),
    ] {
        let (s, _, page) = acme.post(&path, &[], None, None).await;
        assert_eq!(s, 404, "{path}: {page}");
    }
    assert_eq!(api.get("/v1/schedules/often").await.1["status"], "paused");
    let (_, page) = acme.get("/ui/schedules").await;
    assert!(
        !page.contains("often") && !page.contains("nightly"),
        "{page}"
    );
    let (_, page) = acme.get("/ui/pipelines").await;
    assert!(!page.contains("etl") && !page.contains(&run), "{page}");
    let (_, page) = acme.get(&format!("/ui/jobs?run={run}")).await;
    assert!(!page.contains(&task_job), "{page}");

    // An id with markup is escaped in the 404 page.
    for path in [
        "/ui/schedules/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/ui/pipelines/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/ui/pipeline-runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        let (s, page) = ui.get(path).await;
        assert_eq!(s, 404, "{path}: {page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }
    let (s, page) = ui
        .get("/ui/jobs?run=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(s, 200);
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)"), "{page}");

    // Cancel, CSRF-checked: the run ends cancelled.
    let cancel = format!("/ui/pipeline-runs/{run}/cancel");
    let (s, _, _) = ui.post(&cancel, &[], Some(""), None).await;
    assert_eq!(s, 403);
    let (s, loc2, _) = ui.post(&cancel, &[], None, None).await;
    assert_eq!((s, loc2.as_str()), (303, loc.as_str()));
    let ended = wait_for(&api, &format!("/v1/pipeline-runs/{run}"), |r| {
        r["status"] == "cancelled"
    })
    .await;
    assert_eq!(ended["cancel_requested"], true, "{ended}");
    let (_, page) = ui.get(&loc).await;
    assert!(
        page.contains(">cancelled<") && !page.contains("id=\"cancel\""),
        "{page}"
    );
}
