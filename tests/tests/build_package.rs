//! Packaging: reproducible zips (the same binary always gives the same bytes and SHA-256), the artifact layout
//! the local engine and promotion rely on, and the glibc-floor check read from a real binary's ELF version needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deployer::build::{BuildRequest, Release};
use deployer::elf::{GlibcVersion, glibc_floor};
use deployer::ui::{Confirmation, RecordingUi};
use stack::{Architecture, EnvKind, FunctionName};

fn request(target_dir: &Path, kind: EnvKind) -> BuildRequest {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    BuildRequest {
        target_dir: target_dir.to_path_buf(),
        env: "test".into(),
        kind,
        architecture: Architecture::X86_64,
        template_sha256: "0".repeat(64),
        cargo: "cargo".into(),
        tools_dir: repo.join(".local/tools"),
        checkout: repo.clone(),
        repo_root: repo,
    }
}

/// Copies `source` to a fresh file per function (new inode, new mtime) and packages them.
fn package_copy(dir: &Path, source: &[u8], kind: EnvKind) -> deployer::Result<Release> {
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    let mut binaries = BTreeMap::new();
    for f in FunctionName::ALL {
        let p = bins.join(f.as_str());
        std::fs::write(&p, source).unwrap();
        binaries.insert(f, p);
    }
    deployer::build::package(
        &request(&dir.join("target"), kind),
        &binaries,
        &RecordingUi::new(Confirmation::No),
    )
}

#[test]
fn the_same_binary_gives_byte_identical_zips_and_the_same_digest() {
    let binary = std::fs::read("/bin/ls").unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = package_copy(a.path(), &binary, EnvKind::Local).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a different second for any timestamp to leak into
    let second = package_copy(b.path(), &binary, EnvKind::Local).unwrap();
    for f in FunctionName::ALL {
        let (za, zb) = (
            std::fs::read(first.zip_path(f)).unwrap(),
            std::fs::read(second.zip_path(f)).unwrap(),
        );
        assert_eq!(za, zb, "{f}: zips are byte-identical");
        assert_eq!(first.manifest.functions[&f], second.manifest.functions[&f]);
        assert_eq!(
            first.manifest.functions[&f].zip_sha256,
            deployer::package::sha256_hex(&za)
        );
        assert_eq!(
            first.manifest.functions[&f].s3_key,
            format!("functions/{f}/{}.zip", deployer::package::sha256_hex(&za))
        );
    }
    assert_eq!(
        first.digest(),
        second.digest(),
        "same inputs, same release digest"
    );
}

#[test]
fn artifacts_follow_the_dist_layout() {
    let dir = tempfile::tempdir().unwrap();
    let release = package_copy(
        dir.path(),
        &std::fs::read("/bin/true").unwrap(),
        EnvKind::Local,
    )
    .unwrap();
    let checkout = deployer::build::checkout_key(&request(dir.path(), EnvKind::Local).repo_root);
    let dist = dir
        .path()
        .join("target/xtask/dist")
        .join(checkout)
        .join("test");
    assert_eq!(release.dist_dir, dist);
    for f in FunctionName::ALL {
        let bootstrap = dist.join(f.as_str()).join("bootstrap");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&bootstrap).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(dist.join(f.as_str()).join(format!("{f}.zip")).exists());
    }
    let on_disk: deployer::manifest::ReleaseManifest =
        serde_json::from_slice(&std::fs::read(dist.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, release.manifest);
    assert_eq!(on_disk.schema, 1);
    assert_eq!(
        on_disk.cargo_lock_sha256.as_ref().map(String::len),
        Some(64)
    );
    assert_eq!(
        on_disk.git_revision.len(),
        40,
        "built inside the git checkout"
    );
}

/// The highest NUL-delimited `GLIBC_2.N` string (as the dynamic string table stores version names), found
/// without parsing the ELF.
fn max_version_string(bytes: &[u8]) -> GlibcVersion {
    let mut best = GlibcVersion(0, 0);
    for (i, w) in bytes.windows(9).enumerate() {
        if w == b"\0GLIBC_2." {
            let rest = &bytes[i + 9..];
            let digits: String = rest
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|b| *b as char)
                .collect();
            let terminated = rest
                .get(digits.len())
                .is_some_and(|b| *b == 0 || *b == b'.');
            if let (true, Ok(minor)) = (terminated, digits.parse()) {
                best = best.max(GlibcVersion(2, minor));
            }
        }
    }
    best
}

#[test]
fn the_glibc_floor_of_this_test_binary_is_read_from_its_version_needs() {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let floor = glibc_floor(&exe)
        .unwrap()
        .expect("the test binary links glibc dynamically");
    assert_eq!(floor, max_version_string(&exe));
    assert!(floor >= GlibcVersion(2, 2));
}

#[test]
fn aws_packaging_refuses_a_binary_needing_a_newer_glibc_than_lambda() {
    let mut binary = std::fs::read("/bin/true").unwrap();
    let floor = glibc_floor(&binary).unwrap().unwrap();
    // Raise the requirement in place: rewrite the newest version name (same length) to GLIBC_2.99.
    let needle = format!("GLIBC_{floor}");
    assert_eq!(
        needle.len(),
        10,
        "a two-digit minor version, e.g. GLIBC_2.34"
    );
    let at = binary
        .windows(10)
        .position(|w| w == needle.as_bytes())
        .unwrap();
    binary[at..at + 10].copy_from_slice(b"GLIBC_2.99");
    assert_eq!(glibc_floor(&binary).unwrap(), Some(GlibcVersion(2, 99)));

    let dir = tempfile::tempdir().unwrap();
    let err = package_copy(dir.path(), &binary, EnvKind::Aws).unwrap_err();
    assert!(matches!(err, deployer::Error::InvalidInput(_)), "{err}");
    assert!(
        err.to_string()
            .contains("needs glibc 2.99, newer than the 2.34 of the Lambda runtime"),
        "{err}"
    );
    // The same binary is fine for the local environment (it runs on this host).
    let dir = tempfile::tempdir().unwrap();
    assert!(package_copy(dir.path(), &binary, EnvKind::Local).is_ok());
    // And a floor at or below Lambda's passes the check.
    assert!(deployer::build::check_floor(FunctionName::Query, Some(GlibcVersion(2, 26))).is_ok());
    assert!(deployer::build::check_floor(FunctionName::Query, Some(GlibcVersion(2, 34))).is_ok());
}

/// A local release is zipped at the fast deflate level (`dev` packages on every save; level 6 of a 43 MB debug
/// binary took 2 s of a 4 s edit-to-live round), and the two levels really differ.
#[test]
fn local_releases_deflate_at_the_fast_level() {
    use deployer::package::{Level, reproducible_zip};
    let binary = std::fs::read("/bin/ls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let release = package_copy(dir.path(), &binary, EnvKind::Local).unwrap();
    let fast = reproducible_zip(&binary, Level::Fast).unwrap();
    let strong = reproducible_zip(&binary, Level::Release).unwrap();
    assert!(
        strong.len() < fast.len(),
        "level 6 compresses better than level 1"
    );
    for f in FunctionName::ALL {
        assert_eq!(
            std::fs::read(release.zip_path(f)).unwrap(),
            fast,
            "{f}: the local zip is the fast-level zip"
        );
    }
}

/// One target directory serving several checkouts (`build.target-dir`, a shared `CARGO_TARGET_DIR`): each
/// checkout's build of an environment has a directory of its own, so one checkout's engine never runs another's
/// binaries; and packagings that race on one directory (two deploys of one environment) all succeed, each file
/// replaced whole.
#[test]
fn checkouts_sharing_a_target_dir_keep_their_own_builds_and_racing_packagings_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a/work"), dir.path().join("b/work"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let target = dir.path().join("target");
    let (key_a, key_b) = (
        deployer::build::checkout_key(&a),
        deployer::build::checkout_key(&b),
    );
    assert_ne!(key_a, key_b, "same directory name, different checkouts");
    assert!(key_a.starts_with("work-"), "{key_a}");
    assert_eq!(
        key_a,
        deployer::build::checkout_key(&dir.path().join("a/../a/work")),
        "one checkout, however its path is spelled"
    );
    assert_ne!(
        deployer::build::dist_dir(&target, &a, "local"),
        deployer::build::dist_dir(&target, &b, "local")
    );

    let bins = dir.path().join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    let mut binaries = BTreeMap::new();
    for f in FunctionName::ALL {
        let p = bins.join(f.as_str());
        std::fs::write(&p, std::fs::read("/bin/true").unwrap()).unwrap();
        binaries.insert(f, p);
    }
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (req, binaries) = (request(&target, EnvKind::Local), binaries.clone());
            std::thread::spawn(move || {
                deployer::build::package(&req, &binaries, &RecordingUi::new(Confirmation::No))
            })
        })
        .collect();
    let digests: Vec<String> = racers
        .into_iter()
        .map(|t| t.join().unwrap().expect("a racing packaging").digest())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let dist =
        deployer::build::dist_dir(&target, &request(&target, EnvKind::Local).repo_root, "test");
    let left: Vec<String> = walk(&dist)
        .into_iter()
        .filter(|p| p.contains(".new-"))
        .collect();
    assert!(left.is_empty(), "no staging file left behind: {left:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}
