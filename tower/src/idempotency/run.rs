//! One guarded delivery: claim (or wait, or replay), run the inner service, store its response.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};

use super::{
    new_owner, Claim, Idempotency, IdempotencyStore, OnStoreError, RetryAnswer, StoredResponse,
};
use crate::refusal::ResponseBody;

const TARGET: &str = "twilio_signature_tower";

/// Answers one verified request that carries an idempotency token: the stored response to a retry,
/// 409 to a retry of a delivery still running (after waiting), or the inner service's response (`run`)
/// to a first delivery, stored unless it is a failure.
pub(crate) async fn serve_once<F, B, E>(
    retries: &Idempotency,
    key: String,
    run: impl FnOnce() -> F,
) -> Result<Response<ResponseBody<B>>, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    let owner = new_owner();
    // Armed before the first claim: a request dropped while its claim is on the wire (the client
    // gone) may hold the key, and must not leave it busy until the lease ends.
    let mut held = Held {
        store: Arc::clone(&retries.store),
        key,
        owner,
        armed: true,
    };
    let deadline = Instant::now() + retries.wait;
    loop {
        match retries
            .store
            .claim(&held.key, &held.owner, retries.lease)
            .await
        {
            Err(error) => {
                // The claim may have been taken before the error (a reply lost to a timeout): `held`
                // frees it in the background when it goes, and it expires with its lease anyway.
                let refuse = retries.on_store_error == OnStoreError::Refuse;
                let action = if refuse {
                    "answered 503"
                } else {
                    "processed unguarded"
                };
                tracing::error!(
                    target: TARGET,
                    "twilio webhook retry store failed (claim): {error}; {action}; key={}",
                    held.key
                );
                drop(held);
                if refuse {
                    return Ok(plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "retry store unavailable; retry later\n",
                        Some(RetryAnswer::StoreUnavailable),
                    ));
                }
                return run().await.map(|response| response.map(Either::Left));
            }
            Ok(Claim::Ours) => return run_and_store(retries, held, run).await,
            Ok(Claim::Done(stored)) => {
                held.armed = false;
                tracing::info!(
                    target: TARGET,
                    "twilio webhook retry answered with the stored response; key={}",
                    held.key
                );
                let mut response = stored.replay().map(Either::Right);
                response.extensions_mut().insert(RetryAnswer::Replayed);
                return Ok(response);
            }
            Ok(Claim::Busy) if Instant::now() >= deadline => {
                held.armed = false;
                tracing::warn!(
                    target: TARGET,
                    "twilio webhook retry refused: 409 the first delivery is still being handled; key={}",
                    held.key
                );
                return Ok(plain(
                    StatusCode::CONFLICT,
                    "this delivery is still being handled; retry later\n",
                    Some(RetryAnswer::StillRunning),
                ));
            }
            Ok(Claim::Busy) => {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(retries.poll.min(left)).await;
            }
        }
    }
}

/// The first delivery: runs the inner service, buffers its response and stores it; a failure (an
/// error, a 5xx) or a response that cannot be stored releases the claim instead.
async fn run_and_store<F, B, E>(
    retries: &Idempotency,
    mut held: Held,
    run: impl FnOnce() -> F,
) -> Result<Response<ResponseBody<B>>, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    // An error (or a panic) drops `held`, which frees the claim: Twilio's retry runs the handler again.
    let response = run().await?;
    let status = response.status();
    if status.is_server_error() || status.is_informational() {
        // A failure is not stored (a 1xx is no final answer): the retry must run the handler again.
        held.release().await;
        return Ok(response.map(Either::Left));
    }
    let (parts, body) = response.into_parts();
    if body
        .size_hint()
        .exact()
        .is_some_and(|length| length > retries.max_body as u64)
    {
        // Too large to store, and its length is known: sent as it streams, without buffering.
        not_stored(retries, &held, "the body is over max_body");
        held.release().await;
        return Ok(Response::from_parts(parts, Either::Left(body)));
    }
    let Ok(read) = read_whole(body, retries.max_body).await else {
        // The inner service's body failed half-way: nothing whole to send or store.
        tracing::error!(
            target: TARGET,
            "twilio webhook response body failed while it was read to be stored; answered 500; key={}",
            held.key
        );
        held.release().await;
        return Ok(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the response failed\n",
            None,
        ));
    };
    if read.over_limit || read.trailers {
        let why = if read.over_limit {
            "the body is over max_body"
        } else {
            "it has trailers, which are not stored (nor sent)"
        };
        not_stored(retries, &held, why);
        held.release().await;
    } else {
        let stored = StoredResponse::from_parts(status, &parts.headers, read.bytes.clone());
        complete(retries, &mut held, &stored).await;
    }
    let mut response = Response::from_parts(parts, Either::Right(Full::new(read.bytes)));
    // The length is known now; a Transfer-Encoding the inner service set no longer applies.
    response.headers_mut().remove(header::TRANSFER_ENCODING);
    Ok(response)
}

async fn complete(retries: &Idempotency, held: &mut Held, stored: &StoredResponse) {
    match retries
        .store
        .complete(&held.key, &held.owner, stored, retries.ttl)
        .await
    {
        Ok(true) => held.armed = false,
        Ok(false) => {
            held.armed = false;
            tracing::warn!(
                target: TARGET,
                "twilio webhook response not stored: the claim expired (handler slower than lease={:?}) \
                 and another run took it; key={}",
                retries.lease,
                held.key
            );
        }
        Err(error) => {
            tracing::error!(
                target: TARGET,
                "twilio webhook retry store failed (complete): {error}; the handler's response was sent \
                 but not stored; key={}",
                held.key
            );
            // Not left busy until the lease ends: a retry runs the handler again.
            held.release().await;
        }
    }
}

fn not_stored(retries: &Idempotency, held: &Held, why: &str) {
    tracing::warn!(
        target: TARGET,
        "twilio webhook response not stored: {why} ({} bytes); a retry runs the handler again; key={}",
        retries.max_body,
        held.key
    );
}

/// A text response the retry handling answers itself.
fn plain<B>(
    status: StatusCode,
    text: &'static str,
    answer: Option<RetryAnswer>,
) -> Response<ResponseBody<B>> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(answer) = answer {
        response.extensions_mut().insert(answer);
    }
    response
}

struct Read {
    bytes: Bytes,
    /// Longer than `max_body`: sent, not stored.
    over_limit: bool,
    /// The body ended with trailers, which a buffered response cannot carry.
    trailers: bool,
}

/// The whole body. One over `limit` is still read to the end, to be sent (the layer's response body
/// cannot be part buffered, part streamed); only its length decides that it is not stored.
async fn read_whole<B: Body>(body: B, limit: usize) -> Result<Read, ()> {
    let mut body = std::pin::pin!(body);
    let mut bytes = BytesMut::new();
    let mut trailers = false;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|_| ())?;
        match frame.into_data() {
            Ok(mut data) => {
                while data.has_remaining() {
                    let chunk = data.chunk();
                    bytes.extend_from_slice(chunk);
                    let read = chunk.len();
                    data.advance(read);
                }
            }
            Err(frame) => trailers |= frame.is_trailers(),
        }
    }
    Ok(Read {
        over_limit: bytes.len() > limit,
        bytes: bytes.freeze(),
        trailers,
    })
}

/// A claim this request may hold. Released when dropped while armed (the request's future dropped:
/// the client went away, or the inner service failed), on a tokio task since a drop cannot wait.
struct Held {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    owner: String,
    armed: bool,
}

impl Held {
    /// Frees the claim now (a failure is logged: the claim then expires with its lease).
    async fn release(&mut self) {
        self.armed = false;
        if let Err(error) = self.store.release(&self.key, &self.owner).await {
            tracing::error!(
                target: TARGET,
                "twilio webhook retry store failed (release): {error}; the claim holds until its lease \
                 ends; key={}",
                self.key
            );
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, key, owner) = (
            Arc::clone(&self.store),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                target: TARGET,
                "twilio webhook claim not released (no tokio runtime): it holds until its lease ends; key={key}"
            );
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = store.release(&key, &owner).await {
                tracing::error!(
                    target: TARGET,
                    "twilio webhook retry store failed (release): {error}; the claim holds until its \
                     lease ends; key={key}"
                );
            }
        });
    }
}
