//! The workspace's binaries, built on demand into the target directory the tests run from
//! (another crate's binaries are not built for these tests by cargo itself).

use std::{path::PathBuf, process::Command, sync::Mutex};

static BUILD: Mutex<()> = Mutex::new(());

/// The target directory and profile folder of the running test (`<target>/<profile>/deps/<test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the deps folder");
    deps.parent().expect("the profile folder").to_path_buf()
}

/// Builds `bin` of `package` (same profile and target directory as the tests) and returns its
/// path. Panics with cargo's output when the build fails: a test that needs it never skips.
/// It builds what `cargo test --workspace` builds, so features resolve the same way and nothing
/// is rebuilt (a `-p <package>` build resolves features alone and rebuilt every dependency).
pub fn cargo_bin(package: &str, bin: &str) -> PathBuf {
    let _serialised = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().expect("the target folder");
    let release = profile_dir.file_name().is_some_and(|name| name == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--workspace", "--all-targets", "--target-dir"])
        .arg(target_dir)
        .current_dir(crate::workspace_root());
    if release {
        command.arg("--release");
    }
    let output = command.output().unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(
        output.status.success(),
        "`cargo build --workspace --all-targets` (for {package}'s {bin}) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing after cargo build", path.display());
    path
}

/// The `fhir-pipes` command line.
pub fn fhir_pipes() -> PathBuf {
    cargo_bin("fhir-pipes", "fhir-pipes")
}
