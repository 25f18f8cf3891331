//! The client the retry tests share: a signed SMS webhook over raw HTTP/1.1 with an idempotency token,
//! and its answer in full (status, every header line, body).
// Each test binary uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use twilio_signature::{sign, Request};

pub const SMS: &str = "From=%2B15551234567&To=%2B15557654321&Body=Hello&MessageSid=SM1";

/// One response as the client saw it: status, header lines (names lower-cased), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }
}

/// Sends the SMS webhook to `path`, signed with `secret` for `signed_url`, with the token if given.
pub async fn send(
    addr: SocketAddr,
    path: &str,
    signed_url: &str,
    token: Option<&str>,
    secret: &str,
) -> TcpStream {
    let host = format!("127.0.0.1:{}", addr.port());
    let signature = sign(secret.as_bytes(), &Request::post(signed_url, SMS)).expect("sign");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Twilio-Signature: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        signature.as_str(),
        SMS.len()
    );
    if let Some(token) = token {
        head = head + "I-Twilio-Idempotency-Token: " + token + "\r\n";
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(SMS.as_bytes()).await.expect("write");
    stream
}

/// [`send`], and the answer.
pub async fn deliver(
    addr: SocketAddr,
    path: &str,
    signed_url: &str,
    token: Option<&str>,
    secret: &str,
) -> Answer {
    let mut stream = send(addr, path, signed_url, token, secret).await;
    read_answer(&mut stream).await
}

/// The whole response (`Connection: close`: it ends at EOF).
pub async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw))
        .await
        .expect("answered within 15 s")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().expect("status line")[9..12]
        .parse()
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}
