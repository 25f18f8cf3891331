#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
//! Test support shared by the integration tests: the vector files, and a naive reference implementation.
#![allow(dead_code)]

pub mod reference;

use std::path::PathBuf;

use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

pub fn load(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

pub fn hex(value: &Value) -> Vec<u8> {
    let s = value.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Vector {
    pub id: String,
    pub algorithm: String,
    pub signature_settings: Option<String>,
    pub secret: String,
    pub url: String,
    pub params: Option<Vec<(String, String)>>,
    pub form_body: Option<String>,
    pub body: Option<String>,
    pub signature: Option<String>,
    pub expect: bool,
    pub signed_string: Option<String>,
}

fn opt(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

pub fn twilio_vectors() -> Vec<Vector> {
    load("twilio-signatures.json")["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| Vector {
            id: opt(&v["id"]).expect("id"),
            algorithm: opt(&v["algorithm"]).expect("algorithm"),
            signature_settings: opt(&v["signature_settings"]),
            secret: opt(&v["secret"]).expect("secret"),
            url: opt(&v["url"]).expect("url"),
            params: v["params"].as_array().map(|ps| {
                ps.iter()
                    .map(|p| (opt(&p[0]).expect("name"), opt(&p[1]).expect("value")))
                    .collect()
            }),
            form_body: opt(&v["form_body"]),
            body: opt(&v["body"]),
            signature: opt(&v["signature"]),
            expect: v["expect"].as_bool().expect("expect"),
            signed_string: opt(&v["signed_string"]),
        })
        .collect()
}
