//! Answers sent before a request's body was read to its end.
//!
//! An import refused at once (a bad query) or halfway (a full disk) is
//! answered while the client is still sending. Left like that, the
//! connection cannot carry another request, yet a client that was not told
//! so reuses it and gets a broken answer (`IncompleteMessage`); and a server
//! that just closes it makes the client fail writing the body before it
//! reads the answer (`BrokenPipe`). So the rest of a small body is read and
//! dropped before the answer goes out (the connection stays usable), and an
//! answer to a large one says `Connection: close` (the client does not reuse
//! the connection; hyper closes it after the answer).

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most unread body drained before an answer; past it, the connection
/// is closed instead.
const DRAIN_MAX: u64 = 8 << 20;
/// How long a slow client may take to send that rest.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The request body, shared between the handler and this layer, so what the
/// handler left unread can still be read after it answered.
#[derive(Clone)]
struct Shared(Arc<Mutex<Body>>);

impl Shared {
    fn poll(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.0.lock() {
            Ok(mut b) => Pin::new(&mut *b).poll_frame(cx),
            Err(_) => Poll::Ready(None),
        }
    }
    fn ended(&self) -> bool {
        self.0.lock().map_or(true, |b| b.is_end_stream())
    }
    fn remaining(&self) -> Option<u64> {
        self.0.lock().ok().and_then(|b| b.size_hint().exact())
    }
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.poll(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.ended()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .lock()
            .map_or_else(|_| http_body::SizeHint::default(), |b| b.size_hint())
    }
}

/// Reads and drops the rest of `body`, up to [`DRAIN_MAX`] bytes; true when
/// it reached the end.
async fn drain(body: &Shared) -> bool {
    let mut read = 0u64;
    let reading = async {
        loop {
            match std::future::poll_fn(|cx| body.poll(cx)).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if read > DRAIN_MAX {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME, reading)
        .await
        .unwrap_or(false)
}

pub(crate) async fn drain_or_close(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let shared = Shared(Arc::new(Mutex::new(body)));
    let mut resp = next
        .run(Request::from_parts(parts, Body::new(shared.clone())))
        .await;
    if shared.ended() {
        return resp;
    }
    let small = shared.remaining().is_some_and(|n| n <= DRAIN_MAX);
    // A body of unknown length is drained too, within the same bounds.
    let unknown = shared.remaining().is_none();
    if !((small || unknown) && drain(&shared).await) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
