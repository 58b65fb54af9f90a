//! The API client used by `gantry jobs` and `gantry configs`.

use crate::home::Home;
use crate::Global;
use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An error answered by the server (its stable code and message).
#[derive(Debug)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiFailure {}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(g: &Global) -> anyhow::Result<Self> {
        let token = match &g.token {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(Home::new(&g.home).token())
                .ok()
                .map(|t| t.trim().to_string()),
        };
        // Reading the machine's root certificates costs a few milliseconds
        // of every command; a plain http:// server needs none.
        let https = g.server.starts_with("https://");
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .tls_built_in_root_certs(https)
            .build()?;
        Ok(Self {
            http,
            base: g.server.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if !status.is_success() {
            return Err(self.failure(resp).await);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    /// The server's error answer, as an error naming its code and message.
    async fn failure(&self, resp: reqwest::Response) -> anyhow::Error {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or("error")
            .to_string();
        let mut message = body["error"]["message"]
            .as_str()
            .unwrap_or("the server answered with an error")
            .to_string();
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            message.push_str(
                " (no token: pass --token, set GANTRY_TOKEN, or point --home at the server's home)",
            );
        }
        ApiFailure { code, message }.into()
    }

    /// Names the URL, the underlying cause (refused, timed out, no such
    /// host) and how to get a server there.
    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let why = if e.is_timeout() {
            "timed out".to_string()
        } else {
            cause.to_string()
        };
        anyhow!(
            "cannot reach Gantry at {} ({why}). Start one there with `gantry up` (API and worker on \
             this machine) or `gantry server`, or point --server / GANTRY_URL at a running server",
            self.base
        )
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    /// GET into a wire type (`gantry_wire`): the answer read as the type
    /// the server wrote it from.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        typed(self.get(path).await?)
    }

    /// POST, the answer read into a wire type.
    pub async fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        typed(self.post(path, body).await?)
    }

    /// PUT, the answer read into a wire type.
    pub async fn put_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        typed(self.put(path, body).await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// POSTs a streamed body (a CSV or file being uploaded).
    pub async fn post_stream(&self, path: &str, body: reqwest::Body) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).body(body)).await
    }

    /// GETs a response to stream (exports, downloads); API errors are errors.
    pub async fn get_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .request(Method::GET, path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.failure(resp).await)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Follows a job's events as server-sent events, calling `on_event` with
    /// each (`log` or `end`, JSON data). Returns when the stream ends.
    pub async fn follow_events(
        &self,
        id: &str,
        after: u64,
        mut on_event: impl FnMut(&str, Value),
    ) -> anyhow::Result<()> {
        let req = self
            .request(Method::GET, &format!("/v1/jobs/{id}/events?after={after}"))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(resp).await);
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.context("the event stream broke")?);
            // Events end with a blank line.
            while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..pos + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = "message".to_string();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                let end = event == "end";
                on_event(&event, value);
                if end {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).context("the server's answer is not what this gantry expects")
}
