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
/// made by [`write_su3`]-style tools for a private network (tests, devnets).
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

/// Reseeds over HTTPS from `hosts` (empty: emissary's built-in list of reseed servers).
/// Bundles must be signed by a reseed signer emissary knows.
///
/// # Errors
/// [`EmbeddedError::Reseed`] when no host delivered routers.
pub async fn https(hosts: &[String]) -> Result<Vec<ReseedRouterInfo>, EmbeddedError> {
    let hosts = (!hosts.is_empty()).then(|| hosts.to_vec());
    Reseeder::reseed::<Runtime>(hosts, true)
        .await
        .map_err(|e| EmbeddedError::Reseed(format!("HTTPS: {e}")))
}
