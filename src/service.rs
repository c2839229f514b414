//! The systemd user unit: its text from the configuration (pure: escaping per
//! systemd.syntax, the paths the service may write), and `install-service` /
//! `uninstall-service`, which write it, check it and remove it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::load::Loaded;
use crate::config::{Config, Origin};
use crate::dirs::Dirs;
use crate::render::targets::resolve;

/// The unit's name when installed in the default place.
pub const UNIT_NAME: &str = "mcp-credd.service";

/// What the unit says, decided from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitSpec {
    pub bin: PathBuf,
    /// The global arguments before `daemon`: the configuration source, as absolute paths.
    pub args: Vec<String>,
    /// Directories the service may write (the tokens directory, each editor file's).
    pub rw_paths: Vec<PathBuf>,
    /// `Type=notify-reload` (systemd ≥ 253) instead of `Type=notify` + `ExecReload=`.
    pub notify_reload: bool,
    /// The user's `XDG_CONFIG_HOME`, passed on so that the service finds the secrets file,
    /// provider files and editor files where the user's shell does.
    pub xdg_config_home: Option<PathBuf>,
}

/// Why a path cannot go into a unit file as it is.
fn unit_safe(p: &str) -> Result<(), String> {
    if let Some(c) = p.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the path {p:?} contains the control character {c:?}, which a systemd unit file cannot hold; use a path without it"
        ));
    }
    if p.contains(['"', '\\']) {
        return Err(format!(
            "the path {p:?} contains a quote or backslash, which mcp-credd does not write into a unit file; use a path without them"
        ));
    }
    Ok(())
}

fn utf8(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| {
        format!(
            "the path {} is not UTF-8 and cannot go into a unit file; use another path",
            p.display()
        )
    })
}

/// One `ExecStart=` word: double-quoted, `%` and `$` doubled (systemd would expand
/// specifiers and variables), refused when it holds what a unit line cannot carry.
pub fn exec_word(s: &str) -> Result<String, String> {
    unit_safe(s)?;
    Ok(format!("\"{}\"", s.replace('%', "%%").replace('$', "$$")))
}

/// One `ReadWritePaths=` entry: double-quoted, `-` (skip if missing) inside, `%` doubled.
pub fn rw_word(p: &Path) -> Result<String, String> {
    let s = utf8(p)?;
    unit_safe(s)?;
    Ok(format!("\"-{}\"", s.replace('%', "%%")))
}

/// The unit file's text.
pub fn unit_text(spec: &UnitSpec) -> Result<String, String> {
    let template = include_str!("../systemd/mcp-credd.service");
    let mut exec = vec![exec_word(utf8(&spec.bin)?)?];
    for a in &spec.args {
        exec.push(exec_word(a)?);
    }
    exec.push("daemon".into());
    let mut type_ = if spec.notify_reload {
        // The daemon sends RELOADING=1 only when told the unit type uses it.
        "Type=notify-reload\nEnvironment=MCP_CREDD_NOTIFY_RELOAD=1".to_string()
    } else {
        "Type=notify\nExecReload=/bin/kill -HUP $MAINPID".to_string()
    };
    if let Some(x) = &spec.xdg_config_home {
        let v = utf8(x)?;
        unit_safe(v)?;
        type_.push_str(&format!(
            "\nEnvironment=\"XDG_CONFIG_HOME={}\"",
            v.replace('%', "%%")
        ));
    }
    let mut rw = Vec::new();
    for p in &spec.rw_paths {
        rw.push(format!("ReadWritePaths={}", rw_word(p)?));
    }
    Ok(template
        .replace("@TYPE@", &type_)
        .replace("@EXEC@", &exec.join(" "))
        .replace("@RWPATHS@", &rw.join("\n")))
}

/// The global arguments that make the service load what this command loaded.
pub fn source_args(loaded: &Loaded) -> Result<Vec<String>, String> {
    let config = &loaded.config;
    let mut args = Vec::new();
    let path = |p: &Path| -> Result<String, String> {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(utf8(&abs)?.to_string())
    };
    match &config.origin {
        Origin::File(p) => {
            args.push("--config".into());
            args.push(path(p)?);
        }
        Origin::Environment { env_file: Some(f) } => {
            args.push("--env-file".into());
            args.push(path(f)?);
        }
        Origin::Environment { env_file: None } => {
            return Err("the configuration comes from variables exported in this shell, which the service does not see; put them in a file and run `mcp-credd --env-file FILE install-service`, or write a config file (`mcp-credd init`)".into());
        }
    }
    // A config file names its own tokens and servers directories: repeating them on the
    // command line would make the service ignore later edits of the file. A flag given to
    // install-service, or an `.env` setup (which has no place for them), is carried over.
    let from_file = matches!(config.origin, Origin::File(_));
    if !from_file || loaded.tokens_dir_overridden {
        args.push("--tokens-dir".into());
        args.push(path(&config.tokens_dir)?);
    }
    if let Some(d) = loaded
        .servers_dir
        .as_ref()
        .filter(|_| !from_file || loaded.servers_dir_overridden)
    {
        args.push("--servers-dir".into());
        args.push(path(d)?);
    }
    Ok(args)
}

/// The directories the service writes: the tokens directory, then the directory of every
/// editor file (and of the file a symlinked one points to), each once, in order.
pub fn writable_dirs(config: &Config, dirs: &Dirs) -> (Vec<PathBuf>, Vec<String>) {
    let (targets, problems) = resolve(&config.editors, dirs, &config.tokens_dir);
    let mut out = vec![config.tokens_dir.clone()];
    let mut add = |d: PathBuf| {
        if !out.iter().any(|o| d.starts_with(o)) {
            out.push(d);
        }
    };
    for t in targets {
        if let Some(d) = t.path.parent() {
            add(d.to_path_buf());
        }
        if let Ok(real) = std::fs::canonicalize(&t.path)
            && real != t.path
            && let Some(d) = real.parent()
        {
            add(d.to_path_buf());
        }
    }
    (out, problems)
}

/// `systemctl --version` ≥ 253 understands `Type=notify-reload`.
fn systemd_version() -> Option<u32> {
    let out = Command::new("systemctl")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The environment a systemd user manager gives its services (what matters to us).
fn unit_env(env: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut out = vec![(
        "PATH".to_string(),
        "/usr/local/bin:/usr/bin:/bin".to_string(),
    )];
    for k in ["HOME", "USER", "LOGNAME", "LANG", "XDG_CONFIG_HOME"] {
        if let Some(v) = env.get(k) {
            out.push((k.to_string(), v.clone()));
        }
    }
    out
}

/// The fix to print when the service could not load the configuration.
fn fix_for(err: &str, dirs: &Dirs) -> String {
    let secrets = dirs.secrets_file().map_or_else(
        || "~/.config/mcp-credd/env".into(),
        |p| p.display().to_string(),
    );
    if err.contains("is not set") || err.contains("not set;") {
        format!(
            "the service does not see variables exported in this shell: put each one as VAR=value in {secrets} (chmod 600), then run install-service again"
        )
    } else {
        "fix it, then run install-service again".into()
    }
}

pub fn default_unit_path(dirs: &Dirs) -> Option<PathBuf> {
    dirs.user_units_dir().map(|d| d.join(UNIT_NAME))
}

/// The installed unit (default place) and the one `install-service` would write now, for
/// `doctor`; `None` when no unit is installed.
pub fn installed_unit(
    loaded: &Loaded,
    env: &HashMap<String, String>,
) -> Option<crate::doctor::UnitFacts> {
    let dirs = Dirs::from_env(env);
    let path = default_unit_path(&dirs)?;
    let installed = std::fs::read_to_string(&path).ok()?;
    let wanted = (|| {
        let bin = std::env::current_exe().map_err(|e| e.to_string())?;
        unit_text(&UnitSpec {
            bin,
            args: source_args(loaded)?,
            rw_paths: writable_dirs(&loaded.config, &dirs).0,
            notify_reload: systemd_version().is_some_and(|v| v >= 253),
            xdg_config_home: dirs.xdg_config_home.clone(),
        })
    })();
    Some(crate::doctor::UnitFacts {
        path,
        installed,
        wanted,
    })
}

/// What `install-service` did, for the user.
pub struct Installed {
    pub unit_path: PathBuf,
    pub created: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// `install-service`: works out the unit, checks that the service could load the
/// configuration, creates the directories it must be allowed to write, writes the unit.
pub fn install(
    loaded: &Loaded,
    unit_path: Option<PathBuf>,
    env: &HashMap<String, String>,
) -> Result<Installed, String> {
    let bin =
        std::env::current_exe().map_err(|e| format!("cannot tell where this binary is: {e}"))?;
    // The service sees HOME and the XDG_CONFIG_HOME the unit passes on: editor files as it
    // will find them.
    let dirs = Dirs::from_env(env);
    let unit_path = unit_path
        .or_else(|| default_unit_path(&dirs))
        .ok_or("HOME is not set; pass --unit-path")?;
    let args = source_args(loaded)?;
    let (rw_paths, mut notes) = writable_dirs(&loaded.config, &dirs);
    // The unit's PrivateTmp gives the service an empty /tmp: a binary there cannot start.
    if bin.starts_with("/tmp") || bin.starts_with("/var/tmp") {
        notes.push(format!(
            "{} is under a temporary directory, which the service cannot see (PrivateTmp); install the binary elsewhere (`cargo install --path .` puts it in ~/.cargo/bin) and run install-service from there",
            bin.display()
        ));
    }
    let spec = UnitSpec {
        bin: bin.clone(),
        args: args.clone(),
        rw_paths: rw_paths.clone(),
        notify_reload: systemd_version().is_some_and(|v| v >= 253),
        xdg_config_home: dirs.xdg_config_home.clone(),
    };
    let text = unit_text(&spec)?;

    // Load the configuration as the service will: working directory /, the unit's environment.
    let out = Command::new(&bin)
        .args(&args)
        .arg("check-config")
        .env_clear()
        .envs(unit_env(env))
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim().trim_start_matches("error: ");
        return Err(format!(
            "not installed: the service could not load the configuration: {err}; {}",
            fix_for(err, &dirs)
        ));
    }

    // ReadWritePaths needs the directories to exist when the service starts.
    let mut created = Vec::new();
    for d in &rw_paths {
        if !d.exists() {
            crate::store::atomic::create_private_dirs(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            created.push(d.clone());
        }
    }
    if let Err(e) = crate::store::Store::open(&loaded.config.tokens_dir) {
        return Err(e.to_string());
    }
    if let Some(dir) = unit_path.parent() {
        crate::store::atomic::create_private_dirs(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::store::atomic::write_atomic(&unit_path, text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {}: {e}", unit_path.display()))?;
    notes.retain(|n| !n.is_empty());
    Ok(Installed {
        unit_path,
        created,
        notes,
    })
}

/// `uninstall-service`: stop and disable the unit (when a user manager answers), remove
/// the file, reload the manager. Returns what it did.
pub fn uninstall(
    unit_path: Option<PathBuf>,
    env: &HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let unit_path = unit_path
        .or_else(|| default_unit_path(&Dirs::from_env(env)))
        .ok_or("HOME is not set; pass --unit-path")?;
    let name = unit_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(UNIT_NAME)
        .to_string();
    let mut said = Vec::new();
    if !unit_path.exists() {
        said.push(format!(
            "no unit at {}; nothing to remove",
            unit_path.display()
        ));
        return Ok(said);
    }
    let systemctl = |args: &[&str]| {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    match systemctl(&["disable", "--now", &name]) {
        Ok(o) if o.status.success() => said.push(format!("stopped and disabled {name}")),
        Ok(o) => said.push(format!(
            "warning: systemctl --user disable --now {name} failed ({}); removing the unit anyway",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => said.push(format!(
            "warning: cannot run systemctl ({e}); removing the unit anyway"
        )),
    }
    std::fs::remove_file(&unit_path)
        .map_err(|e| format!("cannot remove {}: {e}", unit_path.display()))?;
    said.push(format!("removed {}", unit_path.display()));
    if let Ok(o) = systemctl(&["daemon-reload"])
        && o.status.success()
    {
        said.push("reloaded the user manager".into());
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            bin: "/opt/my tools/mcp-credd".into(),
            args: vec![
                "--config".into(),
                "/home/u/50%/$HOME/c.yaml".into(),
                "--tokens-dir".into(),
                "/home/u/.oauth-tokens".into(),
            ],
            rw_paths: vec![
                "/home/u/.oauth-tokens".into(),
                "/home/u/my proj/.cursor".into(),
            ],
            notify_reload: false,
            xdg_config_home: None,
        }
    }

    #[test]
    fn paths_are_quoted_and_specifiers_escaped() {
        let t = unit_text(&spec()).unwrap();
        assert!(
            t.contains(r#"ExecStart="/opt/my tools/mcp-credd" "--config" "/home/u/50%%/$$HOME/c.yaml" "--tokens-dir" "/home/u/.oauth-tokens" daemon"#),
            "{t}"
        );
        assert!(
            t.contains("ReadWritePaths=\"-/home/u/my proj/.cursor\"\n"),
            "{t}"
        );
        assert!(t.contains("Type=notify\nExecReload=/bin/kill -HUP $MAINPID\n"));
        assert!(t.contains("LimitCORE=0\n") && !t.contains("EnvironmentFile"));
        for p in ["@TYPE@", "@EXEC@", "@RWPATHS@"] {
            assert!(!t.contains(p), "{p} filled: {t}");
        }
        let r = unit_text(&UnitSpec {
            notify_reload: true,
            ..spec()
        })
        .unwrap();
        assert!(r.contains("Type=notify-reload\nEnvironment=MCP_CREDD_NOTIFY_RELOAD=1\n"));
        assert!(!r.contains("ExecReload"));
        let x = unit_text(&UnitSpec {
            xdg_config_home: Some("/data/my cfg%".into()),
            ..spec()
        })
        .unwrap();
        assert!(
            x.contains("\nEnvironment=\"XDG_CONFIG_HOME=/data/my cfg%%\"\n"),
            "{x}"
        );
        let bad = unit_text(&UnitSpec {
            xdg_config_home: Some("/data/a\nb".into()),
            ..spec()
        });
        assert!(bad.is_err());
    }

    #[test]
    fn unit_breaking_paths_are_refused() {
        for bad in [
            "/home/u/a\nExecStartPre=/bin/evil",
            "/home/u/a\rb",
            "/x/\"q",
            "/x/\\y",
            "/x/\ty",
        ] {
            let mut s = spec();
            s.args[1] = bad.into();
            let e = unit_text(&s).unwrap_err();
            assert!(e.contains("path"), "{e}");
            let mut s = spec();
            s.rw_paths.push(bad.into());
            assert!(unit_text(&s).is_err(), "{bad:?}");
        }
    }
}
