//! Request rewriting: the address helper parameter and the header clean-up.

use super::*;

/// Splits the address helper off a query: its (percent-decoded) value if present, and
/// the query without it (every `i2paddresshelper` pair removed, the others in order).
pub(super) fn split_helper(query: Option<&str>) -> (Option<String>, String) {
    let Some(query) = query else {
        return (None, String::new());
    };
    let mut helper = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.eq_ignore_ascii_case(HELPER_PARAM) {
            if helper.is_none() {
                let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                helper = Some(decoded.into_owned());
            }
        } else {
            rest.push(pair);
        }
    }
    (helper, rest.join("&"))
}

/// The destination an address helper names: a `.b32.i2p` address (with or without the
/// suffix) or a base64 destination.
pub(super) fn helper_target(value: &str) -> Result<Target, Refusal> {
    let value = value.trim();
    let lower = value.to_ascii_lowercase();
    if lower.ends_with(".b32.i2p") {
        return Ok(Target::Name(lower));
    }
    // 52 characters for a b32 address, 56 or more for an encrypted-LeaseSet b33.
    if lower.len() >= 52
        && lower
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    {
        return Ok(Target::Name(format!("{lower}.b32.i2p")));
    }
    Destination::from_base64(value)
        .map(Target::Destination)
        .map_err(|e| {
            Refusal::BadRequest(format!(
                "the {HELPER_PARAM} value is neither a b32 address nor a destination ({e})"
            ))
        })
}

/// Headers never passed on by a proxy (RFC 9110 §7.6.1), besides those `Connection`
/// names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Request headers that identify the user or their machine (removed unless kept).
const IDENTIFYING: [&str; 11] = [
    "referer",
    "accept-language",
    "accept-charset",
    "from",
    "via",
    "forwarded",
    "x-real-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    "dnt",
];

/// Prefixes of identifying request header names (removed unless kept).
const IDENTIFYING_PREFIXES: [&str; 2] = ["x-forwarded-", "sec-ch-ua"];

/// Removes the hop-by-hop headers, including every header `Connection` names.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What a request's headers become upstream: no hop-by-hop headers, and unless
/// `keep_identifying`, none of the identifying ones and the common `User-Agent`.
pub(super) fn clean_request_headers(headers: &mut HeaderMap, keep_identifying: bool) {
    remove_hop_by_hop(headers);
    if keep_identifying {
        return;
    }
    for name in IDENTIFYING {
        headers.remove(name);
    }
    let prefixed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            IDENTIFYING_PREFIXES
                .iter()
                .any(|prefix| name.as_str().starts_with(prefix))
        })
        .cloned()
        .collect();
    for name in prefixed {
        headers.remove(name);
    }
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
}
