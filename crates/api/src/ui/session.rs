//! Dashboard sessions: the API token in a cookie, a CSRF token per session,
//! and the form extractor that checks both on every POST.

use super::{render, UiError};
use crate::state::AppState;
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gantry_store::Principal;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "gantry_session";
/// A form is small (a token, a version number, a description).
const MAX_FORM: usize = 16 * 1024;

/// A signed-in user: the token's principal and the session's CSRF token.
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
}

impl Session {
    /// What every page's layout needs.
    pub fn ctx(&self) -> minijinja::Value {
        minijinja::context! {
            project => self.principal.project.as_str(),
            admin => self.principal.admin,
            csrf => self.csrf.clone(),
        }
    }
}

/// The CSRF token: a hash of the session's secret under a fixed label. A
/// page from another origin cannot read it (no CORS, `SameSite=Strict`), nor
/// compute it without the secret.
fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"gantry-ui-csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| {
            form_urlencoded::parse(format!("t={v}").as_bytes())
                .next()
                .map(|(_, t)| t.into_owned())
                .unwrap_or_default()
        })
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Option<Session>, UiError> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    Ok(state
        .store
        .authenticate(&token)
        .await?
        .map(|principal| Session {
            principal,
            csrf: csrf_for(&token),
        }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match authenticate(&parts.headers, state).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) if parts.method == Method::GET => {
                // Only a local path goes into `next`; it is checked again on use.
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/ui/jobs", |p| p.as_str());
                let q: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                Err(Redirect::to(&format!("/ui/login?{q}")).into_response())
            }
            Ok(None) => Err(UiError(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "your session has ended: sign in again",
            ))
            .into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A POSTed form from a signed-in user whose CSRF token matches.
pub struct CheckedForm {
    pub session: Session,
    pub fields: Vec<(String, String)>,
}

impl CheckedForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Refuses a POST whose `Origin` is another site's (browsers send it on
/// every cross-origin POST). A missing header (old clients, curl) is left to
/// the CSRF token.
fn same_origin(headers: &HeaderMap) -> Result<(), UiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    let ok = match (origin, host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(UiError(ApiError::forbidden(
            "this form was posted from another site",
        )))
    }
}

fn parse_form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers).map_err(IntoResponse::into_response)?;
        let session = Session::from_request_parts(&mut parts, state).await?;
        let body = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
            UiError(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the form is too large",
            ))
            .into_response()
        })?;
        let fields = parse_form(&body);
        let sent = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        if !sent.is_some_and(|c| same(c, &session.csrf)) {
            return Err(UiError(ApiError::forbidden(
                "the form's CSRF token is missing or wrong: reload the page and try again",
            ))
            .into_response());
        }
        Ok(Self { session, fields })
    }
}

/// Where to go after signing in: only a path on this site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/jobs".into(),
    }
}

pub async fn login_page(
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, UiError> {
    let q: Vec<(String, String)> = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let next = safe_next(q.iter().find(|(k, _)| k == "next").map(|(_, v)| v.as_str()));
    render(
        "login.html",
        StatusCode::OK,
        minijinja::context! { next => next },
    )
}

/// Signs in: the token is checked, then set as an `HttpOnly`,
/// `SameSite=Strict` cookie (12 hours). The token itself is the session, so
/// revoking it ends every session made with it.
pub async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    same_origin(&headers)?;
    if body.len() > MAX_FORM {
        return Err(UiError(ApiError::invalid("the form is too large")));
    }
    let fields = parse_form(&body);
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let next = safe_next(get("next").as_deref());
    let token = get("token").unwrap_or_default();
    let ok =
        !token.is_empty() && token.len() <= 256 && s.store.authenticate(&token).await?.is_some();
    if !ok {
        return render(
            "login.html",
            StatusCode::UNAUTHORIZED,
            minijinja::context! { next => next, error => "that token is not valid" },
        );
    }
    let value: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response())
}

pub async fn logout(form: CheckedForm) -> Response {
    let _ = form.session;
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/ui/login".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_a_local_dashboard_path() {
        assert_eq!(safe_next(Some("/ui/jobs/x")), "/ui/jobs/x");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/jobs");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/jobs");
        assert_eq!(safe_next(Some("/ui/\\evil")), "/ui/jobs");
        assert_eq!(safe_next(None), "/ui/jobs");
    }

    #[test]
    fn cookie_is_found_among_others_and_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; gantry_session=ab%2Bc; b=2".parse().expect("header"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("ab+c"));
        assert_eq!(csrf_for("x"), csrf_for("x"));
        assert_ne!(csrf_for("x"), csrf_for("y"));
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().expect("h"));
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, "null".parse().expect("h"));
        assert!(same_origin(&h).is_err());
    }
}
