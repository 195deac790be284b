//! Signed address-book registration lines (I2P "Addressbook Subscription Feed Commands"
//! specification, as published by reg.i2p-style registrars and made by i2pd-tools `regaddr`).
//!
//! A line is `NAME=DEST#!key=value#key=value…#sig=SIG`: the properties after `#!` are sorted
//! by key (as Java I2P writes them) and `sig` is the destination's signature over everything
//! before its own `#` separator (before `#!` when it is the only property). A subdomain of a
//! registered name is added with `action=addsubdomain`, the parent's destination and name in
//! `olddest`/`oldname`, and `oldsig`, the parent's signature over everything before `#oldsig=`;
//! `sig` then covers the whole line including `oldsig`.

use crate::destination::Destination;
use crate::encoding;
use crate::error::KeyError;
use crate::keys::PrivateKeys;

/// Longest host name I2P accepts.
pub const MAX_HOSTNAME_LEN: usize = 67;
/// Longest registration line accepted (a P521 destination, a parent destination and two
/// signatures fit several times over).
pub const MAX_LINE_LEN: usize = 8192;

fn err(reason: impl Into<String>) -> KeyError {
    KeyError::Registration(reason.into())
}

/// Checks and lower-cases an I2P host name: at most 67 characters, ending in `.i2p` (not
/// `.b32.i2p`), labels of `a-z 0-9 -` that neither start nor end with `-`.
///
/// # Errors
/// [`KeyError::Registration`] naming the problem.
pub fn validate_hostname(name: &str) -> Result<String, KeyError> {
    let n = name.to_ascii_lowercase();
    if n.len() > MAX_HOSTNAME_LEN {
        return Err(err(format!(
            "host name is longer than {MAX_HOSTNAME_LEN} characters"
        )));
    }
    let Some(base) = n.strip_suffix(".i2p") else {
        return Err(err(format!("host name {name:?} does not end in .i2p")));
    };
    if n.ends_with(".b32.i2p") {
        return Err(err("a .b32.i2p address cannot be registered"));
    }
    if base.is_empty() {
        return Err(err("host name has no label before .i2p"));
    }
    for label in base.split('.') {
        let ok_chars = label
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if label.is_empty() || !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(err(format!(
                "host name {name:?}: label {label:?} must be letters, digits and inner '-'"
            )));
        }
    }
    Ok(n)
}

/// The parent domain of a subdomain (`a.b.i2p` → `b.i2p`); `None` for a second-level name.
pub fn parent_domain(name: &str) -> Option<&str> {
    let (_, rest) = name.split_once('.')?;
    (rest != "i2p").then_some(rest)
}

fn sign_b64(keys: &PrivateKeys, data: &str) -> Result<String, KeyError> {
    Ok(encoding::base64_encode(&keys.sign(data.as_bytes())?))
}

/// The registration line for `name` → `keys`' destination, dated `date` (seconds since the
/// epoch), signed by `keys`.
///
/// # Errors
/// [`KeyError::Registration`] for a bad name, [`KeyError::OfflineKey`] if `keys` holds only a
/// transient key.
pub fn register(name: &str, keys: &PrivateKeys, date: u64) -> Result<String, KeyError> {
    let name = validate_hostname(name)?;
    let mut line = format!("{name}={}#!date={date}", keys.destination().to_base64());
    let sig = sign_b64(keys, &line)?;
    line.push_str("#sig=");
    line.push_str(&sig);
    Ok(line)
}

/// The `addsubdomain` line for `name` (a subdomain of `parent_name`, which `parent_keys`
/// holds): signed first by the parent (`oldsig`), then by `keys` (`sig`).
///
/// # Errors
/// [`KeyError::Registration`] if `name` is not a subdomain of `parent_name` or either name is
/// bad, [`KeyError::OfflineKey`] if a key is offline-signed.
pub fn register_subdomain(
    name: &str,
    keys: &PrivateKeys,
    parent_name: &str,
    parent_keys: &PrivateKeys,
    date: u64,
) -> Result<String, KeyError> {
    let name = validate_hostname(name)?;
    let parent = validate_hostname(parent_name)?;
    if !name.ends_with(&format!(".{parent}")) {
        return Err(err(format!("{name} is not a subdomain of {parent}")));
    }
    let mut line = format!(
        "{name}={}#!action=addsubdomain#date={date}#olddest={}#oldname={parent}",
        keys.destination().to_base64(),
        parent_keys.destination().to_base64()
    );
    let oldsig = sign_b64(parent_keys, &line)?;
    line.push_str("#oldsig=");
    line.push_str(&oldsig);
    let sig = sign_b64(keys, &line)?;
    line.push_str("#sig=");
    line.push_str(&sig);
    Ok(line)
}

/// A registration line whose signatures verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// the host name
    pub name: String,
    /// its destination
    pub destination: Destination,
    /// the `date` property, if present
    pub date: Option<u64>,
    /// the `action` property, if present (`addsubdomain`, …)
    pub action: Option<String>,
    /// `oldname` and `olddest` when the line carries an `oldsig` that verified
    pub old: Option<(String, Destination)>,
}

/// Verifies a registration line: name, destination, property syntax, `sig` by the
/// destination, and (when present) `oldsig` by `olddest`; for `addsubdomain`, that the name is
/// a subdomain of `oldname`.
///
/// # Errors
/// [`KeyError::Registration`] (or the destination's [`KeyError`]) naming the first problem.
pub fn verify_registration(line: &str) -> Result<Verified, KeyError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE_LEN {
        return Err(err(format!("line is longer than {MAX_LINE_LEN} bytes")));
    }
    if let Some(c) = line.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(format!("line contains the character {c:?}")));
    }
    let Some((head, props_text)) = line.split_once("#!") else {
        return Err(err("no properties: a signed line has #!…sig=SIGNATURE"));
    };
    let Some((name, dest_b64)) = head.split_once('=') else {
        return Err(err("no '=' between host name and destination"));
    };
    let name = validate_hostname(name)?;
    if name != head[..head.len() - dest_b64.len() - 1] {
        return Err(err("host name must be lower case"));
    }
    let destination = Destination::from_base64(dest_b64)?;
    // properties with the byte offset of the separator in front of each
    let mut props: Vec<(&str, &str, usize)> = Vec::new();
    let mut offset = head.len(); // the '#' of "#!"
    for (i, p) in props_text.split('#').enumerate() {
        let Some((k, v)) = p.split_once('=') else {
            return Err(err(format!("property {p:?} is not key=value")));
        };
        if k.is_empty() || !k.bytes().all(|c| c.is_ascii_lowercase()) {
            return Err(err(format!("bad property name {k:?}")));
        }
        if props.iter().any(|(k2, _, _)| *k2 == k) {
            return Err(err(format!("property {k:?} appears twice")));
        }
        props.push((k, v, offset));
        offset += if i == 0 { 2 } else { 1 } + p.len();
    }
    let get = |key: &str| props.iter().find(|(k, _, _)| *k == key);
    let Some(&(_, sig_b64, sig_at)) = get("sig") else {
        return Err(err("no sig property"));
    };
    if props.last().map(|p| p.0) != Some("sig") {
        return Err(err("sig must be the last property"));
    }
    let sig = encoding::base64_decode(sig_b64)?;
    destination
        .verify(&line.as_bytes()[..sig_at], &sig)
        .map_err(|_| err("sig does not verify with the line's destination"))?;
    let date = match get("date") {
        Some((_, d, _)) => Some(
            d.parse::<u64>()
                .map_err(|_| err(format!("date {d:?} is not a number")))?,
        ),
        None => None,
    };
    let action = get("action").map(|(_, a, _)| (*a).to_owned());
    let old = match get("oldsig") {
        Some(&(_, oldsig_b64, oldsig_at)) => {
            let (Some((_, od, _)), Some((_, on, _))) = (get("olddest"), get("oldname")) else {
                return Err(err("oldsig needs olddest and oldname"));
            };
            let old_dest = Destination::from_base64(od)?;
            let old_name = validate_hostname(on)?;
            let oldsig = encoding::base64_decode(oldsig_b64)?;
            old_dest
                .verify(&line.as_bytes()[..oldsig_at], &oldsig)
                .map_err(|_| err("oldsig does not verify with olddest"))?;
            Some((old_name, old_dest))
        }
        None => None,
    };
    if action.as_deref() == Some("addsubdomain") {
        let Some((parent, _)) = &old else {
            return Err(err("addsubdomain needs olddest, oldname and oldsig"));
        };
        if !name.ends_with(&format!(".{parent}")) {
            return Err(err(format!("{name} is not a subdomain of {parent}")));
        }
    }
    Ok(Verified {
        name,
        destination,
        date,
        action,
        old,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CryptoType, SigType};

    #[test]
    fn hostnames() {
        assert_eq!(validate_hostname("Example.I2P").unwrap(), "example.i2p");
        assert!(validate_hostname("a-b.c.i2p").is_ok());
        for bad in [
            "example",
            ".i2p",
            "a..i2p",
            "-a.i2p",
            "a-.i2p",
            "a_b.i2p",
            "a b.i2p",
            "x.b32.i2p",
        ] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
        assert!(validate_hostname(&format!("{}.i2p", "a".repeat(64))).is_err());
        assert_eq!(parent_domain("a.b.i2p"), Some("b.i2p"));
        assert_eq!(parent_domain("b.i2p"), None);
    }

    #[test]
    fn register_and_verify_every_sig_type() {
        for t in SigType::ALL {
            let k = PrivateKeys::generate(t, CryptoType::ElGamal).unwrap();
            let line = register("Test.i2p", &k, 1_700_000_000).unwrap();
            assert!(line.starts_with("test.i2p="));
            assert!(line.contains("#!date=1700000000#sig="));
            let v = verify_registration(&line).unwrap();
            assert_eq!(v.name, "test.i2p");
            assert_eq!(&v.destination, k.destination());
            assert_eq!(v.date, Some(1_700_000_000));
            // any change breaks it
            let tampered = line.replace("date=1700000000", "date=1700000001");
            assert!(verify_registration(&tampered).is_err(), "{t}");
            let renamed = line.replacen("test.i2p", "tost.i2p", 1);
            assert!(verify_registration(&renamed).is_err(), "{t}");
        }
    }

    #[test]
    fn subdomains_need_both_signatures() {
        let parent = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        let child = PrivateKeys::generate(SigType::EcdsaP256, CryptoType::ElGamal).unwrap();
        let line = register_subdomain("www.test.i2p", &child, "test.i2p", &parent, 5).unwrap();
        let v = verify_registration(&line).unwrap();
        assert_eq!(v.action.as_deref(), Some("addsubdomain"));
        let (pn, pd) = v.old.unwrap();
        assert_eq!((pn.as_str(), &pd), ("test.i2p", parent.destination()));
        // a stranger's key as parent: the oldsig check fails
        let other = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        let forged = line.replace(
            &parent.destination().to_base64(),
            &other.destination().to_base64(),
        );
        assert!(verify_registration(&forged).is_err());
        assert!(register_subdomain("www.other.i2p", &child, "test.i2p", &parent, 5).is_err());
    }

    #[test]
    fn malformed_lines_are_errors() {
        let k = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
        let good = register("a.i2p", &k, 1).unwrap();
        let d = k.destination().to_base64();
        for bad in [
            String::new(),
            "a.i2p".into(),
            format!("a.i2p={d}"),
            format!("a.i2p={d}#!"),
            format!("a.i2p={d}#!sig"),
            format!("a.i2p={d}#!sig=AAAA"),
            format!("{good}#x=1"),
            format!("{good} "),
            good.replace("#!date=1", "#!date=x"),
            good.replace("#!date=1#", "#!date=1#date=1#"),
            "x".repeat(MAX_LINE_LEN + 1),
        ] {
            assert!(verify_registration(&bad).is_err(), "{bad}");
        }
        // the only-sig form of i2pd-tools regaddr (signature over NAME=DEST)
        let sig = encoding::base64_encode(&k.sign(format!("a.i2p={d}").as_bytes()).unwrap());
        let v = verify_registration(&format!("a.i2p={d}#!sig={sig}\n")).unwrap();
        assert_eq!(v.date, None);
    }
}
