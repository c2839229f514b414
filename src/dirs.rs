//! The user's directories, worked out once from the environment `main` collected and passes
//! down (`HOME`, `XDG_CONFIG_HOME`): where the editors keep their files, where mcp-credd's
//! own config, secrets and provider files are, where systemd looks for user units. No other
//! code turns these variables into directories, so a test (or `install-service`, reasoning
//! about the service's environment) can hand in another set. Pure but for the home
//! directory's fallback to the password database when `HOME` is unset.

use std::collections::HashMap;
use std::path::PathBuf;

/// The directories everything else is placed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dirs {
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME` when set to an absolute path (the XDG rule: others are ignored).
    pub xdg_config_home: Option<PathBuf>,
    /// Where Electron apps (VS Code and its extensions) and mcp-credd keep settings:
    /// `$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application Support` on macOS.
    pub app_config: Option<PathBuf>,
}

impl Dirs {
    pub fn new(home: Option<PathBuf>, xdg_config_home: Option<PathBuf>, macos: bool) -> Dirs {
        let xdg_config_home = xdg_config_home.filter(|p| p.is_absolute());
        let app_config = if macos {
            home.as_ref()
                .map(|h| h.join("Library").join("Application Support"))
        } else {
            xdg_config_home
                .clone()
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
        };
        Dirs {
            home,
            xdg_config_home,
            app_config,
        }
    }

    /// From an environment (`HOME`, `XDG_CONFIG_HOME`; empty values count as unset), as
    /// the editors find them. Without `HOME`, the password database's home directory.
    pub fn from_env(env: &HashMap<String, String>) -> Dirs {
        let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        // Not the process's `$HOME`: an injected environment without HOME means the
        // password database, whatever this process was started with.
        let home = var("HOME").or_else(passwd_home);
        Dirs::new(home, var("XDG_CONFIG_HOME"), cfg!(target_os = "macos"))
    }

    /// mcp-credd's own directory: `~/.config/mcp-credd` on Linux (honouring
    /// XDG_CONFIG_HOME), `~/Library/Application Support/mcp-credd` on macOS.
    pub fn own_config_dir(&self) -> Option<PathBuf> {
        self.app_config.as_ref().map(|c| c.join("mcp-credd"))
    }

    /// The config file read when no other is named.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.own_config_dir().map(|d| d.join("config.yaml"))
    }

    /// The secrets file every command reads (KEY=value lines, the `.env` syntax).
    pub fn secrets_file(&self) -> Option<PathBuf> {
        self.own_config_dir().map(|d| d.join("env"))
    }

    /// The user's provider definitions (`*.yaml`).
    pub fn providers_dir(&self) -> Option<PathBuf> {
        self.own_config_dir().map(|d| d.join("providers"))
    }

    /// Where a systemd user manager looks for the user's units (`$XDG_CONFIG_HOME` or
    /// `~/.config`, then `systemd/user`).
    pub fn user_units_dir(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
            .map(|c| c.join("systemd").join("user"))
    }
}

/// The home directory the password database gives this process's user (`getpwuid_r`),
/// `None` if there is no entry or it names no absolute directory.
fn passwd_home() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `pwd` and `result` are plain out-parameters; `buf` outlives every pointer
        // into it that `pwd` receives, and its length is what we pass.
        let (rc, home) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            let home = (rc == 0 && !result.is_null() && !pwd.pw_dir.is_null()).then(|| {
                PathBuf::from(std::ffi::OsStr::from_bytes(
                    CStr::from_ptr(pwd.pw_dir).to_bytes(),
                ))
            });
            (rc, home)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return home.filter(|h| h.is_absolute());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// An injected environment without HOME gets the password database's home, not the
    /// process's `$HOME`. The process HOME is set to a decoy in a child run of this very
    /// test (changing it here would race the other tests).
    #[test]
    fn without_home_the_password_database_is_asked_not_the_process() {
        const DECOY: &str = "/nonexistent/process-home";
        if std::env::var_os("MCP_CREDD_DIRS_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "dirs::tests::without_home_the_password_database_is_asked_not_the_process",
                    "--test-threads=1",
                ])
                .env("HOME", DECOY)
                .env("MCP_CREDD_DIRS_CHILD", "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        assert_eq!(std::env::var("HOME").unwrap(), DECOY);
        let d = Dirs::from_env(&env(&[("XDG_CONFIG_HOME", "/x")]));
        let home = passwd_home().expect("this user has a password entry");
        assert_ne!(home, PathBuf::from(DECOY));
        assert_eq!(d.home, Some(home));
    }

    #[test]
    fn places_from_the_injected_environment() {
        let d = Dirs::from_env(&env(&[("HOME", "/home/u")]));
        assert_eq!(d.home.as_deref(), Some("/home/u".as_ref()));
        if cfg!(target_os = "linux") {
            assert_eq!(
                d.config_file().unwrap(),
                PathBuf::from("/home/u/.config/mcp-credd/config.yaml")
            );
            assert_eq!(
                d.secrets_file().unwrap(),
                PathBuf::from("/home/u/.config/mcp-credd/env")
            );
            let x = Dirs::from_env(&env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]));
            assert_eq!(
                x.providers_dir().unwrap(),
                PathBuf::from("/x/mcp-credd/providers")
            );
            assert_eq!(
                x.user_units_dir().unwrap(),
                PathBuf::from("/x/systemd/user")
            );
            // A relative XDG_CONFIG_HOME is invalid and ignored; an empty one is unset.
            for bad in ["rel/cfg", ""] {
                let r = Dirs::from_env(&env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", bad)]));
                assert_eq!(r.xdg_config_home, None);
                assert_eq!(
                    r.user_units_dir().unwrap(),
                    PathBuf::from("/home/u/.config/systemd/user")
                );
            }
        }
        let mac = Dirs::new(Some("/Users/u".into()), Some("/ignored".into()), true);
        assert_eq!(
            mac.config_file().unwrap(),
            PathBuf::from("/Users/u/Library/Application Support/mcp-credd/config.yaml")
        );
    }

    #[test]
    fn the_config_and_secrets_files_come_from_the_injected_home() {
        // Another HOME than the process's: the config is found there, not in the real one.
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("elsewhere");
        let own = home.join(".config/mcp-credd");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(
            own.join("config.yaml"),
            "tokens_dir: ~/tok\ningress:\n  kind: oidc_m2m\n  token_url: https://idp.example.com/token\n  client_id: c\n  client_secret: {env: SECRET_FROM_FILE}\n",
        )
        .unwrap();
        std::fs::write(own.join("env"), "SECRET_FROM_FILE=s3\n").unwrap();
        std::fs::set_permissions(
            own.join("env"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let env = env(&[("HOME", home.to_str().unwrap()), ("XDG_CONFIG_HOME", "")]);
        let loaded =
            crate::config::load::load(&crate::config::load::LoadOptions::default(), &env).unwrap();
        assert_eq!(loaded.config.tokens_dir, home.join("tok"));
        assert_eq!(loaded.secrets_file, Some(own.join("env")));
        let secret = loaded.config.ingress.unwrap().client_secret.unwrap();
        assert_eq!(secret.expose(), "s3");
    }
}
