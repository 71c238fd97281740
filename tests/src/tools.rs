//! The Python tools the tests run, pinned in `tests/requirements.txt` (moto server, cfn-lint),
//! installed at first use into a virtualenv under the target directory
//! (`<target>/fhir-pipes-tools/venv`), the way the HealthLake stand-in's `npm ci` is: a fresh
//! machine needs only `python3` with its `venv` module. The install runs under a lock
//! (`venv.lock`, test binaries run in parallel), and again when `requirements.txt` changes (its
//! hash is kept in `venv.stamp`). `FHIR_PIPES_PYTHON` names a Python that already has the tools
//! instead. A tool that cannot be had panics naming it and the command that failed: a test that
//! needs it never skips.

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The setting naming a Python that already has the tools of `tests/requirements.txt`.
pub const PYTHON_VAR: &str = "FHIR_PIPES_PYTHON";

/// How long a test waits for another one's install.
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// The Python interpreter and cfn-lint executable the tests use.
#[derive(Debug)]
struct PythonTools {
    python: PathBuf,
    cfn_lint: PathBuf,
}

/// The Python that runs moto (`<python> -m moto.server`). Panics, naming `tool`, when the tools
/// cannot be installed.
pub fn python(tool: &str) -> PathBuf {
    tools(tool).python.clone()
}

/// The `cfn-lint` executable. Panics when the tools cannot be installed.
pub fn cfn_lint() -> PathBuf {
    tools("cfn-lint").cfn_lint.clone()
}

fn tools(tool: &str) -> &'static PythonTools {
    // The outcome is kept, failure too: every test that needs the tools reports the same error
    // instead of trying the install again.
    static TOOLS: OnceLock<Result<PythonTools, String>> = OnceLock::new();
    let tools = TOOLS.get_or_init(|| match std::env::var_os(PYTHON_VAR).filter(|python| !python.is_empty()) {
        Some(python) => existing_python(PathBuf::from(python)),
        None => ensure_venv(),
    });
    tools.as_ref().unwrap_or_else(|error| panic!("{tool} (tests/requirements.txt) is not available: {error}"))
}

/// The tools of the Python `$FHIR_PIPES_PYTHON` names, checked.
fn existing_python(python: PathBuf) -> Result<PythonTools, String> {
    let hint = |e: String| {
        format!(
            "{e}\n{PYTHON_VAR}={} must name a Python that has `pip install -r tests/requirements.txt` done \
             (or be unset: the tests then install them)",
            python.display()
        )
    };
    run(Command::new(&python).args(["-c", "import moto.server, cfnlint"])).map_err(hint)?;
    // cfn-lint's script is in the interpreter's scripts folder (a venv's `bin/`), or in that of
    // its user scheme (`pip install --user`).
    let find = "import os, sysconfig; scripts = (sysconfig.get_path('scripts'), \
        sysconfig.get_path('scripts', os.name + '_user')); \
        print(next((p for p in (os.path.join(s, 'cfn-lint') for s in scripts) if os.access(p, os.X_OK)), ''))";
    let found = run(Command::new(&python).args(["-c", find])).map_err(hint)?;
    if found.trim().is_empty() {
        return Err(hint(format!("no cfn-lint executable in the scripts folders of {}", python.display())));
    }
    Ok(PythonTools { cfn_lint: PathBuf::from(found.trim()), python })
}

/// `<target>/fhir-pipes-tools/venv` with `tests/requirements.txt` installed, created or brought
/// up to date under a cross-process lock.
fn ensure_venv() -> Result<PythonTools, String> {
    let dir = target_dir().join("fhir-pipes-tools");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let venv = dir.join("venv");
    let tools = PythonTools { python: venv.join("bin/python"), cfn_lint: venv.join("bin/cfn-lint") };
    let requirements = crate::workspace_root().join("tests/requirements.txt");
    let wanted = std::fs::read(&requirements)
        .map(|text| format!("{:016x}\n", fnv1a(&text)))
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = dir.join("venv.stamp");
    let up_to_date = || {
        std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && tools.python.exists() && tools.cfn_lint.exists()
    };

    let _lock = lock(&dir.join("venv.lock"))?;
    if up_to_date() {
        return Ok(tools);
    }
    // The stamp goes first and comes back last: an interrupted install is redone.
    let _ = std::fs::remove_file(&stamp);
    eprintln!("installing tests/requirements.txt (moto server, cfn-lint) into {} …", venv.display());
    let mut create = Command::new("python3");
    create.args(["-m", "venv", "--clear"]).arg(&venv);
    run(&mut create).map_err(|e| {
        format!("{e}\nthe tests need Python 3 with its venv module (Debian/Ubuntu: apt-get install python3-venv), or {PYTHON_VAR} set to a Python that has `pip install -r tests/requirements.txt`")
    })?;
    let mut install = Command::new(&tools.python);
    install
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "-r"])
        .arg(&requirements);
    run(&mut install)?;
    std::fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(tools)
}

/// The target directory the running test was built into (`<target>/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("the profile folder");
    profile.parent().expect("the target folder").to_path_buf()
}

/// Holds an exclusive lock on `path` (created when missing) until dropped. The OS releases it
/// when the process ends, so a killed test run leaves no stale lock.
pub fn lock(path: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "waited {LOCK_TIMEOUT:?} for another test's install ({} is locked)",
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// Runs `command`; its stdout, or an error naming it with its output.
fn run(command: &mut Command) -> Result<String, String> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| {
            let part = part.to_string_lossy();
            if part.contains(' ') { format!("'{part}'") } else { part.into_owned() }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("`{shown}` could not be run: {e}"))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(format!(
        "`{shown}` failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// 64-bit FNV-1a: a hash that stays the same across Rust versions (std's may not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
