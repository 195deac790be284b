//! Messages for mistakes in the configuration and tunnels files: the line of the
//! mistake, the nearest valid key for an unknown one, and what a key's value should look
//! like when it is not valid TOML.

/// One key of a file and what its value looks like: (key, what it is, an example value).
pub(crate) type KeyShape = (&'static str, &'static str, &'static str);

/// The valid key nearest to `word`, if one is close enough to be a likely typo.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        // the threshold clap uses for its own "did you mean"
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// serde's `unknown field `x`, expected one of `a`, `b`` (or `expected `a` or `b``),
/// rewritten as `unknown key `x`; did you mean `y`?`, or with the list of valid keys
/// when none is close. `None` for any other message.
pub(crate) fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (word, expected) = rest.split_once('`')?;
    // the candidates are the other backticked words
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    Some(match nearest(word, candidates.iter().copied()) {
        Some(near) => format!("unknown key `{word}`; did you mean `{near}`?"),
        None if candidates.is_empty() => format!("unknown key `{word}`"),
        None => format!(
            "unknown key `{word}`; valid keys: {}",
            candidates.join(", ")
        ),
    })
}

/// For a value that is not valid TOML (`listen = 127.0.0.1:2905`): what `key` expects,
/// e.g. `listen: expected an address in quotes, e.g. listen = "127.0.0.1:2827"`.
pub(crate) fn value_shape(key: &str, shapes: &[KeyShape]) -> Option<String> {
    let (key, what, example) = shapes.iter().find(|(k, _, _)| *k == key)?;
    Some(format!("{key}: expected {what}, e.g. {key} = {example}"))
}

/// The 1-based line of byte `offset` in `text` (for `FILE:LINE` error messages).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key of a `key = value` line when `offset` points into the value (toml's value
/// errors carry the value's position but not the key's name).
pub(crate) fn key_before(text: &str, offset: usize) -> Option<&str> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[line_start..offset].split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then_some(key)
}

/// A TOML or serde error of a file's `text` as its 1-based line and the message users
/// see: for a value that is not TOML at all (an unquoted address reads as a bad float)
/// what the key expects (from `shapes`) instead of what the TOML parser stumbled on, an
/// unknown key with the nearest valid one, or the error prefixed with its key.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error, shapes: &[KeyShape]) -> (usize, String) {
    let start = e.span().map_or(0, |s| s.start);
    let message = e.message().trim();
    let key = key_before(text, start);
    let syntax = text.parse::<toml::Table>().is_err();
    let shape = key.filter(|_| syntax).and_then(|k| value_shape(k, shapes));
    let message = match (shape, unknown_key(message), key) {
        (Some(shape), _, _) => shape,
        (None, Some(unknown), _) => unknown,
        (None, None, Some(key)) => format!("{key}: {message}"),
        (None, None, None) => message.to_owned(),
    };
    (line_of(text, start), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_keys_are_suggested_and_far_ones_are_not() {
        let keys = ["listen", "max-tunnels", "max-tunnel-connections", "metrics"];
        assert_eq!(nearest("max-tunnel", keys), Some("max-tunnels"));
        assert_eq!(nearest("lisen", keys), Some("listen"));
        assert_eq!(nearest("colour", keys), None);
    }

    #[test]
    fn serde_unknown_field_messages_are_rewritten() {
        assert_eq!(
            unknown_key("unknown field `max-tunnel`, expected one of `listen`, `max-tunnels`")
                .as_deref(),
            Some("unknown key `max-tunnel`; did you mean `max-tunnels`?")
        );
        assert_eq!(
            unknown_key("unknown field `colour`, expected `name` or `keys`").as_deref(),
            Some("unknown key `colour`; valid keys: name, keys")
        );
        assert_eq!(
            unknown_key("unknown field `x`, there are no fields").as_deref(),
            Some("unknown key `x`")
        );
        assert_eq!(unknown_key("invalid type: integer"), None);
    }

    #[test]
    fn value_shapes() {
        let shapes: &[KeyShape] = &[("listen", "an address in quotes", "\"127.0.0.1:2827\"")];
        assert_eq!(
            value_shape("listen", shapes).as_deref(),
            Some("listen: expected an address in quotes, e.g. listen = \"127.0.0.1:2827\"")
        );
        assert_eq!(value_shape("other", shapes), None);
    }
}
