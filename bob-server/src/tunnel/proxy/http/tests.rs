use super::refusal::escape_html;
use super::*;

fn b64_destination() -> Destination {
    keytools::PrivateKeys::generate(keytools::SigType::Ed25519, keytools::CryptoType::ElGamal)
        .expect("keys generate")
        .destination()
        .clone()
}

#[test]
fn options_give_settings() {
    assert_eq!(HttpSettings::from_option(None), Ok(HttpSettings::default()));
    assert_eq!(
        HttpSettings::from_option(Some("TRUE")),
        Ok(HttpSettings { keep_headers: true })
    );
    assert_eq!(
        HttpSettings::from_option(Some("false")),
        Ok(HttpSettings::default())
    );
    let err = HttpSettings::from_option(Some("yes")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bob.http.keepheaders must be true or false, not \"yes\""
    );
    assert_eq!(
        Refusal::Misconfigured(err.to_string()).status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[test]
fn options_are_checked_at_start() {
    let options = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(check_options(&[]), Ok(()));
    assert_eq!(
        check_options(&options(&[
            ("bob.udp.dest", "x"),
            (KEEP_HEADERS_OPTION, "true")
        ])),
        Ok(())
    );
    // the last value wins, as in the handler
    assert_eq!(
        check_options(&options(&[
            (KEEP_HEADERS_OPTION, "bad"),
            (KEEP_HEADERS_OPTION, "false")
        ])),
        Ok(())
    );
    let err = check_options(&options(&[(KEEP_HEADERS_OPTION, "maybe")])).unwrap_err();
    assert_eq!(err.option, KEEP_HEADERS_OPTION);
}

#[test]
fn the_helper_replaces_names_only() {
    let dest = b64_destination();
    let helped = Some(Target::Destination(dest.clone()));
    let name = Target::Name("site.i2p".to_owned());
    assert_eq!(
        with_helper(name.clone(), helped.clone()),
        Target::Destination(dest.clone())
    );
    assert_eq!(with_helper(name.clone(), None), name);
    let b32 = Target::Name(format!("{}.b32.i2p", "a".repeat(52)));
    assert_eq!(with_helper(b32.clone(), helped.clone()), b32);
    let full = Target::Destination(b64_destination());
    assert_eq!(with_helper(full.clone(), helped), full);
}

#[test]
fn the_address_helper_is_split_off() {
    assert_eq!(split_helper(None), (None, String::new()));
    assert_eq!(split_helper(Some("a=1&b=2")), (None, "a=1&b=2".to_owned()));
    assert_eq!(
        split_helper(Some("a=1&i2paddresshelper=abc%7E&b=2&I2PAddressHelper=x")),
        (Some("abc~".to_owned()), "a=1&b=2".to_owned())
    );
    assert_eq!(
        split_helper(Some("i2paddresshelper=xyz")),
        (Some("xyz".to_owned()), String::new())
    );
}

#[test]
fn helper_values() {
    let b32 = "b".repeat(52);
    assert_eq!(
        helper_target(&b32),
        Ok(Target::Name(format!("{b32}.b32.i2p")))
    );
    assert_eq!(
        helper_target(&format!("{}.B32.I2P", b32.to_uppercase())),
        Ok(Target::Name(format!("{b32}.b32.i2p")))
    );
    let dest = b64_destination();
    assert_eq!(
        helper_target(&dest.to_base64()),
        Ok(Target::Destination(dest))
    );
    let err = helper_target("nonsense").unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("i2paddresshelper"), "{err}");
}

#[test]
fn request_headers_are_cleaned() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("connection", "keep-alive, x-private"),
        ("x-private", "secret"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic eDp5"),
        ("keep-alive", "300"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("user-agent", "curl/7.88"),
        ("referer", "http://other.i2p/"),
        ("accept-language", "de-CH"),
        ("x-forwarded-for", "10.0.0.1"),
        ("via", "1.1 squid"),
        ("sec-ch-ua-platform", "Linux"),
        ("accept", "*/*"),
        ("cookie", "a=b"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    let mut kept = headers.clone();
    clean_request_headers(&mut headers, false);
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "cookie", "user-agent"]);
    assert_eq!(headers[header::USER_AGENT], USER_AGENT);

    clean_request_headers(&mut kept, true);
    let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "accept-language",
            "cookie",
            "referer",
            "sec-ch-ua-platform",
            "user-agent",
            "via",
            "x-forwarded-for"
        ]
    );
    assert_eq!(kept[header::USER_AGENT], "curl/7.88");
}

#[test]
fn pages_escape_and_carry_the_status() {
    let refusal = Refusal::NotFound("<script>.i2p".to_owned());
    let page = refusal.page();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        Refusal::Timeout("x.i2p".to_owned()).status(),
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        Refusal::Clearnet("example.com".to_owned()).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        escape_html("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}
