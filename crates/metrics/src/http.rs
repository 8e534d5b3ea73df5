//! The little HTTP/1.1 the endpoint speaks, free of IO: a request head parsed from bytes,
//! the exposition format an Accept header asks for, and a response written into bytes.
//!
//! Enough for Prometheus, curl and a kubelet probe: `GET` and `HEAD`, one request per
//! connection (every response says `Connection: close`), no request bodies.

use std::fmt;

/// Longest request head accepted; a scrape's is a few hundred bytes.
pub const MAX_HEAD: usize = 8192;

/// The parts of a request the endpoint acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The path, without a query string.
    pub path: String,
    /// The Accept header's value, if there was one.
    pub accept: Option<String>,
}

/// Why a request head was refused (answered 400, or 431 when too long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD`].
    TooLong,
    /// The head is not an HTTP/1.x request.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLong => write!(f, "request head longer than {MAX_HEAD} bytes"),
            HeadError::Malformed(what) => write!(f, "malformed request: {what}"),
        }
    }
}

/// Parses the request head at the start of `bytes`: `Ok(None)` while it is incomplete.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Request>, HeadError> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if bytes.len() >= MAX_HEAD {
            Err(HeadError::TooLong)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(HeadError::TooLong);
    }
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| HeadError::Malformed("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed("not HTTP/1.x"));
    }
    let mut accept = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("header line"))?;
        if name.eq_ignore_ascii_case("accept") {
            accept = Some(value.trim().to_string());
        }
    }
    let path = target.split('?').next().unwrap_or_default();
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        accept,
    }))
}

/// An exposition format of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The response's Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format an Accept header asks for: OpenMetrics when it names
/// `application/openmetrics-text` with a quality at least that of the classic text format
/// (`text/plain` or a wildcard), else the classic text format.
pub fn negotiate(accept: Option<&str>) -> Format {
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for range in accept.unwrap_or_default().split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(q);
        } else if ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            text = text.max(q);
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// The response's bytes; without the body (but with its length) for a HEAD request.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\naccept: text/plain\r\n\r\n";
        for end in 0..head.len() {
            assert_eq!(parse_head(&head[..end]), Ok(None), "prefix of {end} bytes");
        }
        let request = parse_head(head).unwrap().unwrap();
        assert_eq!(
            request,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                accept: Some("text/plain".into()),
            }
        );
    }

    #[test]
    fn bad_heads_are_refused() {
        assert_eq!(
            parse_head(b"GET /\r\n\r\n"),
            Err(HeadError::Malformed("request line"))
        );
        assert_eq!(
            parse_head(b"GET / SPDY/3\r\n\r\n"),
            Err(HeadError::Malformed("not HTTP/1.x"))
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(HeadError::Malformed("header line"))
        );
        assert_eq!(parse_head(&[b'a'; MAX_HEAD]), Err(HeadError::TooLong));
    }

    #[test]
    fn openmetrics_only_when_asked_for_first() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            negotiate(Some("text/plain, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn a_head_response_has_the_length_but_no_body() {
        let r = Response::text(200, "ok\n");
        let full = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"), "{full}");
        assert!(full.contains("Content-Length: 3\r\n") && full.ends_with("\r\n\r\nok\n"));
        let head = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"));
        let allow = String::from_utf8(Response::text(405, "").to_bytes(true)).unwrap();
        assert!(allow.contains("Allow: GET, HEAD\r\n"), "{allow}");
    }
}
