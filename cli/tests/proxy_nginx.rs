//! `twsig proxy` behind nginx (Debian's package) as the TLS-terminating load balancer: nginx listens
//! with a self-signed certificate on a free loopback port and passes `X-Forwarded-Proto: https`; the
//! proxy trusts 127.0.0.1/32 and verifies `https://` + Host + target. The same headers sent straight to
//! the proxy from an untrusted address (127.0.0.2) are not believed: 403.
//!
//! Needs `nginx`, `openssl` and `curl`. `make test-proxy` installs nginx and sets
//! TWSIG_PROXY_REQUIRE_NGINX=1, making a missing nginx a failure; elsewhere (`cargo test`) the test
//! says it is skipped.

#![allow(clippy::panic)]

#[path = "proxy/support.rs"]
mod proxy_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proxy_support::{
    fresh_port, header_values, received, sign_form, start_app, wait_until, App, Killed, Proxy,
};

const FORM: &[u8] = b"AccountSid=AC123&Body=Hello&From=%2B15557654321&To=%2B15551234567";

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// nginx in the foreground with its own prefix, configuration, certificate and temp directories.
fn start_nginx(nginx: &Path, dir: &Path, port: u16, proxy_port: u16) -> Killed {
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=example.com",
        "-keyout",
        &dir.join("key.pem").to_string_lossy(),
        "-out",
        &dir.join("cert.pem").to_string_lossy(),
    ]));
    let template = std::fs::read_to_string(proxy_support::fixtures().join("nginx-tls.conf"))
        .expect("the nginx template");
    let config = template
        .replace("{dir}", &dir.to_string_lossy())
        .replace("{port}", &port.to_string())
        .replace("{proxy_port}", &proxy_port.to_string());
    std::fs::write(dir.join("nginx.conf"), config).expect("write nginx.conf");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let child = Killed(child);
    wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    child
}

/// curl's status line and the body, for a form POST.
fn curl(args: &[&str], signature: &str) -> (u16, String) {
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "-H",
            &format!("X-Twilio-Signature: {signature}"),
            "--data-binary",
            std::str::from_utf8(FORM).expect("ASCII"),
        ])
        .args(args));
    let (body, status) = out.rsplit_once('\n').expect("curl's -w line");
    (status.parse().expect("a status"), body.to_owned())
}

#[test]
fn behind_nginx_terminating_tls_the_https_url_is_verified_and_only_from_the_trusted_proxy() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("TWSIG_PROXY_REQUIRE_NGINX").is_none(),
            "nginx is not installed (make test-proxy installs Debian's package)"
        );
        eprintln!(
            "SKIPPED: nginx is not installed; `make test-proxy` installs it and runs this test"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("twsig-proxy-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).expect("temp dir");

    let (_app, app_port) = start_app(App::Python);
    // No --base-url: the URL is the scheme (the trusted proxy's X-Forwarded-Proto) + Host + target.
    let proxy = Proxy::start(&[
        "--upstream",
        &format!("http://127.0.0.1:{app_port}"),
        "--trusted-proxy",
        "127.0.0.1/32",
    ]);
    let nginx_port = fresh_port();
    let _nginx = start_nginx(&nginx, &dir, nginx_port, proxy.port);

    let signature = sign_form("https://example.com/sms", FORM);
    let url = format!("https://127.0.0.1:{nginx_port}/sms");
    let (status, body) = curl(&["-H", "Host: example.com", &url], &signature);
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    let seen = received(app_port);
    assert_eq!(seen.len(), 1);
    assert_eq!(header_values(&seen[0], "x-forwarded-proto"), ["https"]);
    assert_eq!(
        header_values(&seen[0], "x-twilio-verified"),
        ["secret=0; candidate=as-given"]
    );
    assert_eq!(seen[0].body(), FORM);

    // The same headers straight to the proxy from 127.0.0.2, which is not a trusted proxy: the URL is
    // http://example.com/sms, which Twilio did not sign.
    let direct = format!("http://127.0.0.1:{}/sms", proxy.port);
    let (status, _) = curl(
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "Host: example.com",
            "-H",
            "X-Forwarded-Proto: https",
            &direct,
        ],
        &signature,
    );
    assert_eq!(status, 403);
    assert_eq!(
        received(app_port).len(),
        1,
        "the refused request reached the app"
    );
    let log = proxy.log();
    assert!(
        log.contains("url=http://example.com/sms")
            && log.contains("X-Forwarded-Proto ignored: from 127.0.0.2, not in trusted_proxies"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
