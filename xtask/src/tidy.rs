//! `cargo xtask tidy`: the architecture invariants of docs/architecture.md that a machine can
//! check, plus source hygiene. Each check is a function below named for what it keeps:
//!
//! - [`check_yaml_only_in_registry`]: only wisp-registry depends on the YAML crate.
//! - [`check_only_cli_prints`]: only wisp-cli prints to the terminal.
//! - [`check_layers`]: no crate depends on one above it (the [`LAYERS`] table).
//! - [`check_safety_comments`]: every `unsafe` block or impl carries a `// SAFETY:` comment.
//! - [`check_unsafe_fn_docs`]: every `unsafe fn` has a `# Safety` doc section (a failure, see
//!   [`UNSAFE_FN_DOCS_FAIL`]).
//! - [`check_docs`]: docs/architecture.md exists.
//!
//! Every finding names the file, and the line where there is one. Manifests are parsed as TOML
//! (toml_edit, which keeps the spans that give the lines); Rust sources are read with comments
//! and the contents of string and char literals blanked out ([`code_only`]), so that a word in a
//! comment or a string is never taken for code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml_edit::{Document, Item, TableLike};

use crate::workspace_root;

// ---------------------------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------------------------

/// The layers of the workspace's crates, lowest first. A crate's normal and build dependencies
/// may only be crates of a lower layer (never one of its own layer, never one above); its
/// dev-dependencies may be any crate but wisp-cli. A workspace crate missing from this table is
/// an error, so that a new crate gets its place deliberately; a crate named here that does not
/// exist (yet) is fine. Tooling ([`TOOLING`]) is outside the table.
pub const LAYERS: &[&[&str]] = &[
    // 0. Plain data; may use no Wisp crate.
    &["wisp-core"],
    // 1. The mailbox and the pure policies; may use wisp-core (today none of them uses even that).
    &["wisp-mailbox", "wisp-security", "wisp-supervisor"],
    // 2. Worker pools, scheduling state, timers; may use layers 0-1 (today it uses none).
    &["wisp-scheduler"],
    // 3. YAML registry loading, the name registry; may use layers 0-2 (today wisp-core, and the
    //    security and supervisor types its entries carry).
    &["wisp-registry"],
    // 4. The process contract (what any process body sees of the runtime); may use layers 0-3,
    //    and is meant to use wisp-core and wisp-mailbox only.
    &["wisp-process"],
    // 5. Luau shards; may use layers 0-4 (today all of them).
    &["wisp-lua"],
    // 6. The composition root; may use layers 0-5.
    &["wisp-runtime"],
    // 7. The `wisp` binary; may use everything below.
    &["wisp-cli"],
];

/// Workspace members that are tooling, outside the layer table and the printing rule: they
/// drive the runtime from outside (xtask) or measure it (benches).
pub const TOOLING: &[&str] = &["xtask", "wisp-benches"];

/// The one crate that may print to the terminal.
const PRINTING_CRATE: &str = "wisp-cli";

/// The one crate that may depend on a YAML crate.
const YAML_CRATE_OWNER: &str = "wisp-registry";

/// Crates (package names) that parse YAML. `serde_yaml` in this workspace is `serde_norway`
/// renamed; the others are here so that swapping the crate does not slip past the check.
const YAML_CRATES: &[&str] =
    &["serde_yaml", "serde_norway", "serde_yml", "serde_yaml_ng", "yaml-rust", "yaml-rust2", "saphyr"];

/// Terminal output allowed outside wisp-cli: (file, what, why). Each entry must say why that
/// place is legitimate (a panic hook, say). Empty: no crate but wisp-cli prints today.
const PRINT_ALLOWED: &[(&str, &str, &str)] = &[];

/// Whether an `unsafe fn` without a `# Safety` doc section fails the run. On since every
/// `unsafe fn` has one; off, the check prints the list as a warning instead.
const UNSAFE_FN_DOCS_FAIL: bool = true;

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// One thing a check found: a file (relative to the workspace root), maybe a line, a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    fn new(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem { file: file.to_string(), line, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Normal,
    Dev,
    Build,
}

/// One dependency as a manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The name the manifest uses (the table key).
    pub key: String,
    /// The package it is: `package = "..."`, else for `workspace = true` the workspace's
    /// `package`, else the key.
    pub package: String,
    pub kind: DepKind,
    /// The section it is in, e.g. `[dependencies]` or `[target.'cfg(loom)'.dependencies]`.
    pub section: String,
    pub line: Option<usize>,
}

/// What the checks need of one Cargo.toml.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Relative to the workspace root, e.g. `crates/wisp-core/Cargo.toml`.
    pub file: String,
    /// `[package] name`, if the manifest has a package.
    pub package: Option<String>,
    pub deps: Vec<Dep>,
}

/// What the root manifest's `[workspace]` says: its members (as written, globs included) and
/// `[workspace.dependencies]` as key -> package (`serde_yaml` -> `serde_norway`).
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub members: Vec<String>,
    pub dependencies: BTreeMap<String, String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The `[workspace]` table of a root manifest.
pub fn parse_workspace(text: &str) -> Result<Workspace> {
    let doc = Document::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ws = Workspace::default();
    let Some(table) = doc.get("workspace").and_then(Item::as_table_like) else { return Ok(ws) };
    if let Some(members) = table.get("members").and_then(Item::as_array) {
        ws.members = members.iter().filter_map(|v| v.as_str().map(String::from)).collect();
    }
    if let Some(deps) = table.get("dependencies").and_then(Item::as_table_like) {
        for (key, item) in deps.iter() {
            let package = item.get("package").and_then(Item::as_str).unwrap_or(key);
            ws.dependencies.insert(key.to_string(), package.to_string());
        }
    }
    Ok(ws)
}

/// The package name and every dependency of a manifest: `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]` (and their old underscored spellings), plain or under
/// `[target.'...']`. A `workspace = true` dependency is resolved through `ws`.
pub fn parse_manifest(file: &str, text: &str, ws: &Workspace) -> Result<Manifest> {
    const SECTIONS: &[(&str, DepKind)] = &[
        ("dependencies", DepKind::Normal),
        ("dev-dependencies", DepKind::Dev),
        ("dev_dependencies", DepKind::Dev),
        ("build-dependencies", DepKind::Build),
        ("build_dependencies", DepKind::Build),
    ];
    let doc = Document::parse(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let root = doc.as_table();
    let package = root.get("package").and_then(|p| p.get("name")).and_then(Item::as_str).map(String::from);
    let mut deps = Vec::new();
    let mut read = |table: &dyn TableLike, kind: DepKind, section: String| {
        for (key, item) in table.iter() {
            let explicit = item.get("package").and_then(Item::as_str);
            let inherited = item.get("workspace").and_then(Item::as_bool) == Some(true);
            let package = match explicit {
                Some(p) => p.to_string(),
                None if inherited => ws.dependencies.get(key).cloned().unwrap_or_else(|| key.to_string()),
                None => key.to_string(),
            };
            let span = table.key(key).and_then(|k| k.span()).or_else(|| item.span());
            let line = span.map(|s| line_of(text, s.start));
            deps.push(Dep { key: key.to_string(), package, kind, section: section.clone(), line });
        }
    };
    for &(name, kind) in SECTIONS {
        if let Some(table) = root.get(name).and_then(Item::as_table_like) {
            read(table, kind, format!("[{name}]"));
        }
    }
    if let Some(targets) = root.get("target").and_then(Item::as_table_like) {
        for (cfg, target) in targets.iter() {
            for &(name, kind) in SECTIONS {
                if let Some(table) = target.get(name).and_then(Item::as_table_like) {
                    read(table, kind, format!("[target.'{cfg}'.{name}]"));
                }
            }
        }
    }
    Ok(Manifest { file: file.to_string(), package, deps })
}

/// The member directories `members` names, relative to `root`: `dir/*` is every directory in
/// `dir` that holds a Cargo.toml; other entries are taken as they are.
fn expand_members(root: &Path, members: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for member in members {
        if let Some(dir) = member.strip_suffix("/*") {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
            let mut found: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                .collect();
            found.sort();
            out.extend(found);
        } else if root.join(member).join("Cargo.toml").is_file() {
            out.push(member.clone());
        }
    }
    out
}

/// The root manifest and every member's, parsed.
fn load_manifests(root: &Path) -> Result<Vec<Manifest>> {
    let root_text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let ws = parse_workspace(&root_text)?;
    let mut manifests = vec![parse_manifest("Cargo.toml", &root_text, &ws)?];
    for member in expand_members(root, &ws.members) {
        let file = format!("{member}/Cargo.toml");
        let text = std::fs::read_to_string(root.join(&file)).with_context(|| format!("reading {file}"))?;
        manifests.push(parse_manifest(&file, &text, &ws)?);
    }
    Ok(manifests)
}

fn layer_of(krate: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&krate))
}

/// Keeps "only wisp-registry parses YAML": no manifest but wisp-registry's may depend on a YAML
/// crate, in any dependency section (normal, dev, build, target-specific), whatever name it is
/// given there (a rename in the dependency or in `[workspace.dependencies]` is seen through).
/// `[workspace.dependencies]` itself only declares the crate for wisp-registry to inherit, and
/// is not a dependency of anything.
pub fn check_yaml_only_in_registry(manifests: &[Manifest]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for manifest in manifests {
        if manifest.package.as_deref() == Some(YAML_CRATE_OWNER) {
            continue;
        }
        let who = manifest.package.as_deref().unwrap_or("the workspace root");
        for dep in &manifest.deps {
            if YAML_CRATES.contains(&dep.package.as_str()) || YAML_CRATES.contains(&dep.key.as_str()) {
                let named = if dep.key == dep.package {
                    format!("`{}`", dep.key)
                } else {
                    format!("`{}` (package `{}`)", dep.key, dep.package)
                };
                problems.push(Problem::new(
                    &manifest.file,
                    dep.line,
                    format!("{who} depends on the YAML crate {named} in {}: only {YAML_CRATE_OWNER} parses YAML; others take its typed entries", dep.section),
                ));
            }
        }
    }
    problems
}

/// Keeps "dependencies point down; nothing points up": every workspace crate but the tooling
/// has a layer in [`LAYERS`]; its normal and build dependencies on workspace crates are all of
/// lower layers; its dev-dependencies never name wisp-cli.
pub fn check_layers(manifests: &[Manifest]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut workspace_crates: BTreeSet<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    workspace_crates.extend(TOOLING);
    workspace_crates.extend(manifests.iter().filter_map(|m| m.package.as_deref()));
    let top = LAYERS.len() - 1;
    for manifest in manifests {
        let Some(krate) = manifest.package.as_deref() else { continue };
        if TOOLING.contains(&krate) {
            continue;
        }
        let Some(layer) = layer_of(krate) else {
            problems.push(Problem::new(
                &manifest.file,
                None,
                format!("crate `{krate}` has no layer: add it to LAYERS in xtask/src/tidy.rs, saying what it may use"),
            ));
            continue;
        };
        for dep in &manifest.deps {
            let target = dep.package.as_str();
            if !workspace_crates.contains(target) {
                continue;
            }
            match dep.kind {
                DepKind::Dev => {
                    if layer_of(target) == Some(top) {
                        problems.push(Problem::new(
                            &manifest.file,
                            dep.line,
                            format!("`{krate}` dev-depends on `{target}` in {}: nothing may depend on the top crate", dep.section),
                        ));
                    }
                }
                DepKind::Normal | DepKind::Build => match layer_of(target) {
                    None => problems.push(Problem::new(
                        &manifest.file,
                        dep.line,
                        format!("`{krate}` depends on `{target}` in {}, which has no layer (tooling, or missing from LAYERS)", dep.section),
                    )),
                    Some(to) if to >= layer => problems.push(Problem::new(
                        &manifest.file,
                        dep.line,
                        format!(
                            "`{krate}` (layer {layer}) depends on `{target}` (layer {to}) in {}: a crate may use only crates of lower layers (LAYERS in xtask/src/tidy.rs)",
                            dep.section
                        ),
                    )),
                    Some(_) => {}
                },
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Rust sources
// ---------------------------------------------------------------------------------------------

/// One Rust file under crates/.
#[derive(Debug, Clone)]
pub struct Source {
    /// Relative to the workspace root.
    pub file: String,
    /// The package of the crate it belongs to.
    pub krate: String,
    /// Whether it is not part of the crate's non-test code: under tests/, benches/ or
    /// examples/, a build script, or a module declared under `#[cfg(test)]`.
    pub test_only: bool,
    pub text: String,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with comments and the contents of string and char literals replaced by spaces (line
/// breaks kept, and the quotes of string literals), so that line N of the result is line N of
/// the source with only its code left.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (prev.is_none_or(|p| !is_ident(p)) || (prev == Some('b') && (i < 2 || !is_ident(chars[i - 2]))))
        {
            // A raw string r"..." or r#"..."#, or r#ident (a raw identifier: no quote).
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('r');
            out.extend(std::iter::repeat_n('#', hashes));
            out.push('"');
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes {
                    out.push('"');
                    out.extend(std::iter::repeat_n('#', hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => {
                        out.push(' ');
                        if let Some(&e) = chars.get(i + 1) {
                            out.push(blank(e));
                        }
                        i += 2;
                    }
                    '"' => {
                        out.push('"');
                        i += 1;
                        break;
                    }
                    other => {
                        out.push(blank(other));
                        i += 1;
                    }
                }
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime or label ('a).
            let end = if next == Some('\\') {
                chars[i + 3.min(chars.len() - i)..].iter().position(|&q| q == '\'').map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.push('\'');
                    for &ch in &chars[i + 1..end] {
                        out.push(blank(ch));
                    }
                    out.push('\'');
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a `cfg` predicate holds only in test builds: `test`, or `all(..., test, ...)`.
fn cfg_is_test_only(predicate: &str) -> bool {
    let p: String = predicate.chars().filter(|c| !c.is_whitespace()).collect();
    if p == "test" {
        return true;
    }
    let Some(inner) = p.strip_prefix("all(").and_then(|s| s.strip_suffix(')')) else { return false };
    let mut depth = 0;
    let mut start = 0;
    let mut args = Vec::new();
    for (at, ch) in inner.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    args.push(&inner[start..]);
    args.contains(&"test")
}

/// What of a file's code exists only in test builds (on code from [`code_only`]): per line
/// whether it is, and the modules declared under a test-only `cfg` as `mod name;` (whose files
/// are then test-only as a whole). A `#![cfg(test)]` makes every line test-only.
pub fn test_only_lines(code: &str) -> (Vec<bool>, Vec<String>) {
    let chars: Vec<char> = code.chars().collect();
    let line_count = code.lines().count().max(1);
    let mut test = vec![false; line_count];
    let mut mods = Vec::new();
    let mut line = 0;
    let mut line_at = Vec::with_capacity(chars.len() + 1);
    for &c in &chars {
        line_at.push(line);
        if c == '\n' {
            line += 1;
        }
    }
    line_at.push(line);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '#' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let inner = chars.get(j) == Some(&'!');
        if inner {
            j += 1;
        }
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        if chars.get(j) != Some(&'[') {
            i += 1;
            continue;
        }
        // The attribute's text, up to its matching `]`.
        let open = j;
        let mut depth = 0;
        let mut close = None;
        for (k, &c) in chars.iter().enumerate().skip(open) {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { break };
        let attr: String = chars[open + 1..close].iter().filter(|c| !c.is_whitespace()).collect();
        let is_test_cfg = attr.strip_prefix("cfg(").and_then(|s| s.strip_suffix(')')).is_some_and(cfg_is_test_only);
        if !is_test_cfg {
            i = close + 1;
            continue;
        }
        if inner {
            return (vec![true; line_count], Vec::new());
        }
        // The item the attribute is on: up to a `;` outside braces, or its closing brace.
        let mut depth = 0;
        let mut end = chars.len() - 1;
        let mut header_end = None;
        for (k, &c) in chars.iter().enumerate().skip(close + 1) {
            match c {
                '{' => {
                    header_end.get_or_insert(k);
                    depth += 1;
                }
                '}' => {
                    depth -= 1;
                    if depth <= 0 {
                        end = k;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    header_end.get_or_insert(k);
                    end = k;
                    if let Some(name) = declared_module(&chars[close + 1..k]) {
                        mods.push(name);
                    }
                    break;
                }
                _ => {}
            }
        }
        for flag in &mut test[line_at[i]..=line_at[end].min(line_count - 1)] {
            *flag = true;
        }
        i = end + 1;
    }
    (test, mods)
}

/// The module a `mod name` declaration (attributes and visibility allowed before it) names.
fn declared_module(header: &[char]) -> Option<String> {
    let text = strip_attributes(&header.iter().collect::<String>());
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "mod")?;
    words.get(at + 1).map(|w| w.to_string())
}

/// `text` without its `#[...]` (and `#![...]`) attributes.
fn strip_attributes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '#' {
            let mut j = i + 1;
            if chars.get(j) == Some(&'!') {
                j += 1;
            }
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if chars.get(j) == Some(&'[') {
                let mut depth = 0;
                while j < chars.len() {
                    match chars[j] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                out.push(' ');
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Terminal output in code (from [`code_only`]): the line and what (`println!`, `stdout()`,
/// ...) of each print macro or standard stream handle, leaving out test-only lines.
pub fn terminal_output(code: &str) -> Vec<(usize, String)> {
    const MACROS: &[&str] = &["print", "println", "eprint", "eprintln", "dbg"];
    const STREAMS: &[&str] = &["stdout", "stderr"];
    let (test, _) = test_only_lines(code);
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        if test.get(n).copied().unwrap_or(false) {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !is_ident(chars[i]) || (i > 0 && is_ident(chars[i - 1])) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            let before: String = chars[..start].iter().collect();
            let before = before.trim_end();
            if MACROS.contains(&word.as_str()) && after == Some('!') {
                found.push((n + 1, format!("{word}!")));
            } else if STREAMS.contains(&word.as_str())
                && after == Some('(')
                && !before.ends_with('.')
                && !before.ends_with("fn")
            {
                found.push((n + 1, format!("{word}()")));
            }
        }
    }
    found
}

/// Keeps "only wisp-cli prints": no print macro (`print!`, `println!`, `eprint!`, `eprintln!`,
/// `dbg!`) and no `stdout()`/`stderr()` handle in the non-test code of any other crate, except
/// the places in [`PRINT_ALLOWED`]. Test code (`#[cfg(test)]` items, tests/, benches/,
/// examples/) and build scripts (whose output goes to cargo) are not looked at.
pub fn check_only_cli_prints(sources: &[Source]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for source in sources {
        if source.krate == PRINTING_CRATE || source.test_only {
            continue;
        }
        for (line, what) in terminal_output(&code_only(&source.text)) {
            let allowed = PRINT_ALLOWED.iter().any(|&(file, w, _)| file == source.file && w == what);
            if !allowed {
                problems.push(Problem::new(
                    &source.file,
                    Some(line),
                    format!(
                        "`{what}` in {}: only {PRINTING_CRATE} prints (others write through TerminalIo or log through `tracing`; a legitimate exception goes in PRINT_ALLOWED with its reason)",
                        source.krate
                    ),
                ));
            }
        }
    }
    problems
}

/// Whether `line` (code, or a raw line: the code part before any `//` is looked at) opens an
/// unsafe block or impl.
fn is_unsafe_use(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    let mut rest = code;
    while let Some(at) = rest.find("unsafe") {
        let before = rest[..at].chars().last();
        let after = rest[at + "unsafe".len()..].trim_start();
        let word_start = before.is_none_or(|c| !is_ident(c));
        if word_start && (after.starts_with('{') || after.starts_with("impl") || after.is_empty()) {
            return true;
        }
        rest = &rest[at + "unsafe".len()..];
    }
    false
}

/// Keeps "every unsafe block or impl says why it is sound": each line of code under crates/
/// that opens one has `SAFETY:` on it or within the 3 lines above. Tests included. Returns the
/// problems and how many unsafe uses were seen.
pub fn check_safety_comments(sources: &[Source]) -> (Vec<Problem>, usize) {
    let mut problems = Vec::new();
    let mut seen = 0;
    for source in sources {
        let code = code_only(&source.text);
        let raw: Vec<&str> = source.text.lines().collect();
        for (i, line) in code.lines().enumerate() {
            if !is_unsafe_use(line) {
                continue;
            }
            seen += 1;
            let from = i.saturating_sub(3);
            if !raw[from..=i.min(raw.len() - 1)].iter().any(|l| l.contains("SAFETY:")) {
                problems.push(Problem::new(
                    &source.file,
                    Some(i + 1),
                    "`unsafe` without a `// SAFETY:` comment on its line or in the 3 lines above",
                ));
            }
        }
    }
    (problems, seen)
}

/// Whether the header of a block (the code since the last `;`, `{` or `}`) is an `impl Trait
/// for Type`.
fn is_trait_impl(header: &str) -> bool {
    let text = strip_attributes(header);
    let words: Vec<&str> = text.split(|c: char| !is_ident(c)).filter(|w| !w.is_empty()).collect();
    let first = words.iter().find(|w| !matches!(**w, "unsafe" | "default"));
    first == Some(&"impl") && words.contains(&"for")
}

/// The `unsafe fn`s of a file's code (from [`code_only`]): line and name of each, leaving out
/// the methods of trait impls (their docs are the trait's).
pub fn unsafe_fns(code: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut stack: Vec<bool> = Vec::new();
    let mut header = String::new();
    let mut line = 1;
    let mut i = 0;
    let word_at = |at: usize| -> (String, usize) {
        let mut end = at;
        while end < chars.len() && is_ident(chars[end]) {
            end += 1;
        }
        (chars[at..end].iter().collect(), end)
    };
    let skip_ws = |mut at: usize| {
        while at < chars.len() && chars[at].is_whitespace() {
            at += 1;
        }
        at
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                header.push(' ');
            }
            '{' => {
                stack.push(is_trait_impl(&header));
                header.clear();
            }
            '}' => {
                stack.pop();
                header.clear();
            }
            ';' => header.clear(),
            _ if is_ident(c) && (i == 0 || !is_ident(chars[i - 1])) => {
                let (word, end) = word_at(i);
                header.push_str(&word);
                if word == "unsafe" {
                    let mut at = skip_ws(end);
                    let (mut next, mut next_end) = word_at(at);
                    if next == "extern" {
                        at = skip_ws(next_end);
                        if chars.get(at) == Some(&'"') {
                            let close =
                                chars[at + 1..].iter().position(|&q| q == '"').map_or(chars.len(), |p| at + 2 + p);
                            at = skip_ws(close);
                        }
                        (next, next_end) = word_at(at);
                    }
                    // `unsafe fn name`, not the pointer type `unsafe fn(...)`.
                    let (name, _) = word_at(skip_ws(next_end));
                    if next == "fn" && !name.is_empty() && stack.last() != Some(&true) {
                        found.push((line, name));
                    }
                }
                i = end;
                continue;
            }
            _ => header.push(c),
        }
        i += 1;
    }
    found
}

/// Whether the doc comment above line `line` (1-based) of `lines` has a `# Safety` section: the
/// `///` lines, attributes and comments right above it are looked at.
fn has_safety_section(lines: &[&str], line: usize) -> bool {
    lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim_start())
        .take_while(|l| l.starts_with("//") || l.starts_with("#["))
        .any(|l| l.strip_prefix("///").is_some_and(|doc| doc.trim_start().starts_with("# Safety")))
}

/// Keeps "an unsafe fn says what its callers must uphold": every `unsafe fn` under crates/
/// (but the methods of trait impls) has a `# Safety` section in its doc comment. The findings
/// are warnings while [`UNSAFE_FN_DOCS_FAIL`] is off.
pub fn check_unsafe_fn_docs(sources: &[Source]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for source in sources {
        let lines: Vec<&str> = source.text.lines().collect();
        for (line, name) in unsafe_fns(&code_only(&source.text)) {
            if !has_safety_section(&lines, line) {
                problems.push(Problem::new(
                    &source.file,
                    Some(line),
                    format!("`unsafe fn {name}` has no `# Safety` doc section"),
                ));
            }
        }
    }
    problems
}

/// Keeps the map in place: docs/architecture.md exists.
pub fn check_docs(root: &Path) -> Vec<Problem> {
    if root.join("docs/architecture.md").is_file() {
        Vec::new()
    } else {
        vec![Problem::new("docs/architecture.md", None, "missing")]
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file of the workspace members under crates/, with its crate and whether it is
/// test-only code.
fn load_sources(root: &Path, manifests: &[Manifest]) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for manifest in manifests {
        let Some(krate) = &manifest.package else { continue };
        let Some(dir) = manifest.file.strip_suffix("/Cargo.toml").filter(|d| d.starts_with("crates/")) else {
            continue;
        };
        let crate_dir = root.join(dir);
        let mut files = Vec::new();
        rust_files(&crate_dir, &mut files);
        files.sort();
        let mut texts = Vec::new();
        for path in &files {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            texts.push(text);
        }
        // Files of modules declared under `#[cfg(test)]` (`mod tests;`), and everything below them.
        let mut test_paths: Vec<PathBuf> = Vec::new();
        for (path, text) in files.iter().zip(&texts) {
            let (_, mods) = test_only_lines(&code_only(text));
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let parent = path.parent().unwrap_or(Path::new(""));
            let base =
                if matches!(stem.as_str(), "lib" | "main" | "mod") { parent.to_path_buf() } else { parent.join(&stem) };
            for name in mods {
                test_paths.push(base.join(format!("{name}.rs")));
                test_paths.push(base.join(&name));
            }
        }
        for (path, text) in files.into_iter().zip(texts) {
            let rel_to_crate = path.strip_prefix(&crate_dir).unwrap_or(&path);
            let first = rel_to_crate.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
            let test_only = matches!(first.as_deref(), Some("tests" | "benches" | "examples" | "build.rs"))
                || test_paths.iter().any(|t| path.starts_with(t));
            let file = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            sources.push(Source { file, krate: krate.clone(), test_only, text });
        }
    }
    Ok(sources)
}

/// What every check found in one workspace.
#[derive(Debug, Default)]
pub struct Report {
    pub manifests: usize,
    pub files: usize,
    pub unsafe_uses: usize,
    /// Failures.
    pub problems: Vec<Problem>,
    /// `unsafe fn`s without a `# Safety` section, while [`UNSAFE_FN_DOCS_FAIL`] is off.
    pub warnings: Vec<Problem>,
    /// Crates [`LAYERS`] names that the workspace does not have (yet).
    pub absent: Vec<&'static str>,
}

/// Runs every check on the workspace at `root`.
pub fn check_workspace(root: &Path) -> Result<Report> {
    let manifests = load_manifests(root)?;
    let sources = load_sources(root, &manifests)?;
    let mut report = Report { manifests: manifests.len(), files: sources.len(), ..Report::default() };
    report.problems.extend(check_yaml_only_in_registry(&manifests));
    report.problems.extend(check_layers(&manifests));
    report.problems.extend(check_only_cli_prints(&sources));
    let (unsafe_problems, unsafe_uses) = check_safety_comments(&sources);
    report.unsafe_uses = unsafe_uses;
    report.problems.extend(unsafe_problems);
    report.problems.extend(check_docs(root));
    let undocumented = check_unsafe_fn_docs(&sources);
    if UNSAFE_FN_DOCS_FAIL {
        report.problems.extend(undocumented);
    } else {
        report.warnings = undocumented;
    }
    report.absent = LAYERS
        .iter()
        .flat_map(|l| l.iter().copied())
        .filter(|k| !manifests.iter().any(|m| m.package.as_deref() == Some(k)))
        .collect();
    Ok(report)
}

pub fn run() -> Result<()> {
    let report = check_workspace(&workspace_root())?;
    if !report.absent.is_empty() {
        println!("note: LAYERS names crates not in the workspace (yet): {}", report.absent.join(", "));
    }
    if !report.warnings.is_empty() {
        println!(
            "warning: {} `unsafe fn`s have no `# Safety` doc section (a warning, not a failure, until \
             UNSAFE_FN_DOCS_FAIL in xtask/src/tidy.rs is turned on):",
            report.warnings.len()
        );
        for p in &report.warnings {
            println!("warning: {p}");
        }
    }
    for p in &report.problems {
        println!("{p}");
    }
    println!(
        "tidy: {} manifests, {} files, {} unsafe uses, {} warnings, {} problems",
        report.manifests,
        report.files,
        report.unsafe_uses,
        report.warnings.len(),
        report.problems.len()
    );
    if !report.problems.is_empty() {
        bail!("tidy found {} problems", report.problems.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        parse_workspace(
            "[workspace]\nmembers = [\"crates/*\", \"xtask\"]\n\n[workspace.dependencies]\nwisp-core = { path = \"crates/wisp-core\" }\nserde_yaml = { package = \"serde_norway\", version = \"0.9\" }\nanyhow = \"1\"\n",
        )
        .unwrap()
    }

    fn manifest(file: &str, text: &str) -> Manifest {
        parse_manifest(file, text, &ws()).unwrap()
    }

    fn source(krate: &str, file: &str, text: &str) -> Source {
        Source { file: file.into(), krate: krate.into(), test_only: false, text: text.into() }
    }

    #[test]
    fn finds_unsafe_blocks_and_impls() {
        assert!(is_unsafe_use("    let x = unsafe { f() };"));
        assert!(is_unsafe_use("unsafe impl Send for X {}"));
        assert!(is_unsafe_use("    unsafe"));
        assert!(!is_unsafe_use("    // unsafe { }"));
        assert!(!is_unsafe_use("pub unsafe fn f() {}"));
        assert!(!is_unsafe_use("let not_unsafe = 1;"));
    }

    #[test]
    fn parses_the_workspace_table() {
        let ws = ws();
        assert_eq!(ws.members, ["crates/*", "xtask"]);
        assert_eq!(ws.dependencies["serde_yaml"], "serde_norway");
        assert_eq!(ws.dependencies["anyhow"], "anyhow");
    }

    #[test]
    fn parses_every_dependency_section_with_lines() {
        let m = manifest(
            "crates/a/Cargo.toml",
            "[package]\nname = \"a\"\n\n[dependencies]\nserde_yaml.workspace = true\nyaml = { package = \"serde_yml\", version = \"1\" }\n\n[dev-dependencies]\nwisp-core = { workspace = true }\n\n[build-dependencies.cc]\nversion = \"1\"\n\n[target.'cfg(loom)'.dependencies]\nloom = \"0.7\"\n",
        );
        assert_eq!(m.package.as_deref(), Some("a"));
        let got: Vec<(&str, &str, DepKind, &str, Option<usize>)> =
            m.deps.iter().map(|d| (d.key.as_str(), d.package.as_str(), d.kind, d.section.as_str(), d.line)).collect();
        assert_eq!(
            got,
            [
                ("serde_yaml", "serde_norway", DepKind::Normal, "[dependencies]", Some(5)),
                ("yaml", "serde_yml", DepKind::Normal, "[dependencies]", Some(6)),
                ("wisp-core", "wisp-core", DepKind::Dev, "[dev-dependencies]", Some(9)),
                ("cc", "cc", DepKind::Build, "[build-dependencies]", Some(11)),
                ("loom", "loom", DepKind::Normal, "[target.'cfg(loom)'.dependencies]", Some(15)),
            ]
        );
    }

    #[test]
    fn yaml_only_in_the_registry() {
        let registry = manifest(
            "crates/wisp-registry/Cargo.toml",
            "[package]\nname = \"wisp-registry\"\n[dependencies]\nserde_yaml.workspace = true\n",
        );
        let renamed = manifest("crates/wisp-lua/Cargo.toml", "[package]\nname = \"wisp-lua\"\n[dependencies]\nanyhow.workspace = true\nconfig = { package = \"serde_norway\", version = \"0.9\" }\n");
        let dev = manifest(
            "crates/wisp-core/Cargo.toml",
            "[package]\nname = \"wisp-core\"\n[dev-dependencies]\nserde_yaml.workspace = true\n",
        );
        let root = parse_manifest(
            "Cargo.toml",
            "[workspace.dependencies]\nserde_yaml = { package = \"serde_norway\", version = \"0.9\" }\n",
            &ws(),
        )
        .unwrap();
        let problems = check_yaml_only_in_registry(&[registry, renamed, dev, root]);
        let at: Vec<String> = problems.iter().map(|p| format!("{}:{}", p.file, p.line.unwrap())).collect();
        assert_eq!(at, ["crates/wisp-lua/Cargo.toml:5", "crates/wisp-core/Cargo.toml:4"]);
        assert!(problems[0].message.contains("`config` (package `serde_norway`)"), "{}", problems[0]);
    }

    #[test]
    fn layers_point_down() {
        let m = |name: &str, deps: &str| {
            manifest(&format!("crates/{name}/Cargo.toml"), &format!("[package]\nname = \"{name}\"\n{deps}"))
        };
        let ok = [
            m("wisp-core", "[dev-dependencies]\nwisp-runtime.workspace = true\n"),
            m(
                "wisp-lua",
                "[dependencies]\nwisp-core.workspace = true\nwisp-registry = { path = \"../wisp-registry\" }\n",
            ),
            m("wisp-cli", "[dependencies]\nwisp-runtime.workspace = true\n"),
            manifest(
                "xtask/Cargo.toml",
                "[package]\nname = \"xtask\"\n[dependencies]\nwisp-cli = { path = \"../crates/wisp-cli\" }\n",
            ),
        ];
        assert_eq!(check_layers(&ok), []);

        let bad = [
            m("wisp-registry", "[dependencies]\nwisp-lua.workspace = true\n"),
            m("wisp-mailbox", "[build-dependencies]\nwisp-security.workspace = true\n"),
            m("wisp-runtime", "[dev-dependencies]\nwisp-cli.workspace = true\n"),
            m("wisp-new", "[dependencies]\nwisp-core.workspace = true\n"),
            m("wisp-core", "[target.'cfg(unix)'.dependencies]\nwisp-benches = { path = \"../../benches\" }\n"),
        ];
        let problems = check_layers(&bad);
        let at: Vec<String> = problems.iter().map(|p| format!("{}:{:?}", p.file, p.line)).collect();
        assert_eq!(
            at,
            [
                "crates/wisp-registry/Cargo.toml:Some(4)",
                "crates/wisp-mailbox/Cargo.toml:Some(4)",
                "crates/wisp-runtime/Cargo.toml:Some(4)",
                "crates/wisp-new/Cargo.toml:None",
                "crates/wisp-core/Cargo.toml:Some(4)",
            ]
        );
        assert!(problems[0].message.contains("(layer 3) depends on `wisp-lua` (layer 5)"), "{}", problems[0]);
    }

    #[test]
    fn blanks_comments_and_literals() {
        let code = code_only("let s = \"println!(\\\"x\\\")\"; // println!\nlet c = '\"'; let r = r#\"a \" println!\"#; /* dbg!(\n */ x::<'a>()");
        assert!(!code.contains("println"), "{code}");
        assert!(!code.contains("dbg"), "{code}");
        assert_eq!(code.lines().count(), 3);
        assert!(code.contains("x::<'a>()"), "{code}");
        assert!(code.contains("let c = ' ';"), "{code}");
    }

    #[test]
    fn finds_test_only_code() {
        let code = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn b() {}\n}\n#[cfg(all(test, not(loom)))]\nmod more;\n#[cfg(not(test))]\nfn c() {}\n#[cfg(any(test, loom))]\nfn d() {}\n";
        let (lines, mods) = test_only_lines(code);
        assert_eq!(lines, [false, true, true, true, true, true, true, false, false, false, false]);
        assert_eq!(mods, ["more"]);
        let (lines, _) = test_only_lines("#![cfg(test)]\nfn a() {}\n");
        assert_eq!(lines, [true, true]);
    }

    #[test]
    fn finds_terminal_output() {
        let code = code_only(
            "fn f() {\n    println!(\"{x}\");\n    std::eprint!(\"x\");\n    let _ = dbg!(1);\n    let out = std::io::stdout();\n    io::stderr().lock();\n    Command::new(\"x\").stdout(Stdio::piped());\n    let s = format!(\"println!\");\n    my_println!(x);\n    // eprintln!(\"x\");\n}\n#[cfg(test)]\nmod tests {\n    fn t() { println!(\"t\"); }\n}\n",
        );
        let got: Vec<(usize, String)> = terminal_output(&code);
        let want: Vec<(usize, String)> =
            [(2, "println!"), (3, "eprint!"), (4, "dbg!"), (5, "stdout()"), (6, "stderr()")]
                .map(|(l, w)| (l, w.to_string()))
                .into();
        assert_eq!(got, want);
    }

    #[test]
    fn only_cli_prints() {
        let sources = [
            source("wisp-cli", "crates/wisp-cli/src/main.rs", "fn main() { println!(\"hi\"); }\n"),
            source("wisp-runtime", "crates/wisp-runtime/src/lib.rs", "fn f() {\n    eprintln!(\"oops\");\n}\n"),
            Source {
                test_only: true,
                ..source("wisp-runtime", "crates/wisp-runtime/tests/t.rs", "fn t() { println!(); }\n")
            },
        ];
        let problems = check_only_cli_prints(&sources);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].file.as_str(), problems[0].line), ("crates/wisp-runtime/src/lib.rs", Some(2)));
    }

    #[test]
    fn safety_comments() {
        let sources = [source(
            "a",
            "crates/a/src/lib.rs",
            "fn f() {\n    // SAFETY: fine.\n    unsafe { g() }\n    a();\n    b();\n    unsafe { h() }\n    let s = \"unsafe {\";\n}\n",
        )];
        let (problems, seen) = check_safety_comments(&sources);
        assert_eq!(seen, 2);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(6)]);
    }

    #[test]
    fn unsafe_fn_docs() {
        let text = "/// Does a.\n///\n/// # Safety\n/// `p` is valid.\n#[inline]\npub unsafe fn a(p: *const u8) {}\n\n/// Does b.\npub(crate) unsafe fn b() {}\nunsafe extern \"C-unwind\" fn c(l: *mut State) -> i32 { 0 }\nconst F: unsafe extern \"C\" fn(i32) = c;\nunsafe impl GlobalAlloc for A {\n    unsafe fn alloc(&self, l: Layout) -> *mut u8 { todo!() }\n}\nimpl A {\n    unsafe fn d(&self) {}\n}\nfn not_unsafe_fn() {}\n";
        let fns = unsafe_fns(&code_only(text));
        let names: Vec<&str> = fns.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let problems = check_unsafe_fn_docs(&[source("a", "crates/a/src/lib.rs", text)]);
        let got: Vec<(Option<usize>, &str)> = problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(9), "`unsafe fn b` has no `# Safety` doc section"),
                (Some(10), "`unsafe fn c` has no `# Safety` doc section"),
                (Some(16), "`unsafe fn d` has no `# Safety` doc section"),
            ]
        );
    }

    #[test]
    fn layer_table_has_each_crate_once() {
        let mut all: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(TOOLING.iter().all(|t| layer_of(t).is_none()));
    }

    /// The checks on a small workspace written to a temporary directory: manifests found
    /// through the members' globs, test modules in files of their own, tests/ left out.
    #[test]
    fn checks_a_workspace_on_disk() {
        let root = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"crates/*\", \"xtask\"]\n[workspace.dependencies]\nserde_yaml = { package = \"serde_norway\", version = \"0.9\" }\n",
        );
        write("docs/architecture.md", "# Architecture\n");
        write("xtask/Cargo.toml", "[package]\nname = \"xtask\"\n[dependencies]\nserde_yaml.workspace = true\n");
        write("crates/wisp-core/Cargo.toml", "[package]\nname = \"wisp-core\"\n");
        write("crates/wisp-core/src/lib.rs", "#[cfg(test)]\nmod tests;\npub fn f() {\n    println!(\"x\");\n}\n");
        write("crates/wisp-core/src/tests.rs", "fn t() { println!(\"t\"); }\n");
        write("crates/wisp-core/tests/it.rs", "fn t() { eprintln!(\"t\"); }\n");
        write(
            "crates/wisp-registry/Cargo.toml",
            "[package]\nname = \"wisp-registry\"\n[dependencies]\nserde_yaml.workspace = true\nwisp-core = { path = \"../wisp-core\" }\n",
        );
        write("crates/wisp-registry/src/lib.rs", "pub fn g() {\n    unsafe { h() }\n}\n");
        let report = check_workspace(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let report = report.unwrap();
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(report.manifests, 4);
        assert_eq!(report.files, 4);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("xtask/Cargo.toml:4: xtask depends on the YAML crate"), "{problems:#?}");
        assert!(problems[1].starts_with("crates/wisp-core/src/lib.rs:4: `println!` in wisp-core"), "{problems:#?}");
        assert!(problems[2].starts_with("crates/wisp-registry/src/lib.rs:2: `unsafe` without"), "{problems:#?}");
        assert!(report.absent.contains(&"wisp-process"));
    }
}
