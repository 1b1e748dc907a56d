//! `cargo xtask tidy`: every `unsafe` block or impl under crates/ carries a `// SAFETY:` comment
//! on its line or within the 3 lines above, and docs/architecture.md exists.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::workspace_root;

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

/// Whether the code part of `line` (before any `//`) opens an unsafe block or impl.
fn is_unsafe_use(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    let mut rest = code;
    while let Some(at) = rest.find("unsafe") {
        let before = rest[..at].chars().last();
        let after = rest[at + "unsafe".len()..].trim_start();
        let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if word_start && (after.starts_with('{') || after.starts_with("impl") || after.is_empty()) {
            return true;
        }
        rest = &rest[at + "unsafe".len()..];
    }
    false
}

pub fn run() -> Result<()> {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    files.sort();
    let mut checked = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("//") || !is_unsafe_use(line) {
                continue;
            }
            checked += 1;
            let from = i.saturating_sub(3);
            if !lines[from..=i].iter().any(|l| l.contains("SAFETY:")) {
                let rel = file.strip_prefix(&root).unwrap_or(file);
                problems.push(format!(
                    "{}:{}: `unsafe` without a `// SAFETY:` comment in the 3 lines above",
                    rel.display(),
                    i + 1
                ));
            }
        }
    }
    if !root.join("docs/architecture.md").is_file() {
        problems.push("docs/architecture.md is missing".into());
    }
    for p in &problems {
        println!("{p}");
    }
    println!("tidy: {} files, {checked} unsafe uses, {} problems", files.len(), problems.len());
    if !problems.is_empty() {
        bail!("tidy found {} problems", problems.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_unsafe_use;

    #[test]
    fn finds_unsafe_blocks_and_impls() {
        assert!(is_unsafe_use("    let x = unsafe { f() };"));
        assert!(is_unsafe_use("unsafe impl Send for X {}"));
        assert!(is_unsafe_use("    unsafe"));
        assert!(!is_unsafe_use("    // unsafe { }"));
        assert!(!is_unsafe_use("pub unsafe fn f() {}"));
        assert!(!is_unsafe_use("let not_unsafe = 1;"));
    }
}
