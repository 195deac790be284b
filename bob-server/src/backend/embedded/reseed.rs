//! Where an embedded router learns its first routers: `.su3` bundles and routerInfo
//! files (or directories of them) given with `--router-reseed-file`, and HTTPS reseed
//! hosts when the netDb is small. Also writes a devnet's RouterInfos as such files, so
//! that another router can be reseeded from them.

use std::path::{Path, PathBuf};

use emissary_core::primitives::RouterInfo;
use emissary_util::reseeder::Reseeder;
use emissary_util::runtime::tokio::Runtime;
use emissary_util::su3::{ReseedRouterInfo, Su3};

use super::EmbeddedError;

/// Largest `.su3` bundle read (the real ones are about 100 kB).
pub const MAX_SU3_BYTES: u64 = 16 * 1024 * 1024;
/// Largest routerInfo file read (real ones are under 2 kB).
pub const MAX_ROUTER_INFO_BYTES: u64 = 64 * 1024;
/// Largest `--router-reseed-ca` file read (a system's whole bundle is about 200 kB).
pub const MAX_CA_BYTES: u64 = 1024 * 1024;
/// Most files read from one directory tree.
pub const MAX_FILES: usize = 10_000;

/// Reads every path: a `.su3` bundle (its signature checked against the reseed signers
/// emissary knows unless `verify_su3` is off), a routerInfo file, or a directory holding
/// them (two levels deep, like a netDb's `r?/` folders).
///
/// # Errors
/// [`EmbeddedError::Reseed`] naming the file that cannot be read or parsed.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<ReseedRouterInfo>, EmbeddedError> {
    load_files_verified(paths, true)
}

/// [`load_files`] with the `.su3` signature check chosen by the caller: off for bundles
/// such as [`su3_bundle`] writes for a private network (tests, devnets).
///
/// # Errors
/// As [`load_files`].
pub fn load_files_verified(
    paths: &[PathBuf],
    verify_su3: bool,
) -> Result<Vec<ReseedRouterInfo>, EmbeddedError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect(path, 2, &mut files)?;
            files.sort();
            for f in files {
                if is_su3(&f) || is_router_info_name(&f) {
                    load_one(&f, verify_su3, &mut out)?;
                }
            }
        } else {
            load_one(path, verify_su3, &mut out)?;
        }
    }
    Ok(out)
}

fn collect(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> Result<(), EmbeddedError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() && depth > 0 {
            collect(&p, depth - 1, out)?;
        } else if ft.is_file() {
            if out.len() >= MAX_FILES {
                return Err(EmbeddedError::Reseed(format!(
                    "{}: more than {MAX_FILES} files",
                    dir.display()
                )));
            }
            out.push(p);
        }
    }
    Ok(())
}

fn is_su3(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("su3"))
}

fn is_router_info_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("routerInfo-") && n.ends_with(".dat"))
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, EmbeddedError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)
        .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(EmbeddedError::Reseed(format!(
            "{}: larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

fn load_one(
    path: &Path,
    verify_su3: bool,
    out: &mut Vec<ReseedRouterInfo>,
) -> Result<(), EmbeddedError> {
    if is_su3(path) {
        let bytes = read_bounded(path, MAX_SU3_BYTES)?;
        let infos = Su3::parse_reseed(&bytes, verify_su3).ok_or_else(|| {
            EmbeddedError::Reseed(format!(
                "{}: not a valid reseed .su3{}",
                path.display(),
                if verify_su3 {
                    " (or not signed by a known reseed signer)"
                } else {
                    ""
                }
            ))
        })?;
        out.extend(infos);
        return Ok(());
    }
    let bytes = read_bounded(path, MAX_ROUTER_INFO_BYTES)?;
    let name = router_info_name(&bytes)
        .ok_or_else(|| EmbeddedError::Reseed(format!("{}: not a RouterInfo", path.display())))?;
    out.push(ReseedRouterInfo {
        name,
        router_info: bytes,
    });
    Ok(())
}

/// `routerInfo-<base64 router hash>.dat` for a serialized RouterInfo; `None` if it does
/// not parse.
pub fn router_info_name(bytes: &[u8]) -> Option<String> {
    let ri = RouterInfo::parse::<Runtime>(bytes).ok()?;
    let hash = ri.identity.id().to_vec();
    Some(format!(
        "routerInfo-{}.dat",
        keytools::encoding::base64_encode(&hash)
    ))
}

/// The transport addresses a serialized RouterInfo publishes (NTCP2, SSU2); `None` if it
/// does not parse. A router without `--router-host` on the real network publishes none.
pub fn published_addresses(router_info: &[u8]) -> Option<Vec<std::net::SocketAddr>> {
    let ri = RouterInfo::parse::<Runtime>(router_info).ok()?;
    Some(
        ri.addresses
            .iter()
            .filter_map(emissary_core::primitives::RouterAddress::socket_address)
            .collect(),
    )
}

/// Writes each RouterInfo as `dir/routerInfo-<hash>.dat` (what `--router-reseed-file DIR`
/// reads back). Returns the files written.
///
/// # Errors
/// An unparsable RouterInfo or a failed write.
pub fn write_router_infos(dir: &Path, infos: &[Vec<u8>]) -> Result<Vec<PathBuf>, EmbeddedError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for ri in infos {
        let name =
            router_info_name(ri).ok_or_else(|| EmbeddedError::Reseed("not a RouterInfo".into()))?;
        let path = dir.join(name);
        std::fs::write(&path, ri)
            .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// Reseeds over HTTPS from emissary's built-in list of reseed servers (with the
/// certificate emissary pins for one of them). Bundles must be signed by a reseed signer
/// emissary knows.
///
/// # Errors
/// [`EmbeddedError::Reseed`] when no host delivered routers.
pub async fn https(hosts: &[String]) -> Result<Vec<ReseedRouterInfo>, EmbeddedError> {
    let hosts = (!hosts.is_empty()).then(|| hosts.to_vec());
    Reseeder::reseed::<Runtime>(hosts, true)
        .await
        .map_err(|e| EmbeddedError::Reseed(format!("HTTPS: {e}")))
}

/// How long one reseed host may take (connect, TLS, bundle).
const HTTPS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reseeds over HTTPS from the given `hosts` (`https://host[:port]/`, each asked for
/// `i2pseeds.su3`, in order, until one delivers routers), trusting the system's roots
/// and the certificates of the PEM file `ca` (`--router-reseed-ca`: a private network's
/// own reseed server, or a test's). With `verify_su3`, bundles must be signed by a
/// reseed signer emissary knows (the real network); private networks have no such
/// signer, and there the TLS certificate is what vouches for the host.
///
/// Written here rather than with emissary's `Reseeder`, which takes no extra CA and
/// always checks the signer; same client (reqwest, native TLS) and request.
///
/// # Errors
/// [`EmbeddedError::Reseed`]: an unreadable CA file, or no host delivered routers (each
/// host's failure named).
pub async fn https_from(
    hosts: &[String],
    ca: Option<&Path>,
    verify_su3: bool,
) -> Result<Vec<ReseedRouterInfo>, EmbeddedError> {
    let mut builder = reqwest::Client::builder()
        .timeout(HTTPS_TIMEOUT)
        .https_only(true)
        // reseed servers answer wget-like clients; the same header emissary sends
        .user_agent("Wget/1.11.4");
    if let Some(ca) = ca {
        let pem = read_bounded(ca, MAX_CA_BYTES)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| EmbeddedError::Reseed(format!("{}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(EmbeddedError::Reseed(format!(
                "{}: no PEM certificate in it",
                ca.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| EmbeddedError::Reseed(format!("HTTPS client: {e}")))?;
    let mut failures = Vec::new();
    for host in hosts {
        let url = format!("{}/i2pseeds.su3", host.trim_end_matches('/'));
        match fetch_su3(&client, &url, verify_su3).await {
            Ok(infos) if !infos.is_empty() => return Ok(infos),
            Ok(_) => failures.push(format!("{url}: no routers in the bundle")),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    if failures.is_empty() {
        failures.push("no reseed host given".to_owned());
    }
    Err(EmbeddedError::Reseed(format!(
        "HTTPS: {}",
        failures.join("; ")
    )))
}

/// One host's bundle, at most [`MAX_SU3_BYTES`].
async fn fetch_su3(
    client: &reqwest::Client,
    url: &str,
    verify_su3: bool,
) -> Result<Vec<ReseedRouterInfo>, String> {
    // the error's source chain names the TLS problem (an unknown issuer, say)
    let text = |e: &dyn std::error::Error| {
        let mut s = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    };
    let mut response = client.get(url).send().await.map_err(|e| text(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| text(&e))? {
        if (body.len() + chunk.len()) as u64 > MAX_SU3_BYTES {
            return Err(format!("bundle larger than {MAX_SU3_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Su3::parse_reseed(&body, verify_su3).ok_or_else(|| {
        if verify_su3 {
            "not a valid reseed .su3 (or not signed by a known reseed signer)".to_owned()
        } else {
            "not a valid reseed .su3".to_owned()
        }
    })
}

/// Signature type written in [`su3_bundle`]'s header (RSA-4096-SHA512, as real bundles).
const SU3_SIG_TYPE: u16 = 6;
/// Its signature length; [`su3_bundle`] writes zeros there.
const SU3_SIG_LEN: u16 = 512;

/// An **unsigned** reseed `.su3` bundle of `infos` (serialized RouterInfos), as a
/// private network's reseed server or a `--router-reseed-file` may serve it: a zip of
/// `routerInfo-<hash>.dat` files in the su3 container, the signature zeroed. Accepted
/// only where bundles are not checked against emissary's signers (private net ids).
///
/// # Errors
/// [`EmbeddedError::Reseed`] for a RouterInfo that does not parse.
pub fn su3_bundle(infos: &[Vec<u8>]) -> Result<Vec<u8>, EmbeddedError> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let zip_err = |e: &dyn std::fmt::Display| EmbeddedError::Reseed(format!("su3 zip: {e}"));
    for ri in infos {
        let name =
            router_info_name(ri).ok_or_else(|| EmbeddedError::Reseed("not a RouterInfo".into()))?;
        zip.start_file(name, options).map_err(|e| zip_err(&e))?;
        zip.write_all(ri).map_err(|e| zip_err(&e))?;
    }
    let content = zip.finish().map_err(|e| zip_err(&e))?.into_inner();
    let version = b"0000000000000000"; // 16 bytes, the shortest allowed
    let signer = b"bob-server-devnet";
    let mut out = Vec::with_capacity(40 + 16 + signer.len() + content.len() + 512);
    out.extend_from_slice(b"I2Psu3");
    out.push(0); // unused
    out.push(0); // su3 format version
    out.extend_from_slice(&SU3_SIG_TYPE.to_be_bytes());
    out.extend_from_slice(&SU3_SIG_LEN.to_be_bytes());
    out.push(0);
    out.push(version.len() as u8);
    out.push(0);
    out.push(signer.len() as u8);
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.push(0);
    out.push(0); // file type: zip
    out.push(0);
    out.push(3); // content type: reseed data
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(version);
    out.extend_from_slice(signer);
    out.extend_from_slice(&content);
    out.resize(out.len() + usize::from(SU3_SIG_LEN), 0);
    Ok(out)
}
