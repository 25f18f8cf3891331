//! A request body that must arrive within a deadline: a client trickling its body (or stopping
//! halfway) would otherwise hold a connection and a buffer for as long as it likes. Past the deadline
//! the body fails, and the tower layer refuses the request (400, "the body could not be read").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// `Incoming`, failing once `until` has passed with the body still incomplete.
#[derive(Debug)]
pub struct Deadline {
    body: Incoming,
    until: Instant,
    /// Made the first time the body is not ready, so that a body that arrives with its head (nearly
    /// every webhook) never arms a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub fn new(body: Incoming, within: Duration) -> Self {
        Self {
            body,
            until: Instant::now() + within,
            timer: None,
        }
    }
}

/// The body was not received in time (or the connection failed).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl Body for Deadline {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Error::from))),
            Poll::Pending => {
                let until = this.until;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(
                        "the request body was not received within --body-timeout".into(),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
