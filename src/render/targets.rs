//! Where the editor config files are: `editors:` from the config turned into (path, format)
//! pairs, with each editor's usual place on this platform (REFERENCE.md §2). Pure: the
//! home and config directories come in as `Dirs`.

use std::path::{Path, PathBuf};

use crate::config::{EditorFormat, EditorSpec};
use crate::dirs::Dirs;

/// The reference tool's copies in the tokens directory.
pub const REFERENCE_VSCODE: &str = "vscode_mcp.json";
pub const REFERENCE_ROO: &str = "mcp.json";

/// One file to keep current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub format: EditorFormat,
    /// Tokens may go into it even inside a git work tree that does not ignore it (the
    /// reference copies in tokens_dir are never checked).
    pub allow_tracked: bool,
}

/// A format's usual user-level file; `None` for formats that have none (or without HOME).
pub fn default_path(format: EditorFormat, dirs: &Dirs) -> Option<PathBuf> {
    let code_user = || {
        dirs.app_config
            .as_ref()
            .map(|c| c.join("Code").join("User"))
    };
    let global_storage = |ext: &str, file: &str| {
        code_user().map(|u| {
            u.join("globalStorage")
                .join(ext)
                .join("settings")
                .join(file)
        })
    };
    match format {
        EditorFormat::Vscode => code_user().map(|u| u.join("mcp.json")),
        EditorFormat::Roo => global_storage("rooveterinaryinc.roo-cline", "mcp_settings.json"),
        EditorFormat::Cline => global_storage("saoudrizwan.claude-dev", "cline_mcp_settings.json"),
        EditorFormat::Cursor => dirs
            .home
            .as_ref()
            .map(|h| h.join(".cursor").join("mcp.json")),
        EditorFormat::Windsurf => dirs
            .home
            .as_ref()
            .map(|h| h.join(".codeium").join("windsurf").join("mcp_config.json")),
        // Claude Code's user file is the app's own; the legacy shape lives in tokens_dir.
        EditorFormat::ClaudeCode | EditorFormat::VscodeLegacy => None,
    }
}

/// The files `specs` name, in order, each once. Problems (no home directory, one path
/// listed with two formats) are returned for the user; the other targets still count.
pub fn resolve(specs: &[EditorSpec], dirs: &Dirs, tokens_dir: &Path) -> (Vec<Target>, Vec<String>) {
    let mut out: Vec<Target> = Vec::new();
    let mut problems = Vec::new();
    let mut add =
        |t: Target, problems: &mut Vec<String>| match out.iter().find(|o| o.path == t.path) {
            Some(o) if o.format == t.format => {}
            Some(o) => problems.push(format!(
                "{} is listed in `editors` as both {} and {}; writing it as {} only",
                t.path.display(),
                o.format.name(),
                t.format.name(),
                o.format.name()
            )),
            None => out.push(t),
        };
    for spec in specs {
        match spec {
            EditorSpec::Reference => {
                for (file, format) in [
                    (REFERENCE_VSCODE, EditorFormat::VscodeLegacy),
                    (REFERENCE_ROO, EditorFormat::Roo),
                ] {
                    add(
                        Target {
                            path: tokens_dir.join(file),
                            format,
                            allow_tracked: true,
                        },
                        &mut problems,
                    );
                }
            }
            EditorSpec::File {
                format,
                path,
                allow_tracked,
            } => {
                match path.clone().or_else(|| default_path(*format, dirs)) {
                    Some(path) => add(
                        Target {
                            path,
                            format: *format,
                            allow_tracked: *allow_tracked,
                        },
                        &mut problems,
                    ),
                    None => problems.push(format!(
                        "cannot tell where {}'s config file is (HOME is not set); give its `path` in `editors`",
                        format.name()
                    )),
                }
            }
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> Dirs {
        Dirs::new(Some("/home/u".into()), None, false)
    }

    fn file(format: EditorFormat) -> EditorSpec {
        EditorSpec::File {
            format,
            path: None,
            allow_tracked: false,
        }
    }

    #[test]
    fn linux_paths() {
        let want = [
            (EditorFormat::Vscode, "/home/u/.config/Code/User/mcp.json"),
            (
                EditorFormat::Roo,
                "/home/u/.config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
            ),
            (
                EditorFormat::Cline,
                "/home/u/.config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
            ),
            (EditorFormat::Cursor, "/home/u/.cursor/mcp.json"),
            (
                EditorFormat::Windsurf,
                "/home/u/.codeium/windsurf/mcp_config.json",
            ),
        ];
        for (f, p) in want {
            assert_eq!(default_path(f, &linux()), Some(PathBuf::from(p)), "{f:?}");
        }
        assert_eq!(default_path(EditorFormat::ClaudeCode, &linux()), None);
        let xdg = Dirs::new(Some("/home/u".into()), Some("/x/cfg".into()), false);
        assert_eq!(
            default_path(EditorFormat::Vscode, &xdg),
            Some(PathBuf::from("/x/cfg/Code/User/mcp.json"))
        );
        let relative = Dirs::new(Some("/home/u".into()), Some("cfg".into()), false);
        assert_eq!(relative.app_config, Some(PathBuf::from("/home/u/.config")));
    }

    #[test]
    fn macos_paths() {
        let mac = Dirs::new(Some("/Users/u".into()), Some("/ignored".into()), true);
        assert_eq!(
            default_path(EditorFormat::Vscode, &mac),
            Some(PathBuf::from(
                "/Users/u/Library/Application Support/Code/User/mcp.json"
            ))
        );
        assert_eq!(
            default_path(EditorFormat::Roo, &mac),
            Some(PathBuf::from(
                "/Users/u/Library/Application Support/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json"
            ))
        );
        assert_eq!(
            default_path(EditorFormat::Cursor, &mac),
            Some(PathBuf::from("/Users/u/.cursor/mcp.json"))
        );
    }

    #[test]
    fn defaults_resolve_to_vscode_roo_and_the_reference_copies() {
        let (t, problems) = resolve(&EditorSpec::defaults(), &linux(), Path::new("/t"));
        assert!(problems.is_empty());
        let got: Vec<(String, EditorFormat)> = t
            .iter()
            .map(|t| (t.path.display().to_string(), t.format))
            .collect();
        assert_eq!(
            got,
            [
                ("/home/u/.config/Code/User/mcp.json".to_string(), EditorFormat::Vscode),
                (
                    "/home/u/.config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json".to_string(),
                    EditorFormat::Roo
                ),
                ("/t/vscode_mcp.json".to_string(), EditorFormat::VscodeLegacy),
                ("/t/mcp.json".to_string(), EditorFormat::Roo),
            ]
        );
    }

    #[test]
    fn duplicates_and_missing_home() {
        let specs = [
            file(EditorFormat::Cursor),
            file(EditorFormat::Cursor),
            EditorSpec::File {
                format: EditorFormat::Roo,
                path: Some("/home/u/.cursor/mcp.json".into()),
                allow_tracked: false,
            },
        ];
        let (t, problems) = resolve(&specs, &linux(), Path::new("/t"));
        assert_eq!(t.len(), 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("as both cursor and roo"),
            "{problems:?}"
        );
        let (t, problems) = resolve(
            &[file(EditorFormat::Vscode)],
            &Dirs::default(),
            Path::new("/t"),
        );
        assert!(t.is_empty());
        assert!(problems[0].contains("HOME is not set"), "{problems:?}");
    }
}
