//! The `mcp-credd` binary: parse the command line, set up logging, run, exit with the code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mcp_credd::app;
use mcp_credd::cli::Cli;
use mcp_credd::clock::SystemClock;
use mcp_credd::exit::Exit;

fn init_logging(cli: &Cli) {
    // Our own crate at the chosen level; dependencies stay at warn so that request
    // internals never reach the log. MCP_CREDD_LOG overrides (tracing filter syntax).
    // The daemon's default is info: its log is where a service says what it did.
    let daemon = matches!(cli.command, Some(mcp_credd::cli::Command::Daemon));
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) if daemon => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        std::env::var("MCP_CREDD_LOG").unwrap_or_else(|_| format!("warn,mcp_credd={level}"));
    let stderr_tty = std::io::stderr().is_terminal();
    // No colours: every event goes through a writer that escapes control characters (a
    // server's text cannot forge a log line or drive the terminal), which would mangle them.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(mcp_credd::sanitize::EscapingStderr)
        .with_ansi(false)
        .with_target(false);
    // journald stamps each line itself; print our own time only on a terminal.
    if stderr_tty {
        builder.init();
    } else {
        builder.without_time().init();
    }
}

/// Makes the process non-dumpable: no core file (which would hold secrets and tokens), and
/// other processes of the same user without CAP_SYS_PTRACE can neither ptrace it nor read
/// its memory or environment through /proc.
fn no_core_dumps() {
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "warning: cannot make the process non-dumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> ExitCode {
    no_core_dumps();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    if let Err(msg) = cli.check() {
        eprintln!("error: {msg}");
        return ExitCode::from(Exit::Usage.code());
    }
    init_logging(&cli);
    let env: std::collections::HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failure.code());
        }
    };
    let exit = rt.block_on(app::run(cli, std::sync::Arc::new(SystemClock), &env));
    ExitCode::from(exit.code())
}
