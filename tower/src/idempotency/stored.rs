//! What is kept of a response and sent again to a retry, and its stored form (layout version 2, shared
//! with the Python, Go and Node faces: docs/contract.md#retries).

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::{StoreError, REPLAYED_HEADER};

/// A response as the retry store keeps it: its status, its end-to-end header lines and its body.
///
/// [`from_parts`](Self::from_parts) builds it from a handler's response, leaving out what a replay
/// must not repeat; [`encode`](Self::encode) and [`decode`](Self::decode) are the stored layout every
/// face shares, so a response stored by the tower layer is replayed by a Python or Go instance sharing
/// the same Redis, and the other way round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    status: StatusCode,
    /// Names lower-cased (as [`HeaderName`] always is), sorted by name; the values of one name in the
    /// order the handler sent them.
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// Lower-cased names never stored: hop-by-hop headers (RFC 9110 §7.6.1), the date of the first answer,
/// a length the replay recomputes, and the replay marker itself.
const NOT_STORED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "date",
    "content-length",
    "idempotent-replayed",
];

/// Layout version 2 starts with these two bytes; version 1 started with its status (100-999, so a
/// first byte of 0x00-0x03).
const V2: [u8; 2] = [0xff, 0x02];

impl StoredResponse {
    /// The response a handler sent, as stored: every header line except the hop-by-hop ones
    /// (`Connection`, `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`,
    /// `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and any header the `Connection` header names),
    /// `Date`, `Content-Length` and `Idempotent-Replayed`. Lines are sorted by name; the values of one
    /// name keep their order.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let named: Vec<Vec<u8>> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|line| line.as_bytes().split(|&b| b == b','))
            .map(|item| item.trim_ascii().to_ascii_lowercase())
            .filter(|item| !item.is_empty())
            .collect();
        let lines = headers
            .iter()
            .filter(|(name, _)| {
                !NOT_STORED.contains(&name.as_str())
                    && !named.iter().any(|n| n == name.as_str().as_bytes())
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Self::new(status, lines, body)
    }

    /// A response with exactly these header lines (sorted by name here, stably).
    pub fn new(
        status: StatusCode,
        mut headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Self {
        headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Self {
            status,
            headers,
            body,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header lines, sorted by name (the values of one name in the order sent).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The response sent to a retry: the stored status, every stored header line, the body, and
    /// `Idempotent-Replayed: true`.
    pub fn replay(&self) -> Response<Full<Bytes>> {
        let mut response = self.plain_response();
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        response
    }

    /// The stored status, header lines and body, nothing added.
    pub(crate) fn plain_response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        response
    }

    /// The stored form, layout version 2: `0xFF 0x02`, the status and the number of header lines as
    /// big-endian 16-bit numbers, then per line the name's length, the name (lower-case ASCII), the
    /// value's length and the value (the bytes sent), then the body. An error for what the layout
    /// cannot hold (more than 65,535 lines, a name or value over 65,535 bytes).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let too_big =
            || StoreError::new("the response cannot be stored: a header is over 65,535 bytes");
        let count = u16::try_from(self.headers.len()).map_err(|_| {
            StoreError::new("the response cannot be stored: over 65,535 header lines")
        })?;
        let size = self
            .headers
            .iter()
            .map(|(n, v)| 4 + n.as_str().len() + v.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(6 + size + self.body.len());
        out.extend_from_slice(&V2);
        out.extend_from_slice(&self.status.as_u16().to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in &self.headers {
            for field in [name.as_str().as_bytes(), value.as_bytes()] {
                let length = u16::try_from(field.len()).map_err(|_| too_big())?;
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(field);
            }
        }
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// The inverse of [`encode`](Self::encode); layout version 1 (status, content-type length, content
    /// type, body), which older versions wrote, is read too, its content type becoming a
    /// `content-type` line. An error for anything else: empty or truncated data, an unknown version, a
    /// status outside 100-999, a line running past the end, a name or value HTTP does not allow.
    pub fn decode(data: &[u8]) -> Result<Self, StoreError> {
        let mut reader = Reader(data);
        if data.first() == Some(&0xff) {
            if data.len() >= 2 && data[1] != V2[1] {
                return Err(StoreError::new(format!(
                    "stored response has an unknown layout version {}",
                    data[1]
                )));
            }
            reader.take(2)?;
            let status = status(reader.u16()?)?;
            let count = reader.u16()?;
            let mut headers = Vec::with_capacity(usize::from(count).min(data.len() / 4));
            for _ in 0..count {
                let name = reader.field()?;
                let value = reader.field()?;
                headers.push(line(name, value)?);
            }
            return Ok(Self::new(status, headers, Bytes::copy_from_slice(reader.0)));
        }
        let status = status(reader.u16()?)?;
        let content_type = reader.field()?;
        let headers = if content_type.is_empty() {
            Vec::new()
        } else {
            vec![line(b"content-type", content_type)?]
        };
        Ok(Self::new(status, headers, Bytes::copy_from_slice(reader.0)))
    }
}

fn status(code: u16) -> Result<StatusCode, StoreError> {
    if !(100..=999).contains(&code) {
        return Err(StoreError::new(
            "stored response is malformed: status outside 100..999",
        ));
    }
    StatusCode::from_u16(code)
        .map_err(|_| StoreError::new("stored response is malformed: status outside 100..999"))
}

fn line(name: &[u8], value: &[u8]) -> Result<(HeaderName, HeaderValue), StoreError> {
    let malformed =
        || StoreError::new("stored response is malformed: a header line HTTP does not allow");
    // Names are stored lower-cased; HeaderName lower-cases any that are not.
    let name = HeaderName::from_bytes(name).map_err(|_| malformed())?;
    let value = HeaderValue::from_bytes(value).map_err(|_| malformed())?;
    Ok((name, value))
}

/// A cursor over stored bytes that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::new(
                "stored response is truncated: a field runs past the end",
            ));
        }
        let (field, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(field)
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// A length-prefixed field.
    fn field(&mut self) -> Result<&'a [u8], StoreError> {
        let length = self.u16()?;
        self.take(usize::from(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_not_stored() {
        let mut headers = HeaderMap::new();
        headers.append("Connection", HeaderValue::from_static("keep-alive, X-Hop"));
        headers.append("x-hop", HeaderValue::from_static("1"));
        headers.append("Date", HeaderValue::from_static("today"));
        headers.append("Content-Length", HeaderValue::from_static("2"));
        headers.append("Transfer-Encoding", HeaderValue::from_static("chunked"));
        headers.append("Idempotent-Replayed", HeaderValue::from_static("true"));
        headers.append("Set-Cookie", HeaderValue::from_static("b=2"));
        headers.append("Location", HeaderValue::from_static("/next"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        let stored = StoredResponse::from_parts(StatusCode::FOUND, &headers, Bytes::new());
        let names: Vec<(&str, &[u8])> = stored
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(
            names,
            [
                ("location", &b"/next"[..]),
                ("set-cookie", b"b=2"),
                ("set-cookie", b"a=1")
            ]
        );
        let replay = stored.replay();
        assert_eq!(replay.status(), StatusCode::FOUND);
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(replay.headers().get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn a_header_the_layout_cannot_hold_is_an_error_not_a_truncation() {
        let long = HeaderValue::from_bytes(&vec![b'a'; 70_000]).expect("value");
        let stored = StoredResponse::new(
            StatusCode::OK,
            vec![(HeaderName::from_static("x-long"), long)],
            Bytes::new(),
        );
        assert!(stored.encode().is_err());
    }
}
