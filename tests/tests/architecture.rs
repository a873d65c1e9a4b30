//! ARCHITECTURE.md as a checked map: the rules of its "Checked rules" section, read from the
//! workspace's own files (the Cargo.toml files, ARCHITECTURE.md, the binary's sources), no
//! network and no `cargo metadata`.
//!
//! 1. The crates that must build without the model ([`MODEL_FREE`]) do not depend on
//!    `rlvr-model`, directly or through other workspace crates (normal and build
//!    dependencies; dev-dependencies are the tests' business).
//! 2. Every workspace crate is on the map: its package name, in backticks, in a heading or a
//!    table row of ARCHITECTURE.md.
//! 3. The binary `rlvr-cli` holds no logic: no source file over [`CLI_MAX_LINES`] lines, a
//!    command module (`*_cmd.rs`) exposes no `pub fn` but `run`, and no file implements a
//!    trait (`impl Trait for Type`: verifiers, backends, sandboxes... belong in libraries).
//!
//! Each rule is a function over plain data, tested here on small made-up workspaces too, so
//! that a rule that stops catching what it should fails as well.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Crates that must never depend on `rlvr-model`.
const MODEL_FREE: &[&str] = &[
    "rlvr-data",
    "rlvr-verify",
    "rlvr-sandbox",
    "rlvr-code",
    "rlvr-rewards",
    "rlvr-train",
    "rlvr-protocol",
    "rlvr-store",
];

/// The model crate.
const MODEL: &str = "rlvr-model";

/// Longest source file of the binary, in lines (the longest today: ~450).
const CLI_MAX_LINES: usize = 500;

/// A workspace member as its Cargo.toml says.
#[derive(Debug, Clone)]
struct Member {
    /// The package name.
    name: String,
    /// The member's directory, relative to the workspace root.
    dir: String,
    /// Package names of its normal and build dependencies (target-specific ones included).
    deps: BTreeSet<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_toml(path: &Path) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The package names of the dependency tables `kinds` of a manifest (and of its
/// `[target.*]` tables). A renamed dependency counts by its `package`; one taken from the
/// workspace by the workspace's `package` when it renames.
fn dependencies(manifest: &toml::Table, workspace_deps: &toml::Table) -> BTreeSet<String> {
    let kinds = ["dependencies", "build-dependencies"];
    let mut tables: Vec<&toml::Table> = kinds
        .iter()
        .filter_map(|k| manifest.get(*k).and_then(|t| t.as_table()))
        .collect();
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for t in targets.values().filter_map(|t| t.as_table()) {
            tables.extend(
                kinds
                    .iter()
                    .filter_map(|k| t.get(*k).and_then(|t| t.as_table())),
            );
        }
    }
    let mut out = BTreeSet::new();
    for table in tables {
        for (key, spec) in table {
            let renamed = |t: Option<&toml::Value>| {
                t.and_then(|t| t.get("package"))
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            };
            let from_workspace = spec.get("workspace").and_then(|w| w.as_bool()) == Some(true);
            let name = renamed(Some(spec))
                .or_else(|| {
                    from_workspace
                        .then(|| renamed(workspace_deps.get(key)))
                        .flatten()
                })
                .unwrap_or_else(|| key.clone());
            out.insert(name);
        }
    }
    out
}

/// The workspace's members, from the root Cargo.toml's `workspace.members`.
fn workspace(root: &Path) -> Vec<Member> {
    let manifest = parse_toml(&root.join("Cargo.toml"));
    let ws = manifest["workspace"]
        .as_table()
        .expect("the root Cargo.toml has [workspace]");
    let empty = toml::Table::new();
    let ws_deps = ws
        .get("dependencies")
        .and_then(|d| d.as_table())
        .unwrap_or(&empty);
    let members = ws["members"]
        .as_array()
        .expect("workspace.members is a list");
    members
        .iter()
        .map(|m| {
            let dir = m.as_str().expect("members are strings").to_string();
            assert!(
                !dir.contains('*'),
                "workspace member {dir}: globs are not supported by this test; list members"
            );
            let path = root.join(&dir).join("Cargo.toml");
            let t = parse_toml(&path);
            let name = t
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or_else(|| panic!("{}: no package.name", path.display()))
                .to_string();
            Member {
                name,
                dir,
                deps: dependencies(&t, ws_deps),
            }
        })
        .collect()
}

/// Rule 1: a message per crate of `model_free` that reaches `model` through workspace
/// crates, with the chain; and per name of `model_free` that is not a member (a renamed crate
/// must not slip out of the rule).
fn model_dependency_violations(
    members: &[Member],
    model_free: &[&str],
    model: &str,
) -> Vec<String> {
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut out = Vec::new();
    for &start in model_free {
        let Some(first) = by_name.get(start) else {
            out.push(format!(
                "`{start}` is listed as model-free but is not a workspace member (renamed? update \
                 MODEL_FREE in tests/tests/architecture.rs and ARCHITECTURE.md)"
            ));
            continue;
        };
        // Breadth-first over workspace dependencies, remembering who led where.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([first.name.as_str()]);
        let mut seen = BTreeSet::from([first.name.as_str()]);
        let mut found = false;
        while let Some(n) = queue.pop_front() {
            if n == model {
                found = true;
                break;
            }
            let Some(m) = by_name.get(n) else { continue };
            for d in &m.deps {
                if let Some(dm) = by_name.get(d.as_str()) {
                    if seen.insert(dm.name.as_str()) {
                        parent.insert(dm.name.as_str(), n);
                        queue.push_back(dm.name.as_str());
                    }
                }
            }
        }
        if found {
            let mut chain = vec![model];
            while let Some(p) = parent.get(chain.last().unwrap()) {
                chain.push(p);
            }
            chain.reverse();
            out.push(format!(
                "`{start}` ({}/Cargo.toml) must not depend on `{model}`, but does: {}",
                first.dir,
                chain.join(" → ")
            ));
        }
    }
    out
}

/// Rule 2: a message per member whose package name is in no heading or table row of the map.
fn map_violations(members: &[Member], map: &str) -> Vec<String> {
    let mut on_map = BTreeSet::new();
    for line in map.lines() {
        let l = line.trim_start();
        if !(l.starts_with('#') || l.starts_with('|')) {
            continue;
        }
        for (i, part) in l.split('`').enumerate() {
            if i % 2 == 1 {
                on_map.insert(part.trim().to_string());
            }
        }
    }
    members
        .iter()
        .filter(|m| !on_map.contains(&m.name))
        .map(|m| {
            format!(
                "workspace crate `{}` ({}) is missing from ARCHITECTURE.md's map: add a heading \
                 or a table row naming it in backticks, with its entry points and invariants",
                m.name, m.dir
            )
        })
        .collect()
}

/// Rule 3: a message per binary source file (path relative to the root, text) over the line
/// budget, per command module `pub fn` other than `run`, per trait implementation.
fn cli_violations(files: &[(String, String)], max_lines: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let lines = text.lines().count();
        if lines > max_lines {
            out.push(format!(
                "{path}: {lines} lines, over the binary's budget of {max_lines} per file (move \
                 the logic into a library crate)"
            ));
        }
        let is_command = path.ends_with("_cmd.rs");
        for (i, line) in text.lines().enumerate() {
            let at = format!("{path}:{}", i + 1);
            if is_command {
                if let Some(rest) = line.strip_prefix("pub fn ") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != "run" {
                        out.push(format!(
                            "{at}: `pub fn {name}` in a command module: a command module's only \
                             public function is `run`; shared logic belongs in a library crate"
                        ));
                    }
                }
            }
            let t = line.trim_start();
            let is_impl = t.starts_with("impl ") || t.starts_with("impl<");
            let head = t.split('{').next().unwrap_or(t);
            if is_impl && head.contains(" for ") {
                out.push(format!(
                    "{at}: `{}` implements a trait in the binary: trait implementations \
                     (verifiers, backends, sandboxes, ...) belong in a library crate",
                    head.trim()
                ));
            }
        }
    }
    out
}

/// The binary's `.rs` files under `dir`, paths relative to `root`.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, read(&p)));
        }
    }
}

fn fail_on(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{what} (see ARCHITECTURE.md, \"Checked rules\"):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn model_free_crates_do_not_depend_on_the_model() {
    let members = workspace(&root());
    fail_on(
        "crates that must build without the model depend on it",
        model_dependency_violations(&members, MODEL_FREE, MODEL),
    );
}

#[test]
fn every_workspace_crate_is_on_the_map() {
    let root = root();
    let members = workspace(&root);
    assert!(members.len() >= 10, "{members:?}");
    fail_on(
        "crates missing from the map",
        map_violations(&members, &read(&root.join("ARCHITECTURE.md"))),
    );
}

#[test]
fn the_binary_holds_no_logic() {
    let root = root();
    let cli = workspace(&root)
        .into_iter()
        .find(|m| m.name == "rlvr-cli")
        .expect("the workspace has rlvr-cli");
    let mut files = Vec::new();
    rust_files(&root, &root.join(&cli.dir).join("src"), &mut files);
    assert!(files.len() >= 2, "{files:?}");
    fail_on(
        "the binary holds logic",
        cli_violations(&files, CLI_MAX_LINES),
    );
}

// The rules on made-up workspaces: each catches what it should and names the culprit.

fn member(name: &str, deps: &[&str]) -> Member {
    Member {
        name: name.into(),
        dir: format!("crates/{name}"),
        deps: deps.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn rule_1_catches_direct_and_transitive_model_dependencies() {
    let ws = vec![
        member("rlvr-model", &["candle-core"]),
        member("rlvr-rollout", &["rlvr-model"]),
        member("rlvr-data", &["serde"]),
        member("rlvr-rewards", &["rlvr-verify", "rlvr-rollout", "tokio"]),
        member("rlvr-verify", &[]),
        member("rlvr-store", &["rlvr-model"]),
    ];
    let v = model_dependency_violations(
        &ws,
        &[
            "rlvr-data",
            "rlvr-rewards",
            "rlvr-verify",
            "rlvr-store",
            "rlvr-gone",
        ],
        "rlvr-model",
    );
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(
        v[0].starts_with("`rlvr-rewards` (crates/rlvr-rewards/Cargo.toml)"),
        "{}",
        v[0]
    );
    assert!(
        v[0].ends_with("rlvr-rewards → rlvr-rollout → rlvr-model"),
        "{}",
        v[0]
    );
    assert!(v[1].ends_with("rlvr-store → rlvr-model"), "{}", v[1]);
    assert!(v[2].contains("`rlvr-gone`"), "{}", v[2]);
}

#[test]
fn dependencies_count_renames_targets_and_build_but_not_dev() {
    let manifest: toml::Table = r#"
        [dependencies]
        a = "1"
        b = { workspace = true }
        m = { package = "rlvr-model", path = "../rlvr-model" }
        [build-dependencies]
        c = "1"
        [dev-dependencies]
        dev-only = "1"
        [target.'cfg(unix)'.dependencies]
        d = "1"
    "#
    .parse()
    .unwrap();
    let ws: toml::Table = r#"b = { package = "real-b", path = "x" }"#.parse().unwrap();
    let deps = dependencies(&manifest, &ws);
    let want: BTreeSet<String> = ["a", "real-b", "rlvr-model", "c", "d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(deps, want);
}

#[test]
fn rule_2_catches_a_crate_missing_from_the_map() {
    let ws = vec![member("rlvr-data", &[]), member("rlvr-new", &[])];
    let map = "# Map\n\n### `rlvr-data`\n\nprose naming `rlvr-new` does not count\n";
    let v = map_violations(&ws, map);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].contains("`rlvr-new` (crates/rlvr-new)"), "{}", v[0]);
    let table = "| crate | what |\n|---|---|\n| `rlvr-data` | data |\n| `rlvr-new` | new |\n";
    assert!(map_violations(&ws, table).is_empty());
}

#[test]
fn rule_3_catches_long_files_public_helpers_and_trait_impls() {
    let files = vec![
        (
            "crates/rlvr-cli/src/x_cmd.rs".to_string(),
            "pub fn run() {}\npub fn helper() {}\nimpl Args {\n    pub fn load() {}\n}\n"
                .to_string(),
        ),
        (
            "crates/rlvr-cli/src/y_cmd.rs".to_string(),
            "struct V;\nimpl Verifier for V {\n}\nimpl<T: X> From<T> for V {}\n".to_string(),
        ),
        (
            "crates/rlvr-cli/src/main.rs".to_string(),
            "fn main() {}\n".repeat(6),
        ),
    ];
    let v = cli_violations(&files, 5);
    assert_eq!(v.len(), 4, "{v:#?}");
    assert!(
        v[0].starts_with("crates/rlvr-cli/src/x_cmd.rs:2: `pub fn helper`"),
        "{}",
        v[0]
    );
    assert!(
        v[1].starts_with("crates/rlvr-cli/src/y_cmd.rs:2: `impl Verifier for V`"),
        "{}",
        v[1]
    );
    assert!(
        v[2].starts_with("crates/rlvr-cli/src/y_cmd.rs:4:"),
        "{}",
        v[2]
    );
    assert!(
        v[3].starts_with("crates/rlvr-cli/src/main.rs: 6 lines"),
        "{}",
        v[3]
    );
}
