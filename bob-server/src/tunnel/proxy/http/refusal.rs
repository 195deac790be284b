//! [`Refusal`]: why a request got an error page, and that page.

use super::*;

/// Why a request got an error page instead of an upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0} is not an I2P host and there is no outproxy")]
    Clearnet(String),
    #[error("{0} is not known to any naming source")]
    NotFound(String),
    #[error("{host} cannot be reached: {why}")]
    Unreachable { host: String, why: String },
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error("{host} broke the exchange: {why}")]
    BadGateway { host: String, why: String },
    #[error("the tunnel is not running: {0}")]
    NotRunning(String),
    #[error("the tunnel is misconfigured: {0}")]
    Misconfigured(String),
}

impl Refusal {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Clearnet(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unreachable { .. } | Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::NotRunning(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "Not a proxy request",
            Self::Clearnet(_) => "Not an I2P site",
            Self::NotFound(_) => "Unknown I2P host",
            Self::Unreachable { .. } => "I2P site unreachable",
            Self::Timeout(_) => "I2P site did not answer",
            Self::BadGateway { .. } => "Bad answer from the I2P site",
            Self::NotRunning(_) => "Proxy tunnel not running",
            Self::Misconfigured(_) => "Proxy tunnel misconfigured",
        }
    }

    /// The HTML error page (`Cache-Control: no-store`, the status of [`Refusal::status`]).
    pub(super) fn page(&self) -> Response<ProxyBody> {
        let status = self.status();
        let title = self.title();
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
             <body><h1>{title}</h1>\n<p>{detail}</p>\n<hr><p>bob HTTP proxy</p></body></html>\n",
            code = status.as_u16(),
            detail = escape_html(&self.to_string()),
        );
        let mut response = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Escapes text for an HTML page (host names and error texts come from the request).
pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
