//! The OpenAPI document served at `/v1/openapi.json`.

use serde_json::{json, Value};

fn op(summary: &str, ok: &str) -> Value {
    json!({
        "summary": summary,
        "responses": {
            ok: {"description": "success"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"}
        }
    })
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}])
}

pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Gantry", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Run containers as batch jobs. Authenticate with 'Authorization: Bearer <token>'."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a job: {\"spec\": {...}} or {\"config\": \"<id>\"}",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitJob"}}}},
                    "responses": {"201": {"description": "the queued job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                                  "400": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["queued","running","succeeded","failed","cancelled","timed_out"]}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "a page of jobs with next_cursor"}}
                }
            },
            "/v1/jobs/batch": {"post": {
                "summary": "Queue 1-1000 jobs in one request and one commit: all or none (a 400 names jobs[i])",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["jobs"], "additionalProperties": false,
                    "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/SubmitJob"}}}}}}},
                "responses": {"201": {"description": "the queued jobs' ids", "content": {"application/json": {"schema": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}}}}}},
                              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                              "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/jobs/{id}": {"get": {
                "summary": "A job; with ?wait=30s, answers when it ends (long-poll, at most 60s)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "wait", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                              "404": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/jobs/{id}/events": {"get": {
                "summary": "A job's events. JSON list; with 'Accept: text/event-stream', follows live and ends with 'event: end'",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "after", "in": "query", "schema": {"type": "integer"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "events", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}, "text/event-stream": {}}}}
            }},
            "/v1/jobs/{id}/cancel": {"post": {"summary": "Cancel a job", "parameters": id_param(), "responses": {"200": {"description": "the job"}}}},
            "/v1/configs": {
                "get": op("List configurations", "200"),
                "post": {"summary": "Create a configuration {\"id\": ..., \"spec\": {...}}",
                         "requestBody": {"required": true, "content": {"application/json": {}}},
                         "responses": {"201": {"description": "created"}, "409": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/configs/{id}": {
                "get": {"summary": "A configuration", "parameters": id_param(), "responses": {"200": {"description": "the configuration"}}},
                "put": {"summary": "Replace a configuration's spec {\"spec\": {...}}", "parameters": id_param(), "responses": {"200": {"description": "updated"}}},
                "delete": {"summary": "Delete a configuration", "parameters": id_param(), "responses": {"204": {"description": "deleted"}}}
            },
            "/v1/configs/{id}/actions/{action}": {"post": {"summary": "Run a Keboola sync action of the configuration at once (action in config.json, no Storage mapping, 30 s at most); answers the container's stdout as JSON, 400 when it exits 1 (its message), 503 without an engine", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "action", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "the action's JSON"}, "400": {"description": "the action failed (exit 1) or a bad name"}, "503": {"description": "no engine"}}}},
            "/v1/configs/{id}/state": {"get": {"summary": "The state saved by the configuration's last successful job", "parameters": id_param(), "responses": {"200": {"description": "state"}}}},
            "/v1/tables": {"get": op("List tables", "200"), "post": op("Create an empty table {\"id\", \"columns\", \"primary_key\"}", "201")},
            "/v1/tables/{id}": {"get": op("A table: columns, primary key, current version", "200"), "delete": op("Delete a table and its versions", "204")},
            "/v1/tables/{id}/compact": {"post": op("Rewrite the current version into one segment (a new version made by compact, same rows); 200 when it is one segment already", "201")},
            "/v1/tables/{id}/versions/{version}/pin": {"post": op("Pin a version: retention never removes it", "200"), "delete": op("Unpin a version", "200")},
            "/v1/tables/{id}/import": {"post": op("Load a CSV body (text/csv, streamed) as a new version; ?incremental=&primary_key=&delimiter=&enclosure=&gzip=", "201")},
            "/v1/tables/{id}/export": {"get": op("The table (or ?version=N) as CSV; an input mapping's ?columns=&where_column=&where_values=&where_operator=&changed_since=&limit=", "200")},
            "/v1/runs": {"post": op("What `gantry run --commit` produced (framed out/ entries; ?config=&row=), stored as a job's outputs and state", "201")},
            "/v1/tables/{id}/versions": {"get": op("A table's versions, newest first", "200")},
            "/v1/tables/{id}/restore": {"post": op("Make ?version=N the newest version again", "201")},
            "/v1/files": {"get": op("List files; ?tag= (all listed tags) &limit=", "200"), "post": op("Upload a raw body; ?name=&tag=", "201")},
            "/v1/files/{id}": {"get": op("A file's metadata", "200")},
            "/v1/files/{id}/content": {"get": op("A file's content", "200")},
            "/v1/projects": {"get": op("List projects (admin token)", "200"), "post": op("Create a project {\"id\", \"allow\": [\"root-user\"|\"bridge-network\"|\"writable-root\"]} (admin token)", "201")},
            "/v1/projects/{id}": {"get": op("A project (its own token, or an admin token)", "200"), "patch": op("Change a project's policy {\"allow\": [...], \"import_max_bytes\": N, \"retention\": {\"jobs_days\", \"versions\", \"versions_days\", \"files_days\"}, \"max_running\": N (0: no cap)} (admin token)", "200")},
            "/v1/tokens": {"get": op("List tokens, never their secrets; ?project= (admin token)", "200"), "post": op("Create a token {\"project\", \"description\", \"admin\"}; the secret is in this response only (admin token)", "201")},
            "/v1/tokens/{id}": {"delete": op("Revoke a token (admin token)", "204")},
            "/v1/schedules": {"get": op("List schedules", "200"), "post": op("Create a schedule {\"id\", \"config\", \"cron\" (5 or 6 fields, or @hourly...) or \"every\" (\"30s\"), \"timezone\" (IANA, default UTC), \"start_at\", \"end_at\", \"max_runs\", \"missed\": latest|skip, \"overlap\": skip|queue|allow}; 400 names a bad field", "201")},
            "/v1/schedules/{id}": {"get": op("A schedule: status, the next 5 fire times, the latest ticks and what came of them", "200"), "delete": op("Delete a schedule", "204")},
            "/v1/schedules/{id}/pause": {"post": op("Pause a schedule", "200")},
            "/v1/pipelines": {"get": op("List pipelines", "200"), "post": op("Create a pipeline {\"id\", \"notify\": [{\"url\", \"on\", \"#secret\"}], \"phases\": [{\"name\", \"tasks\": [{\"config\", \"parameters\", \"continue_on_failure\"}]}]}; 400 names a bad field (an empty phase, a configuration not in the project)", "201")},
            "/v1/pipelines/{id}": {"get": op("A pipeline", "200"), "put": op("Replace a pipeline's phases {\"phases\": [...]}", "200"), "delete": op("Delete a pipeline", "204")},
            "/v1/pipelines/{id}/run": {"post": op("Start a run: the first phase's tasks are queued at once", "201")},
            "/v1/pipelines/{id}/runs": {"get": op("A pipeline's runs, newest first", "200")},
            "/v1/pipeline-runs": {"get": op("All pipeline runs, newest first", "200")},
            "/v1/pipeline-runs/{id}": {"get": op("A run: status (queued, running, succeeded, warning, failed, cancelled), phase, tasks with their jobs, timings", "200")},
            "/v1/pipeline-runs/{id}/cancel": {"post": op("Cancel a run and its jobs", "200")},
            "/v1/webhooks": {"get": op("List inbound webhooks", "200"), "post": op("Create an inbound webhook {\"config\" | \"pipeline\", \"auth\": signature|token, \"max_body\", \"rate_limit\"}; the secret is in this response only", "201")},
            "/v1/webhooks/{id}": {"get": op("An inbound webhook (never its secret)", "200"), "delete": op("Delete an inbound webhook", "204")},
            "/v1/webhooks/{id}/rotate": {"post": op("New secret (in this response only); the old one stays valid for {\"grace\": \"24h\"}", "200")},
            "/v1/hooks/{id}": {"post": {"summary": "Trigger URL: runs the hook's configuration. Signed with Standard Webhooks (webhook-id, webhook-timestamp within 5 minutes, webhook-signature v1,<base64 HMAC-SHA256 of id.timestamp.body>) or X-Hub-Signature-256, or a bearer token for auth=token hooks. 202 {job}; a replayed delivery id 200 {job, replay: true}; 401 bad signature; 413 over max_body; 429 with Retry-After", "security": [], "responses": {"202": {"description": "job made"}, "200": {"description": "replay: the job made before"}, "401": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "429": {"$ref": "#/components/responses/Error"}}}},
            "/v1/schedules/{id}/resume": {"post": op("Resume a schedule from now (the paused time is not caught up)", "200")},
            "/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI"}}}},
            "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Store writable and container engine reachable", "security": [], "responses": {"200": {"description": "ready"}, "503": {"$ref": "#/components/responses/Error"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (admin token)", "responses": {"200": {"description": "Prometheus text exposition format 0.0.4"}, "401": {"description": "no or bad token"}, "403": {"description": "not an admin token"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "SubmitJob": {"type": "object", "properties": {"spec": {"type": "object"}, "config": {"type": "string"}, "priority": {"type": "integer", "minimum": 0, "maximum": 2}, "delay": {"type": "string"}, "run_after": {"type": "string", "format": "date-time"}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"}, "project": {"type": "string"}, "config": {"type": "string"},
                    "status": {"type": "string"}, "error": {"type": "object", "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}},
                    "exit_code": {"type": "integer"}, "attempt": {"type": "integer"}, "max_attempts": {"type": "integer"},
                    "worker": {"type": "string"}, "image_digest": {"type": "string"}, "limits": {"type": "object"},
                    "queued_at": {"type": "string"}, "started_at": {"type": "string"}, "finished_at": {"type": "string"},
                    "spec": {"type": "object"}, "attempts": {"type": "array", "items": {"type": "object"}},
                    "priority": {"type": "integer"}, "run_after": {"type": "string"}, "concurrency": {"type": "object"},
                    "waiting": {"type": "string", "description": "why a queued job is held back"},
                    "trigger": {"type": "object", "description": "{kind: schedule, id, tick} | {kind: webhook, id, delivery} | {kind: pipeline, run, phase, task}"},
                    "notifications": {"type": "array", "description": "outbound notifications of its end (spec.notify), each with every delivery attempt", "items": {"type": "object"}}
                }},
                "Event": {"type": "object", "properties": {
                    "seq": {"type": "integer"}, "attempt": {"type": "integer"}, "time": {"type": "string"},
                    "stream": {"type": "string", "enum": ["stdout", "stderr", "system"]}, "level": {"type": "string"},
                    "message": {"type": "string"}, "data": {"type": "object"}
                }}
            }
        }
    })
}
