//! Who is believed about the public URL: trusted proxy ranges, the peer address, and the host rule.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::str::FromStr;

use http::{Extensions, HeaderMap, HeaderName};

/// The address of the connection's peer, as a server puts it in the request extensions.
///
/// The layer reads the peer address to decide whether `X-Forwarded-Proto` / `X-Forwarded-Host` come
/// from a trusted proxy. By default it looks for this type; a hyper server inserts it in its accept
/// loop:
///
/// ```no_run
/// # async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// use twilio_signature_tower::PeerAddr;
/// let (stream, remote) = listener.accept().await?;
/// // in the hyper `service_fn` for this connection:
/// let tag = move |mut request: http::Request<()>| {
///     request.extensions_mut().insert(PeerAddr(remote));
///     request
/// };
/// # let _ = (stream, tag);
/// # Ok(())
/// # }
/// # let _ = serve;
/// ```
///
/// axum already puts `ConnectInfo<SocketAddr>` there (when served with
/// `into_make_service_with_connect_info::<SocketAddr>()`): tell the layer with
/// [`peer_addr_from::<ConnectInfo<SocketAddr>>()`](crate::TwilioSignatureLayer::peer_addr_from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl Deref for PeerAddr {
    type Target = SocketAddr;

    fn deref(&self) -> &SocketAddr {
        &self.0
    }
}

/// How the layer finds the peer address in a request's extensions.
pub(crate) type PeerLookup = fn(&Extensions) -> Option<SocketAddr>;

/// The peer address stored as `T` (`PeerAddr`, axum's `ConnectInfo<SocketAddr>`, ...).
pub(crate) fn peer_addr_of<T>(extensions: &Extensions) -> Option<SocketAddr>
where
    T: Deref<Target = SocketAddr> + Send + Sync + 'static,
{
    extensions.get::<T>().map(|addr| **addr)
}

/// A CIDR range (`10.0.0.0/8`, `::1/128`), or one address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// A trusted proxy range that is not an address or `address/prefix-length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadRange;

impl FromStr for IpRange {
    type Err = BadRange;

    fn from_str(text: &str) -> Result<Self, BadRange> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| BadRange)?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or(BadRange)?,
            Some(_) => return Err(BadRange),
        };
        Ok(Self { network, prefix })
    }
}

impl IpRange {
    /// Whether `ip` is in the range. An IPv4 peer seen through a dual-stack socket (`::ffff:a.b.c.d`)
    /// is compared as the IPv4 address it is.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    (a ^ b) & mask == 0
}

impl fmt::Debug for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The value the nearest proxy added to a forwarding header: the last item of its last line, trimmed.
pub(crate) fn last_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    let line = headers.get_all(name).iter().next_back()?.as_bytes();
    let item = line
        .rsplit(|&b| b == b',')
        .next()
        .unwrap_or(line)
        .trim_ascii();
    (!item.is_empty()).then_some(item)
}

/// Whether `host` could move the URL verified: empty, or holding any of `/ ? # @ \`, ASCII whitespace
/// or a control character; or is several hosts: a comma, which no host has, is what servers and `Headers`
/// objects make of repeated `Host` lines.
pub(crate) fn is_bad_host(host: &[u8]) -> bool {
    host.is_empty()
        || host
            .iter()
            .any(|&b| b <= b' ' || b == 0x7f || b"/?#@\\,".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> IpRange {
        text.parse().expect("a valid range")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn ranges_are_cidr_or_one_address() {
        assert!(range("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(range("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!range("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(range("::1/128").contains(ip("::1")));
        assert!(!range("::1").contains(ip("::2")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!range("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(range("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        // An IPv4 peer on a dual-stack socket.
        assert!(range("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "example.com",
            "10.0.0/8",
        ] {
            assert_eq!(bad.parse::<IpRange>(), Err(BadRange), "{bad:?}");
        }
    }

    #[test]
    fn the_last_forwarded_value_is_the_nearest_proxys() {
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_static("x-forwarded-host");
        assert_eq!(last_value(&headers, &name), None);
        headers.append(&name, "evil.example, a.example".parse().expect("value"));
        headers.append(&name, "b.example , c.example ".parse().expect("value"));
        assert_eq!(last_value(&headers, &name), Some(&b"c.example"[..]));
        headers.append(&name, "d.example,".parse().expect("value"));
        assert_eq!(last_value(&headers, &name), None);
    }

    #[test]
    fn a_host_that_could_move_the_url_is_bad() {
        assert!(!is_bad_host(b"example.com"));
        assert!(!is_bad_host(b"example.com:8443"));
        assert!(!is_bad_host(b"[::1]:80"));
        for bad in [
            &b""[..],
            b"a/b",
            b"a?b",
            b"a#b",
            b"user@host",
            b"a\\b",
            b"a b",
            b"a\tb",
            b"a\x00",
            b"a\x7f",
            b"example.com,evil.example",
        ] {
            assert!(is_bad_host(bad), "{bad:?}");
        }
    }
}
