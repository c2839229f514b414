//! The layering rule of ARCHITECTURE.md, checked on the source: every `crate::` path
//! outside tests names a module of the same layer or a lower one. A change that makes a
//! foundation reach into the core, the core into a workflow, or anything into the
//! command glue fails here, with the file and line.

use std::path::Path;

/// The layers, lowest first; a module may use its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &[
            "clock",
            "secret",
            "sanitize",
            "timefmt",
            "dirs",
            "providers",
            "exit",
            "failure",
        ],
    ),
    (
        "core",
        &[
            "config", "schedule", "binding", "store", "identity", "mcpauth", "render", "status",
            "login",
        ],
    ),
    (
        "workflows",
        &["refresh", "selection", "doctor", "service", "init"],
    ),
    ("daemon", &["daemon"]),
    ("glue", &["app", "cli"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The source of a file without its unit tests (`#[cfg(test)] mod tests` comes last).
fn non_test(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_uses_only_its_layer_and_those_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
        if rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(mine) = layer_of(module) else {
            broken.push(format!(
                "src/{rel}: module `{module}` is in no layer; add it to ARCHITECTURE.md and LAYERS"
            ));
            continue;
        };
        seen.insert(module.to_string());
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in non_test(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let used: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == module {
                    continue;
                }
                checked += 1;
                match layer_of(&used) {
                    Some(theirs) if theirs <= mine => {}
                    Some(theirs) => broken.push(format!(
                        "src/{rel}:{}: `{module}` ({}) uses `{used}` ({})",
                        n + 1,
                        LAYERS[mine].0,
                        LAYERS[theirs].0
                    )),
                    None => broken.push(format!("src/{rel}:{}: `{used}` is in no layer", n + 1)),
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    // The check saw the modules and uses it is about (a moved `src/` or a scanner that
    // finds nothing would make it vacuous).
    assert!(checked > 100, "only {checked} uses found");
    for m in ["app", "daemon", "refresh", "store", "clock"] {
        assert!(seen.contains(m), "{m} not found under {}", src.display());
    }
}
