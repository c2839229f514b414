//! In-process benchmarks of the pure core: planning, rendering and merging, token-reply
//! parsing. Prints figures (median of several rounds); run with `cargo bench --bench core`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcp_credd::clock::Ts;
use mcp_credd::config::EditorFormat;
use mcp_credd::config::{
    ClientAuth, Config, Endpoint, HttpPolicy, IdentityConfig, Kind, Origin, RefreshPolicy,
    ServerAuth, ServerConfig, Transport,
};
use mcp_credd::identity::reply;
use mcp_credd::render::merge::{merge, merge_tree};
use mcp_credd::render::{ServerEntry, entries};
use mcp_credd::schedule::plan::{Expiry, TokenTimes, jitter_unit, refresh_at};
use mcp_credd::schedule::slots::Schedule;
use mcp_credd::secret::Secret;
use mcp_credd::store::TokenRecord;
use std::collections::BTreeSet;

/// Counts heap bytes in use and their high-water mark, for the peak-heap figures.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        IN_USE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The heap `f` needs at its peak beyond what was in use before, in MiB.
fn peak_heap_mib<F: FnOnce()>(f: F) -> f64 {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    (PEAK.load(Ordering::Relaxed) - base) as f64 / (1024.0 * 1024.0)
}

/// Runs `f` `rounds` times and returns the median duration of one call.
fn median<F: FnMut()>(rounds: usize, mut f: F) -> Duration {
    let mut v: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without it,
/// as a quick smoke run at small sizes whose timings mean nothing.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn report(what: &str, d: Duration, target: Option<Duration>) {
    let target = target.filter(|_| full());
    let verdict = match target {
        Some(t) if d <= t => format!("  (target < {t:?}: met)"),
        Some(t) => format!("  (target < {t:?}: MISSED)"),
        None => String::new(),
    };
    println!("{what:<58} {:>10.3} ms{verdict}", d.as_secs_f64() * 1000.0);
}

fn identity(name: &str) -> IdentityConfig {
    IdentityConfig {
        gateway: None,
        name: name.into(),
        file_name: format!("{name}.json"),
        kind: Kind::OidcM2m {
            audience: None,
            resource: None,
        },
        provider_label: mcp_credd::config::ProviderLabel::OidcM2m,
        client_id: format!("client-{name}"),
        client_secret: Some(Secret::new("s")),
        scopes: vec![],
        endpoint: Endpoint::TokenUrl("https://idp.example.com/token".into()),
        client_auth: ClientAuth::Basic,
        extra_fields: vec![],
        extra_headers: vec![],
    }
}

/// Identity `id{i}`'s token; `round` makes a different one (a refresh).
fn record(i: usize, round: usize) -> TokenRecord {
    serde_json::from_value(serde_json::json!({
        "provider": "oidc_m2m",
        "access_token": format!("eyJhbGciOiJSUzI1NiJ9.{round}{}.sig", "x".repeat(900 + i % 7)),
        "refresh_token": null,
        "expires_at": 1_800_000_000.0 + i as f64,
        "expires_at_human": null,
        "client_id": format!("client-id{i}"),
        "obtained_at": 1_799_996_400.0 + i as f64,
    }))
    .unwrap()
}

fn main() {
    if !full() {
        println!("smoke run at small sizes (use `cargo bench --bench core` for figures)");
    }
    println!("mcp-credd core benchmarks (median of rounds, this machine)\n");

    // Planning: 10,000 identities.
    let n = if full() { 10_000 } else { 100 };
    let policy = RefreshPolicy::default();
    let times: Vec<(String, TokenTimes)> = (0..n)
        .map(|i| {
            let o = Ts::from_secs(1_800_000_000 + i as i64);
            (
                format!("id{i}"),
                TokenTimes {
                    obtained_at: Some(o),
                    expiry: Expiry::At(o.plus_ms(3_600_000)),
                },
            )
        })
        .collect();
    let d = median(21, || {
        let mut earliest = Ts(i64::MAX);
        for (name, t) in &times {
            if let Some(at) = refresh_at(t, &policy, jitter_unit(name, t.obtained_at)) {
                earliest = earliest.min(at);
            }
        }
        black_box(earliest);
    });
    report(
        "plan: refresh_at for 10,000 identities",
        d,
        Some(Duration::from_millis(5)),
    );
    let mut sched = Schedule::new(policy);
    sched.set_identities(times.iter().map(|(n, _)| n.as_str()), policy);
    for (name, t) in &times {
        sched.set_token(name, Some(*t));
    }
    let now = Ts::from_secs(1_800_002_000);
    let d = median(21, || {
        black_box(sched.due(now));
        black_box(sched.sleep_ms(now));
    });
    report(
        "plan: daemon schedule due + next sleep, 10,000 identities",
        d,
        Some(Duration::from_millis(5)),
    );

    // Rendering 1,000 servers bound to 1,000 identities.
    let m = if full() { 1_000 } else { 10 };
    let mut identities = Vec::new();
    let mut servers = Vec::new();
    let mut records = HashMap::new();
    for i in 0..m {
        let name = format!("id{i}");
        identities.push(identity(&name));
        servers.push(ServerConfig {
            name: format!("server-{i}"),
            url: format!("https://gw.example.com/server-{i}/mcp"),
            transport: Transport::StreamableHttp,
            auth: ServerAuth::Identity {
                name: name.clone(),
                header: "Authorization".into(),
                scheme: "Bearer".into(),
                gateway: false,
            },
        });
        records.insert(name, record(i, 0));
    }
    let config = Config {
        origin: Origin::File("/bench.yaml".into()),
        tokens_dir: "/tmp".into(),
        gateway_url: Some("https://gw.example.com".into()),
        ingress: None,
        identities,
        servers,
        refresh: policy,
        http: HttpPolicy::default(),
        hooks: Default::default(),
        editors: Vec::new(),
        proxy: Default::default(),
    };
    let d = median(21, || {
        black_box(entries(&config, &records));
    });
    report("render: entries (headers) for 1,000 servers", d, None);
    let es: Vec<ServerEntry> = entries(&config, &records);
    // A user's VS Code file: comments, trailing commas, their own servers and inputs.
    let mut user = String::from("// My MCP servers\n{\n  \"inputs\": [],\n  \"servers\": {\n");
    for i in 0..50 {
        user.push_str(&format!("    // server {i}\n    \"mine-{i}\": {{\"type\": \"stdio\", \"command\": \"tool-{i}\",}},\n"));
    }
    user.push_str("  },\n}\n");
    let none = BTreeSet::new();
    let d = median(11, || {
        black_box(merge(Some(&user), EditorFormat::Vscode, &es, &none).unwrap());
    });
    report(
        "render: add 1,000 servers to a commented VS Code file (JSONC CST)",
        d,
        None,
    );
    let first = merge(Some(&user), EditorFormat::Vscode, &es, &none).unwrap();
    let vscode = first.text.unwrap();
    println!(
        "{:<58} {:>10} KiB",
        "  (size of that VS Code file)",
        vscode.len() / 1024
    );
    // Every token changed (a refresh cycle): update all 1,000 entries in place.
    let mut newer = records.clone();
    for (name, r) in newer.iter_mut() {
        // The same identity's next token: it must stay bound to that identity's client.
        let i: usize = name["id".len()..].parse().unwrap();
        *r = record(i, 1);
    }
    let es2: Vec<ServerEntry> = entries(&config, &newer);
    assert!(
        es2.iter().all(|e| e.headers.is_some()) && es2 != es,
        "every server keeps a header and every token changes"
    );
    let d = median(11, || {
        black_box(merge(Some(&vscode), EditorFormat::Vscode, &es2, &first.owned).unwrap());
    });
    report(
        "render: update 1,000 tokens in that VS Code file",
        d,
        Some(Duration::from_millis(50)),
    );
    let formats = [
        EditorFormat::Vscode,
        EditorFormat::VscodeLegacy,
        EditorFormat::Roo,
        EditorFormat::Cline,
        EditorFormat::Cursor,
        EditorFormat::ClaudeCode,
        EditorFormat::Windsurf,
    ];
    let files: Vec<(EditorFormat, String, BTreeSet<String>)> = formats
        .iter()
        .map(|f| {
            let m = merge(None, *f, &es, &none).unwrap();
            (*f, m.text.unwrap(), m.owned)
        })
        .collect();
    // For instruction counts (valgrind --tool=callgrind, robust to a loaded machine):
    // CORE_BENCH_ONCE=setup|onepass|tree stops here after one round of that merge.
    if let Ok(mode) = std::env::var("CORE_BENCH_ONCE") {
        for (f, text, owned) in &files {
            match mode.as_str() {
                "onepass" => drop(black_box(merge(Some(text), *f, &es2, owned).unwrap())),
                "tree" => drop(black_box(merge_tree(Some(text), *f, &es2, owned).unwrap())),
                _ => {}
            }
        }
        return;
    }
    let d = median(11, || {
        for (f, text, owned) in &files {
            black_box(merge(Some(text), *f, &es2, owned).unwrap());
        }
    });
    report(
        "render: all 7 formats, 1,000 servers each, every token new",
        d,
        Some(Duration::from_millis(50)),
    );
    // The same on the syntax tree (the path every merge took before the one-pass merge,
    // and still the one for additions and removals).
    let d = median(5, || {
        for (f, text, owned) in &files {
            black_box(merge_tree(Some(text), *f, &es2, owned).unwrap());
        }
    });
    report("  the same through the syntax tree (before)", d, None);
    let (f, text, owned) = &files[0];
    let fast = peak_heap_mib(|| {
        black_box(merge(Some(text), *f, &es2, owned).unwrap());
    });
    let tree = peak_heap_mib(|| {
        black_box(merge_tree(Some(text), *f, &es2, owned).unwrap());
    });
    println!(
        "{:<58} {:>10.1} MiB (syntax tree: {tree:.1} MiB; file {} KiB)",
        "  peak heap of one VS Code merge, every token new",
        fast,
        text.len() / 1024
    );

    // Token replies.
    let bodies: Vec<String> = (0..1_000)
        .map(|i| {
            format!(
                r#"{{"access_token":"eyJhbGciOiJSUzI1NiJ9.{}.sig","token_type":"bearer","expires_in":"3600","refresh_token":"r{i}","scope":"openid offline_access"}}"#,
                "y".repeat(800)
            )
        })
        .collect();
    let d = median(21, || {
        for b in &bodies {
            black_box(reply::parse(b.as_bytes()).unwrap());
        }
    });
    report("parse: 1,000 token replies", d, None);
}
