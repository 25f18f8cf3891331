//! Reading a request body up to a limit, and never past it.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// It declared, or grew to, more than the limit.
    TooLarge,
    /// The connection failed or the client stopped sending it.
    Failed,
}

/// Whether the request declares a body larger than `limit`: its `Content-Length` or the body's own
/// size hint (hyper's is the Content-Length it parsed). Checked before a byte is read.
pub(crate) fn declared_too_large(headers: &HeaderMap, body: &impl Body, limit: usize) -> bool {
    let limit = limit as u64;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    declared.is_some_and(|length| length > limit) || body.size_hint().lower() > limit
}

/// The whole body, or [`ReadError::TooLarge`] as soon as more than `limit` bytes have arrived: frames are
/// polled one at a time and reading stops at the frame that crosses the limit, however long the body.
/// Trailers are dropped.
pub(crate) async fn read_limited<B: Body>(body: B, limit: usize) -> Result<Bytes, ReadError> {
    let mut body = std::pin::pin!(body);
    let expected = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let mut collected = BytesMut::with_capacity(expected.min(limit));
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        if let Ok(mut data) = frame.into_data() {
            if data.remaining() > limit - collected.len() {
                return Err(ReadError::TooLarge);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let read = chunk.len();
                data.advance(read);
            }
        }
    }
    Ok(collected.freeze())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;

    use super::*;

    /// A body that never ends, counting the bytes it hands out.
    struct Endless {
        frame: usize,
        sent: usize,
    }

    impl Body for Endless {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.sent += self.frame;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; self.frame])))))
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn an_endless_body_is_read_only_up_to_the_frame_that_crosses_the_limit() {
        let mut body = Endless {
            frame: 1000,
            sent: 0,
        };
        let read = block_on(read_limited(&mut body, 10_500));
        assert_eq!(read, Err(ReadError::TooLarge));
        assert_eq!(body.sent, 11_000);
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_read_whole() {
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        assert_eq!(
            block_on(read_limited(body, 10)),
            Ok(Bytes::from_static(b"0123456789"))
        );
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789!"));
        assert_eq!(block_on(read_limited(body, 10)), Err(ReadError::TooLarge));
    }
}
