//! The one place commands and flags are defined.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-credd",
    version,
    about = "Keeps MCP gateway and provider OAuth tokens fresh and writes them into MCP configs",
    long_about = "Keeps MCP gateway and provider OAuth tokens fresh and writes them into MCP configs.\n\n\
Without a command, runs once: obtains or refreshes every configured identity that needs it, \
writes the token files and the MCP config copies, and exits.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 configuration error, 4 re-authorization required."
)]
pub struct Cli {
    /// Config file (default: ~/.config/mcp-credd/config.yaml; env MCP_CREDD_CONFIG)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Env file with the reference tool's variables (env MCP_CREDD_ENV_FILE)
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Where tokens are kept (default: ~/.oauth-tokens; env MCP_CREDD_TOKENS_DIR)
    #[arg(long, global = true, value_name = "DIR")]
    pub tokens_dir: Option<PathBuf>,

    /// The reference tool's registry/servers directory (env MCP_CREDD_SERVERS_DIR)
    #[arg(long, global = true, value_name = "DIR")]
    pub servers_dir: Option<PathBuf>,

    /// More detail on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(flatten)]
    pub once: OnceArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The one-shot flags make no sense with a command; say so (clap's own conflict rule
    /// would also reject global flags such as `-v` before the command).
    pub fn check(&self) -> Result<(), String> {
        let o = &self.once;
        let used = o.ingress_only
            || o.egress_only
            || o.provider.is_some()
            || o.force
            || o.login.no_browser
            || o.login.device
            || o.login.timeout.is_some();
        if self.command.is_some() && used {
            return Err("--ingress-only, --egress-only, --provider, --force, --no-browser, --device and --timeout before a command apply only to the one-shot run; put login's options after `login`".into());
        }
        Ok(())
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct OnceArgs {
    /// Only the gateway (ingress) identity
    #[arg(long, conflicts_with = "egress_only")]
    pub ingress_only: bool,

    /// Only egress (provider) identities
    #[arg(long)]
    pub egress_only: bool,

    /// Only the egress provider with this name (implies --egress-only)
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,

    #[command(flatten)]
    pub login: LoginArgs,

    /// Fetch new tokens even when the stored ones are still valid
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct LoginArgs {
    /// Do not open a browser; print the URL (and read a pasted redirect URL on a terminal)
    #[arg(long)]
    pub no_browser: bool,

    /// Log in with a code on another device (providers with RFC 8628 device login)
    #[arg(long)]
    pub device: bool,

    /// Give up waiting for the login after this many seconds [default: 300]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

impl LoginArgs {
    /// The options of a login, with what it reads from `env` (the environment `main`
    /// collected).
    pub fn options(
        &self,
        env: &std::collections::HashMap<String, String>,
    ) -> crate::login::LoginOptions {
        crate::login::LoginOptions {
            open_browser: !self.no_browser,
            device: self.device,
            timeout: std::time::Duration::from_secs(self.timeout.unwrap_or(300)),
            env: crate::login::LoginEnv::from_env(env),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Log in in the browser: an egress provider, or an MCP server with `auth: oauth`
    /// (all that need it when NAME is omitted)
    Login {
        /// The egress entry's name (default: its provider), or the MCP server's name
        name: Option<String>,
        #[command(flatten)]
        args: LoginArgs,
    },
    /// Run as a service: keep every token fresh until stopped (systemd user service)
    Daemon,
    /// Check the configuration, files, tokens, endpoints and editor files; say what to fix
    Doctor {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Install the systemd user unit for the daemon (with this command's config source) and
    /// print how to start it; refuses when the service could not load the configuration
    InstallService {
        /// Write the unit here instead of ~/.config/systemd/user/mcp-credd.service
        #[arg(long, value_name = "PATH")]
        unit_path: Option<PathBuf>,
    },
    /// Stop, disable and remove the systemd user unit
    UninstallService {
        /// The unit written with install-service --unit-path
        #[arg(long, value_name = "PATH")]
        unit_path: Option<PathBuf>,
    },
    /// Write a commented starter config (to --config PATH or the default place), or turn a
    /// reference .env into one (its secret goes to ~/.config/mcp-credd/env)
    Init {
        /// The reference tool's .env to convert (default: the global --env-file, if given)
        #[arg(long, value_name = "FILE")]
        from_env: Option<PathBuf>,
        /// Replace an existing config file
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script (bash, zsh or fish) to stdout
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `mcp-credd man > mcp-credd.1`
    Man,
    /// Load the configuration strictly and say whether it is usable (install-service runs
    /// this as the service would)
    #[command(hide = true)]
    CheckConfig,
    /// Show every identity's token state, expiry and last error
    Status {
        /// Machine-readable output (schema documented in README)
        #[arg(long)]
        json: bool,
    },
    /// Rewrite every editor config from the stored tokens, without any network call
    Render,
    /// Print a server's current headers as a JSON object (for Claude Code's headersHelper);
    /// refreshes a token that is expired or about to expire first
    Headers {
        /// The server's name, as in the config [default: $CLAUDE_CODE_MCP_SERVER_NAME]
        server: Option<String>,
    },
    /// Log out: revoke the token at the provider where it has a revocation endpoint, delete
    /// the token and its state, and remove its headers from the editor files
    #[command(group = clap::ArgGroup::new("which").required(true).args(["name", "all"]))]
    Logout {
        /// The identity's name (an egress entry, `ingress`, an `identities:` key)
        name: Option<String>,
        /// Every configured identity
        #[arg(long)]
        all: bool,
    },
    /// Print an identity's current access token (for scripts); refreshes it first when
    /// expired or about to expire
    Token {
        /// The identity's name (`ingress`, an `identities:` key, an egress entry)
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "mcp-credd",
            "--force",
            "--ingress-only",
            "--tokens-dir",
            "/t",
            "-vv",
        ])
        .unwrap();
        assert!(c.once.force && c.once.ingress_only && c.command.is_none());
        assert_eq!(c.verbose, 2);
        let c =
            Cli::try_parse_from(["mcp-credd", "status", "--json", "--config", "/c.yaml"]).unwrap();
        assert!(matches!(c.command, Some(Command::Status { json: true })));
        assert!(
            Cli::try_parse_from(["mcp-credd", "--force", "status"])
                .unwrap()
                .check()
                .is_err()
        );
        let c = Cli::try_parse_from(["mcp-credd", "-vv", "--config", "/c", "daemon"]).unwrap();
        assert!(c.check().is_ok() && c.verbose == 2);
        let c = Cli::try_parse_from([
            "mcp-credd",
            "login",
            "atlassian",
            "--device",
            "--timeout",
            "9",
        ])
        .unwrap();
        assert!(c.check().is_ok());
        let c = Cli::try_parse_from(["mcp-credd", "render", "--tokens-dir", "/t"]).unwrap();
        assert!(matches!(c.command, Some(Command::Render)));
        let c = Cli::try_parse_from(["mcp-credd", "headers", "currenttime", "-q"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Headers { server: Some(server) }) if server == "currenttime")
        );
        assert!(matches!(
            Cli::try_parse_from(["mcp-credd", "headers"])
                .unwrap()
                .command,
            Some(Command::Headers { server: None })
        ));
        assert!(Cli::try_parse_from(["mcp-credd", "token"]).is_err());
        assert!(Cli::try_parse_from(["mcp-credd", "logout"]).is_err());
        assert!(Cli::try_parse_from(["mcp-credd", "logout", "x", "--all"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["mcp-credd", "logout", "--all"])
                .unwrap()
                .command,
            Some(Command::Logout {
                name: None,
                all: true
            })
        ));
        assert!(
            Cli::try_parse_from(["mcp-credd", "--force", "render"])
                .unwrap()
                .check()
                .is_err()
        );
        assert!(Cli::try_parse_from(["mcp-credd", "--ingress-only", "--egress-only"]).is_err());
        assert!(Cli::try_parse_from(["mcp-credd", "-q", "-v"]).is_err());
    }
}
