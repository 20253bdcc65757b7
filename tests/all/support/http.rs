//! A raw HTTP/1.1 client for the admin port of `bandpass serve`: one
//! request a connection, written byte for byte, so that tests can send
//! what a real client would not (no token, a chunked body, a stalled
//! one).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A loopback address with a port free now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The header that presents `token`.
pub fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// `GET path` on the admin port: (status, body); (0, error) when it does
/// not answer.
pub fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    admin_request(addr, "GET", path, &[], None)
}

/// One request to the admin port, with `headers` (`Name: value` lines)
/// and an optional (content type, body); returns (status, body), or
/// (0, error) when it does not answer.
pub fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<(&str, &[u8])>,
) -> (u16, String) {
    let mut request = request_head(addr, method, path, headers);
    match body {
        Some((content_type, bytes)) => {
            request.extend_from_slice(
                format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            );
            request.extend_from_slice(bytes);
        }
        None => request.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    exchange(addr, &request)
}

/// [`admin_request`] with the body sent in 64 KiB chunks
/// (`Transfer-Encoding: chunked`): no length known in advance, as a
/// streaming client sends it.
pub fn admin_request_chunked(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    (content_type, bytes): (&str, &[u8]),
) -> (u16, String) {
    let mut request = request_head(addr, method, path, headers);
    request.extend_from_slice(
        format!("Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    );
    for chunk in bytes.chunks(64 << 10) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    exchange(addr, &request)
}

/// The request line and headers, up to the body's own headers.
fn request_head(addr: SocketAddr, method: &str, path: &str, headers: &[String]) -> Vec<u8> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for h in headers {
        head.extend_from_slice(format!("{h}\r\n").as_bytes());
    }
    head
}

/// Writes a whole request and reads the answer: (status, body).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, "not listening".into());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut response = String::new();
    // The server may answer (413, 401) and close before reading it all.
    let _ = stream.write_all(request);
    if stream.read_to_string(&mut response).is_err() {
        return (0, response);
    }
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Asks `path` until its status is `want` (within `wait`); returns the
/// last answer.
pub fn admin_until(addr: SocketAddr, path: &str, want: u16, wait: Duration) -> (u16, String) {
    let deadline = Instant::now() + wait;
    loop {
        let answer = admin_get(addr, path);
        if answer.0 == want || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A request without a body, with `token`.
pub fn call(admin: SocketAddr, method: &str, path: &str, token: &str) -> (u16, String) {
    admin_request(admin, method, path, &bearer(token), None)
}

/// Asks `path` with `token` until `check` holds on (status, body).
pub fn until(
    admin: SocketAddr,
    path: &str,
    token: &str,
    what: &str,
    check: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = call(admin, "GET", path, token);
        if check(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `PUT` of an upload: the component and, if given, the manifest.
pub fn upload(
    admin: SocketAddr,
    token: &str,
    group: &str,
    name: &str,
    component: &[u8],
    manifest: Option<&str>,
) -> (u16, String) {
    upload_as(Body::Sized, admin, token, group, name, component, manifest)
}

/// How an upload's body is sent.
pub enum Body {
    /// With a Content-Length.
    Sized,
    /// In chunks, without a Content-Length, as a streaming client sends it.
    Chunked,
}

/// [`upload`], sending the body as `body` says.
pub fn upload_as(
    body: Body,
    admin: SocketAddr,
    token: &str,
    group: &str,
    name: &str,
    component: &[u8],
    manifest: Option<&str>,
) -> (u16, String) {
    let (content_type, bytes) = form(name, component, manifest);
    let path = format!("/v1/groups/{group}/filters/{name}");
    let headers = bearer(token);
    match body {
        Body::Sized => admin_request(admin, "PUT", &path, &headers, Some((&content_type, &bytes))),
        Body::Chunked => {
            admin_request_chunked(admin, "PUT", &path, &headers, (&content_type, &bytes))
        }
    }
}

/// An upload's multipart body: (content type, bytes).
pub fn form(name: &str, component: &[u8], manifest: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "bandpass-test-boundary-7f3a";
    let mut body = Vec::new();
    if let Some(m) = manifest {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\
                 Content-Type: application/json\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"{name}.wasm\"\r\n\
             Content-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(component);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
