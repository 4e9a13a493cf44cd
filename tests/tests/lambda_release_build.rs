//! The real AWS build, in the suite: the three functions built with the pinned cargo-lambda for the Lambda
//! target (release profile, `x86_64-unknown-linux-gnu.2.26`) through the deployer's own `build::build`, exactly
//! as `cargo xtask deploy --env <aws env>` builds them. It checks what AWS depends on and no other test can:
//! the zips of the real release binaries are byte-identical from one packaging to the next (so the content
//! address and `CodeSha256` name the code), every binary's glibc floor, read from its ELF version needs (and
//! read again by binutils' `readelf`, an independent reader), is one Lambda's runtime has, and each zip stays
//! under the size budget. The sizes are printed (`--nocapture`).
//!
//! The first build goes to the workspace target dir (`target/lambda/...`, cached by CI with the rest of the target
//! dir), the second to a target dir of its own (`target/lambda-reproduction`), and cargo-lambda to the tools dir.
//! Before the second build the workspace's own crates (domain, service and the three functions) are removed from
//! its target dir, so each run compiles them again from source in a directory the first build never touched: the
//! identical zips prove the compilation reproducible across target directories, not only the zipping. On a cold
//! cache the two directories compile every dependency separately too; on a warm one the second keeps its own
//! compiled dependencies (recompiling the AWS SDK would add minutes to every run).
//!
//! A second test reads the functions' dependency graph (`cargo tree`, offline) and checks it links one HTTP/TLS
//! stack and one crypto library: the size budget depends on it, and a default feature of a new dependency
//! can quietly bring the second stack back.

use std::collections::BTreeSet;

use deployer::build::{BuildRequest, Release, dist_dir};
use deployer::elf::{GlibcVersion, LAMBDA_GLIBC, glibc_floor};
use deployer::ui::{Confirmation, RecordingUi};
use stack::{Architecture, EnvKind, FunctionName};

/// Each zip must stay below this: it is what every deploy uploads and every cold start downloads.
const ZIP_BUDGET_BYTES: u64 = 3 * 1024 * 1024;

fn request(env: &str) -> BuildRequest {
    request_for(env, Architecture::X86_64)
}

fn request_for(env: &str, architecture: Architecture) -> BuildRequest {
    let repo = tests::repo_root();
    BuildRequest {
        target_dir: deployer::build::default_target_dir(&repo),
        env: env.into(),
        kind: EnvKind::Aws,
        architecture,
        template_sha256: "0".repeat(64),
        cargo: env!("CARGO").into(),
        tools_dir: deployer::build::tools_dir(&repo),
        checkout: repo.clone(),
        repo_root: repo,
    }
}

/// Builds and packages into `<target>/xtask/dist/<checkout>/<env>`, starting from an empty dist dir so the packaging
/// really zips (it keeps an unchanged function's previous zip otherwise).
fn build_fresh(req: BuildRequest) -> Release {
    let dist = dist_dir(&req.target_dir, &req.checkout, &req.env);
    if dist.exists() {
        std::fs::remove_dir_all(&dist).unwrap();
    }
    let ui = RecordingUi::new(Confirmation::No);
    deployer::build::build(&req, &ui).unwrap_or_else(|e| panic!("the release build failed: {e}"))
}

/// The workspace's own crates in the functions' graph.
const OWN_CRATES: [&str; 5] = ["domain", "service", "command", "query", "projector"];

/// `cargo clean` of the release build of [`OWN_CRATES`] for the Lambda target in `req`'s target dir, checked:
/// afterwards no function binary of that build is left, so the next build cannot be cargo's no-op.
fn clean_own_crates(req: &BuildRequest) {
    if !req.target_dir.exists() {
        return;
    }
    let triple = "x86_64-unknown-linux-gnu";
    let mut cmd = deployer::cargo::command(env!("CARGO"));
    cmd.current_dir(&req.repo_root)
        .env("CARGO_TARGET_DIR", &req.target_dir)
        .args(["clean", "--release", "--target", triple]);
    for c in OWN_CRATES {
        cmd.args(["-p", c]);
    }
    let out = cmd.output().expect("cargo clean runs");
    assert!(
        out.status.success(),
        "cargo clean failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in FunctionName::ALL {
        let built = req.target_dir.join(triple).join("release").join(f.as_str());
        assert!(
            !built.exists(),
            "{} is still there after cargo clean",
            built.display()
        );
    }
}

#[test]
fn the_lambda_release_build_gives_reproducible_small_zips_that_run_on_lambdas_glibc() {
    let first = build_fresh(request("lambda-release-a"));
    // The second build compiles in a target directory of its own: nothing of the first build's compilation
    // is reused. It is kept (under the first, so CI caches it too) for its dependencies; the workspace's own
    // crates are removed from it first, so they are compiled again on every run.
    let mut second = request("lambda-release-b");
    second.target_dir = second.target_dir.join("lambda-reproduction");
    clean_own_crates(&second);
    let second = build_fresh(second);
    assert_ne!(first.dist_dir, second.dist_dir);
    for f in FunctionName::ALL {
        let (za, zb) = (
            std::fs::read(first.zip_path(f)).unwrap(),
            std::fs::read(second.zip_path(f)).unwrap(),
        );
        assert!(za == zb, "{f}: two packagings of the release build differ");
        let artifact = &first.manifest.functions[&f];
        assert_eq!(artifact, &second.manifest.functions[&f]);
        assert_eq!(artifact.zip_sha256, deployer::package::sha256_hex(&za));

        let binary = std::fs::read(first.dist_dir.join(f.as_str()).join("bootstrap")).unwrap();
        assert_eq!(elf_machine(&binary), EM_X86_64, "{f}: not an x86-64 binary");
        let floor = glibc_floor(&binary)
            .unwrap()
            .unwrap_or_else(|| panic!("{f}: the Lambda build links glibc dynamically"));
        assert!(
            floor <= GlibcVersion(2, 34) && floor <= LAMBDA_GLIBC,
            "{f}: needs glibc {floor}, newer than Lambda's {LAMBDA_GLIBC}"
        );
        assert_eq!(
            artifact.glibc_floor.as_deref(),
            Some(floor.to_string().as_str())
        );
        // The same floor read by another reader: binutils' readelf, not the ELF code under test.
        let bootstrap = first.dist_dir.join(f.as_str()).join("bootstrap");
        assert_eq!(
            glibc_floor_by_readelf(&bootstrap),
            floor.to_string(),
            "{f}: readelf and deployer::elf disagree on the glibc floor"
        );
        println!(
            "{f:<10} zip {:>9} bytes  binary {:>9} bytes  glibc {floor}",
            za.len(),
            binary.len()
        );
        assert!(
            artifact.zip_size < ZIP_BUDGET_BYTES,
            "{f}: the zip is {} bytes, over the {ZIP_BUDGET_BYTES}-byte budget; find what grew with \
             `cargo tree -p {f} -e normal` and `cargo xtask bench release` (see docs/benchmarks.md)",
            artifact.zip_size
        );
    }
    assert_eq!(first.digest(), second.digest());
}

/// `e_machine` of an ELF header: what processor the binary is for.
fn elf_machine(binary: &[u8]) -> u16 {
    assert_eq!(&binary[..4], b"\x7fELF", "an ELF file");
    assert_eq!(binary[5], 1, "little-endian");
    u16::from_le_bytes([binary[18], binary[19]])
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// arm64 (Graviton), the default architecture of an `aws` environment: cargo-lambda cross-builds it with zig,
/// and it meets what the x86_64 build meets: ELF machine AArch64, Lambda's glibc (read by the deployer and by
/// readelf), and the zip budget. (That it starts, and how fast under qemu-user, is `bench release
/// --architecture arm64`, run by `bench/tests/figures.rs`.)
#[test]
fn the_arm64_release_build_is_aarch64_within_lambdas_glibc_and_the_zip_budget() {
    let arm = build_fresh(request_for("lambda-release-arm64", Architecture::Arm64));
    for f in FunctionName::ALL {
        let artifact = &arm.manifest.functions[&f];
        assert_eq!(artifact.architecture, Architecture::Arm64);
        let bootstrap = arm.dist_dir.join(f.as_str()).join("bootstrap");
        let binary = std::fs::read(&bootstrap).unwrap();
        assert_eq!(
            elf_machine(&binary),
            EM_AARCH64,
            "{f}: not an AArch64 binary"
        );
        let floor = glibc_floor(&binary)
            .unwrap()
            .unwrap_or_else(|| panic!("{f}: the Lambda build links glibc dynamically"));
        assert!(floor <= LAMBDA_GLIBC, "{f}: needs glibc {floor}");
        assert_eq!(
            glibc_floor_by_readelf(&bootstrap),
            floor.to_string(),
            "{f}: readelf and deployer::elf disagree on the glibc floor"
        );
        println!(
            "arm64 {f:<10} zip {:>9} bytes  binary {:>9} bytes  glibc {floor}",
            artifact.zip_size,
            binary.len()
        );
        assert!(
            artifact.zip_size < ZIP_BUDGET_BYTES,
            "{f}: the arm64 zip is {} bytes, over the {ZIP_BUDGET_BYTES}-byte budget",
            artifact.zip_size
        );
    }
}

/// The highest `GLIBC_x.y` among the version needs (`.gnu.version_r`) of the ELF at `path`, as binutils'
/// `readelf` prints them: an independent check of `deployer::elf::glibc_floor`.
fn glibc_floor_by_readelf(path: &std::path::Path) -> String {
    let out = std::process::Command::new("readelf")
        .args(["--version-info", "--wide"])
        .arg(path)
        .output()
        .expect("readelf runs (binutils: apt-get install binutils)");
    assert!(
        out.status.success(),
        "readelf {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let needs = text
        .split_once("Version needs section")
        .unwrap_or_else(|| {
            panic!(
                "{}: readelf shows no version needs:\n{text}",
                path.display()
            )
        })
        .1;
    needs
        .split("Name: GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version = rest.split_whitespace().next()?;
            let (major, minor) = version.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        })
        .max()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .unwrap_or_else(|| panic!("{}: no GLIBC_ version need:\n{text}", path.display()))
}

/// `(name, version)` of every package in the normal (run-time) dependency graph of the three functions, resolved
/// for the Lambda target with the features a build of just those three gets.
fn function_dependencies() -> BTreeSet<(String, String)> {
    let mut cmd = deployer::cargo::command(env!("CARGO"));
    cmd.current_dir(tests::repo_root()).args([
        "tree",
        "--offline",
        "--locked",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--target",
        "x86_64-unknown-linux-gnu",
    ]);
    for f in FunctionName::ALL {
        cmd.args(["-p", f.as_str()]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

#[test]
fn the_functions_link_one_http_tls_stack_and_one_crypto_library() {
    let deps = function_dependencies();
    let versions = |name: &str| -> Vec<&str> {
        deps.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert!(
        versions("command").len() == 1 && versions("aws-sdk-dynamodb").len() == 1,
        "cargo tree output not understood: {deps:?}"
    );
    for name in ["hyper", "rustls", "hyper-rustls", "h2", "http"] {
        assert!(
            versions(name).len() <= 1,
            "the functions link {name} {:?}: two HTTP/TLS stacks (a legacy `rustls` feature of an AWS SDK crate?)",
            versions(name)
        );
    }
    for (name, legacy) in [
        ("hyper", "0."),
        ("rustls", "0.21"),
        ("hyper-rustls", "0.24"),
    ] {
        assert!(
            !versions(name).iter().any(|v| v.starts_with(legacy)),
            "the functions still link {name} {legacy}x (the SDK's legacy client): {:?}",
            versions(name)
        );
    }
    let crypto: Vec<&str> = ["ring", "aws-lc-rs", "aws-lc-sys", "openssl"]
        .into_iter()
        .filter(|c| !versions(c).is_empty())
        .collect();
    assert!(
        crypto == ["ring"] || crypto == ["aws-lc-rs", "aws-lc-sys"],
        "the functions must link exactly one crypto library, found {crypto:?}"
    );
}
