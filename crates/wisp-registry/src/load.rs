//! Reading registry files: YAML -> typed entries, with file/line/entry diagnostics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_yaml::{Mapping, Value as Y};
use wisp_security::{Actor, Condition, ConditionOp, Effect, Pattern, Policy};
use wisp_supervisor::RestartPolicyParams;

use crate::duration::{parse_duration, seconds};
use crate::*;

/// A problem inside one entry: the key to point at (for its line) and the message.
struct Problem {
    key: String,
    message: String,
}

#[derive(Default)]
struct Probs(Vec<Problem>);

impl Probs {
    fn push(&mut self, key: &str, message: String) {
        self.0.push(Problem { key: key.rsplit('.').next().unwrap_or(key).to_string(), message });
    }
}

fn type_name(v: &Y) -> &'static str {
    match v {
        Y::Null => "null",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}

fn wrong(p: &mut Probs, path: &str, want: &str, v: &Y) {
    p.push(path, format!("`{path}` must be {want}, found {}", type_name(v)));
}

fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Y> {
    m.get(key).filter(|v| !v.is_null())
}

fn get_str(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<String> {
    match get(m, key)? {
        Y::String(s) => Some(s.clone()),
        v => {
            wrong(p, path, "a string", v);
            None
        }
    }
}

fn get_bool(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<bool> {
    match get(m, key)? {
        Y::Bool(b) => Some(*b),
        v => {
            wrong(p, path, "a boolean", v);
            None
        }
    }
}

fn get_uint(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<u64> {
    match get(m, key)? {
        Y::Number(n) if n.as_u64().is_some() => n.as_u64(),
        v => {
            wrong(p, path, "a non-negative integer", v);
            None
        }
    }
}

fn get_f64(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<f64> {
    match get(m, key)? {
        Y::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => {
                p.push(path, format!("`{path}` must be a non-negative number"));
                None
            }
        },
        v => {
            wrong(p, path, "a number", v);
            None
        }
    }
}

fn get_duration(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<Duration> {
    match get(m, key)? {
        Y::String(s) => match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                p.push(path, format!("`{path}`: {e}"));
                None
            }
        },
        Y::Number(n) => match n.as_f64().and_then(seconds) {
            Some(d) => Some(d),
            None => {
                p.push(path, format!("`{path}` must be a non-negative duration"));
                None
            }
        },
        v => {
            wrong(p, path, "a duration (\"1s\", \"250ms\" or seconds)", v);
            None
        }
    }
}

fn get_map<'a>(m: &'a Mapping, key: &str, path: &str, p: &mut Probs) -> Option<&'a Mapping> {
    match get(m, key)? {
        Y::Mapping(inner) => Some(inner),
        v => {
            wrong(p, path, "a mapping", v);
            None
        }
    }
}

/// A list of strings; with `single_ok` a lone string is a one-element list.
fn get_str_list(m: &Mapping, key: &str, path: &str, single_ok: bool, p: &mut Probs) -> Vec<String> {
    match get(m, key) {
        None => Vec::new(),
        Some(Y::String(s)) if single_ok => vec![s.clone()],
        Some(Y::Sequence(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Y::String(s) => out.push(s.clone()),
                    v => wrong(p, path, "a list of strings", v),
                }
            }
            out
        }
        Some(v) => {
            wrong(p, path, "a list of strings", v);
            Vec::new()
        }
    }
}

fn parse_id(text: &str, path: &str, p: &mut Probs) -> Option<EntryId> {
    match text.parse::<EntryId>() {
        Ok(id) => Some(id),
        Err(e) => {
            p.push(path, format!("`{path}`: {e}"));
            None
        }
    }
}

fn get_id(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Option<EntryId> {
    get_str(m, key, path, p).and_then(|s| parse_id(&s, path, p))
}

fn get_id_list(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> Vec<EntryId> {
    get_str_list(m, key, path, false, p).iter().filter_map(|s| parse_id(s, path, p)).collect()
}

/// `name` as an ID in `namespace` when it has no namespace of its own (policies and groups
/// named in a security block).
fn in_namespace(name: &str, namespace: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{namespace}:{name}")
    }
}

/// A list of IDs whose items may leave out the namespace, meaning `namespace`.
fn get_local_id_list(m: &Mapping, key: &str, path: &str, namespace: &str, p: &mut Probs) -> Vec<EntryId> {
    get_str_list(m, key, path, false, p).iter().filter_map(|s| parse_id(&in_namespace(s, namespace), path, p)).collect()
}

/// Group names, each in `namespace` when it names none.
fn get_group_list(m: &Mapping, path: &str, namespace: &str, p: &mut Probs) -> Vec<String> {
    get_str_list(m, "groups", path, false, p).iter().map(|g| in_namespace(g, namespace)).collect()
}

fn scalar_text(v: &Y) -> String {
    match v {
        Y::Null => String::new(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::String(s) => s.clone(),
        other => serde_yaml::to_string(other).map(|s| s.trim_end().to_string()).unwrap_or_default(),
    }
}

fn get_string_map(m: &Mapping, key: &str, path: &str, p: &mut Probs) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(inner) = get_map(m, key, path, p) {
        for (k, v) in inner {
            out.insert(scalar_text(k), scalar_text(v));
        }
    }
    out
}

fn to_value(v: &Y, path: &str, p: &mut Probs) -> Value {
    match v {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Y::String(s) => Value::str(s),
        Y::Sequence(items) => Value::Table(Box::new(wisp_core::Table {
            array: items.iter().map(|i| to_value(i, path, p)).collect(),
            map: Vec::new(),
        })),
        Y::Mapping(m) => {
            let mut t = wisp_core::Table::default();
            for (k, v) in m {
                let key = match k {
                    Y::Bool(b) => wisp_core::Key::Bool(*b),
                    Y::Number(n) => wisp_core::Key::Number(n.as_f64().unwrap_or(f64::NAN)),
                    Y::String(s) => wisp_core::Key::Str(s.as_bytes().into()),
                    other => {
                        wrong(p, path, "a mapping with scalar keys", other);
                        continue;
                    }
                };
                t.map.push((key, to_value(v, path, p)));
            }
            Value::Table(Box::new(t))
        }
        Y::Tagged(_) => {
            wrong(p, path, "plain data", v);
            Value::Nil
        }
    }
}

fn parse_lua(m: &Mapping, yaml_dir: &Path, p: &mut Probs) -> Option<LuaEntry> {
    let source = get_str(m, "source", "source", p);
    let modules = get_str_list(m, "modules", "modules", false, p);
    let method = get_str(m, "method", "method", p).unwrap_or_else(|| "main".to_string());
    let mut imports = BTreeMap::new();
    if let Some(map) = get_map(m, "imports", "imports", p) {
        for (k, v) in map {
            let alias = scalar_text(k);
            match v {
                Y::String(s) => {
                    if let Some(id) = parse_id(s, "imports", p) {
                        imports.insert(alias, id);
                    }
                }
                v => wrong(p, "imports", "a mapping of alias: ns:name", v),
            }
        }
    }
    let meta = get_string_map(m, "meta", "meta", p);
    let Some(source) = source else {
        if get(m, "source").is_none() {
            p.push("name", "missing `source` (e.g. source: file://main.lua)".into());
        }
        return None;
    };
    let rel = source.strip_prefix("file://").unwrap_or(&source);
    let source_path = yaml_dir.join(rel);
    let text = match std::fs::read_to_string(&source_path) {
        Ok(t) => t,
        Err(e) => {
            p.push("source", format!("cannot read source file {}: {e}", source_path.display()));
            return None;
        }
    };
    Some(LuaEntry { source_path, source: Arc::from(text), method, modules, imports, meta })
}

fn parse_restart(m: &Mapping, p: &mut Probs) -> RestartPolicyParams {
    let mut r = RestartPolicyParams::default();
    let Some(m) = get_map(m, "restart", "lifecycle.restart", p) else {
        return r;
    };
    if let Some(d) = get_duration(m, "initial_delay", "restart.initial_delay", p)
        .or_else(|| get_duration(m, "delay", "restart.delay", p))
    {
        r.initial_delay = d;
    }
    if let Some(d) = get_duration(m, "max_delay", "restart.max_delay", p) {
        r.max_delay = d;
    }
    if let Some(f) = get_f64(m, "backoff_factor", "restart.backoff_factor", p) {
        r.backoff_factor = f;
    }
    if let Some(f) = get_f64(m, "jitter", "restart.jitter", p) {
        r.jitter = f;
    }
    if let Some(n) = get_uint(m, "max_attempts", "restart.max_attempts", p) {
        r.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
    }
    r
}

fn parse_security(m: &Mapping, namespace: &str, p: &mut Probs) -> Option<SecuritySpec> {
    let m = get_map(m, "security", "lifecycle.security", p)?;
    let actor = get_map(m, "actor", "security.actor", p).map(|a| Actor {
        id: get_str(a, "id", "actor.id", p).unwrap_or_default(),
        meta: get_string_map(a, "meta", "actor.meta", p),
    });
    Some(SecuritySpec {
        actor,
        policies: get_local_id_list(m, "policies", "security.policies", namespace, p),
        groups: get_group_list(m, "security.groups", namespace, p),
    })
}

fn parse_lifecycle(m: &Mapping, namespace: &str, p: &mut Probs) -> Lifecycle {
    let mut l = Lifecycle::default();
    let Some(m) = get_map(m, "lifecycle", "lifecycle", p) else {
        return l;
    };
    l.auto_start = get_bool(m, "auto_start", "lifecycle.auto_start", p).unwrap_or(false);
    l.requires = get_id_list(m, "requires", "lifecycle.requires", p);
    // `depends_on` is an alias, merged in.
    for id in get_id_list(m, "depends_on", "lifecycle.depends_on", p) {
        if !l.requires.contains(&id) {
            l.requires.push(id);
        }
    }
    l.start_timeout = get_duration(m, "start_timeout", "lifecycle.start_timeout", p);
    if let Some(d) = get_duration(m, "stop_timeout", "lifecycle.stop_timeout", p) {
        l.stop_timeout = d;
    }
    if let Some(d) = get_duration(m, "stable_threshold", "lifecycle.stable_threshold", p) {
        l.stable_threshold = d;
    }
    l.restart = parse_restart(m, p);
    l.security = parse_security(m, namespace, p);
    l
}

fn parse_host(m: &Mapping, namespace: &str, p: &mut Probs) -> HostSpec {
    let mut h = HostSpec::default();
    if let Some(host) = get_map(m, "host", "host", p) {
        h.workers = get_uint(host, "workers", "host.workers", p).map(|n| n as usize);
        h.max_processes = get_uint(host, "max_processes", "host.max_processes", p).map(|n| n as usize);
        if let Some(limits) = get_map(host, "limits", "host.limits", p) {
            h.limits.max_step = get_duration(limits, "max_step", "host.limits.max_step", p);
        }
    }
    h.lifecycle = parse_lifecycle(m, namespace, p);
    h
}

fn parse_service(m: &Mapping, namespace: &str, p: &mut Probs) -> Option<ServiceSpec> {
    let process = get_id(m, "process", "process", p);
    let host = get_id(m, "host", "host", p);
    for key in ["process", "host"] {
        if get(m, key).is_none() {
            p.push("name", format!("missing `{key}` (ns:name)"));
        }
    }
    let input = match get(m, "input") {
        None => Vec::new(),
        Some(Y::Sequence(items)) => items.iter().map(|v| to_value(v, "input", p)).collect(),
        Some(v) => {
            wrong(p, "input", "a list", v);
            Vec::new()
        }
    };
    let lifecycle = parse_lifecycle(m, namespace, p);
    Some(ServiceSpec { process: process?, host: host?, input, lifecycle })
}

/// A `security.policy` entry: its `policy:` as a [`Policy`] whose `id` is the entry ID.
fn parse_policy(m: &Mapping, id: &EntryId, p: &mut Probs) -> Option<EntryKind> {
    let groups = get_group_list(m, "groups", &id.namespace, p);
    let Some(pm) = get_map(m, "policy", "policy", p) else {
        if get(m, "policy").is_none() {
            p.push("name", "missing `policy`".into());
        }
        return None;
    };
    let effect = match get_str(pm, "effect", "policy.effect", p).as_deref() {
        Some("allow") => Some(Effect::Allow),
        Some("deny") => Some(Effect::Deny),
        Some(other) => {
            p.push("effect", format!("`policy.effect` must be allow or deny, found `{other}`"));
            None
        }
        None => {
            p.push("policy", "missing `policy.effect` (allow or deny)".into());
            None
        }
    };
    let mut conditions = Vec::new();
    match get(pm, "conditions") {
        None => {}
        Some(Y::Sequence(items)) => {
            for item in items {
                let Y::Mapping(c) = item else {
                    wrong(p, "conditions", "a list of mappings", item);
                    continue;
                };
                let field = get_str(c, "field", "conditions.field", p).unwrap_or_default();
                let op = match get_str(c, "operator", "conditions.operator", p).as_deref() {
                    None | Some("eq") => Some(ConditionOp::Eq),
                    Some("ne") => Some(ConditionOp::Ne),
                    Some(other) => {
                        let msg = format!("`conditions.operator` must be eq or ne, found `{other}`");
                        p.push("conditions.operator", msg);
                        None
                    }
                };
                let value = get(c, "value").map(scalar_text).unwrap_or_default();
                if let Some(op) = op {
                    conditions.push(Condition { field, op, value });
                }
            }
        }
        Some(v) => wrong(p, "conditions", "a list", v),
    }
    let patterns = |list: Vec<String>| -> Vec<Pattern> { list.iter().map(|s| Pattern::parse(s)).collect() };
    let actions = patterns(get_str_list(pm, "actions", "policy.actions", true, p));
    let resources = patterns(get_str_list(pm, "resources", "policy.resources", true, p));
    let policy = Policy { id: id.to_string(), actions, resources, effect: effect?, conditions };
    Some(EntryKind::SecurityPolicy { policy, groups })
}

// ---------------------------------------------------------------------------------------------
// Line finding. serde_norway has no per-node spans, so entries and keys are found in the text.

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Starts (0-based line index) of the items of the top-level `entries:` block sequence, and the
/// index of the `entries:` line itself.
fn entry_lines(lines: &[&str]) -> (Option<usize>, Vec<usize>) {
    let Some(start) = lines.iter().position(|l| indent(l) == 0 && l.starts_with("entries:")) else {
        return (None, Vec::new());
    };
    let mut items = Vec::new();
    let mut item_indent = None;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if is_blank(line) {
            continue;
        }
        let d = indent(line);
        let is_item = line.trim_start().starts_with('-');
        match item_indent {
            None if is_item => {
                item_indent = Some(d);
                items.push(i);
            }
            None => break,
            Some(want) => {
                if d < want || (d == want && !is_item) {
                    break;
                }
                if d == want {
                    items.push(i);
                }
            }
        }
    }
    (Some(start), items)
}

/// The first line in `range` whose key (after an optional `- `) is `key`; failing that, the
/// first line with `key:` inside a flow mapping (`{ key: ... }`).
fn key_line(lines: &[&str], range: (usize, usize), key: &str) -> Option<usize> {
    let range = range.0..range.1.min(lines.len());
    range
        .clone()
        .find(|&i| {
            let t = lines[i].trim_start();
            let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
            t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .or_else(|| {
            let flow = [format!("{{{key}:"), format!("{{ {key}:"), format!(", {key}:")];
            range.clone().find(|&i| flow.iter().any(|f| lines[i].contains(f.as_str())))
        })
}

// ---------------------------------------------------------------------------------------------

/// What validation needs besides the entry: the declared kind and lines of some keys.
struct Declared {
    kind: String,
    location: Location,
    /// 1-based lines of `imports`, `process`, `host`, `requires`, `policies`.
    key_lines: HashMap<&'static str, usize>,
    /// For references: imports, service process/host, requires, security policies.
    refs: Refs,
}

#[derive(Default)]
struct Refs {
    imports: Vec<(String, EntryId)>,
    process: Option<EntryId>,
    host: Option<EntryId>,
    requires: Vec<EntryId>,
    policies: Vec<EntryId>,
}

struct Loader {
    registry: Registry,
    errors: Vec<Diagnostic>,
    declared: Vec<(EntryId, Declared)>,
    declared_index: HashMap<EntryId, usize>,
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            errors.push(Diagnostic {
                location: Location { file: dir.to_path_buf(), line: 1 },
                entry: None,
                message: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    for item in read.flatten() {
        let path = item.path();
        match item.file_type() {
            Ok(t) if t.is_dir() => collect_yaml(&path, out, errors),
            Ok(_) if path.extension().is_some_and(|e| e == "yaml") => out.push(path),
            _ => {}
        }
    }
}

pub(crate) fn load_dir(dir: &Path) -> (Registry, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut loader = Loader {
        registry: Registry::default(),
        errors: Vec::new(),
        declared: Vec::new(),
        declared_index: HashMap::new(),
    };
    collect_yaml(dir, &mut files, &mut loader.errors);
    files.sort();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => loader.load_file(file, &text),
            Err(e) => loader.errors.push(Diagnostic {
                location: Location { file: file.clone(), line: 1 },
                entry: None,
                message: format!("cannot read file: {e}"),
            }),
        }
    }
    loader.validate();
    (loader.registry, loader.errors)
}

impl Loader {
    fn error(&mut self, file: &Path, line: usize, entry: Option<&EntryId>, message: String) {
        self.errors.push(Diagnostic {
            location: Location { file: file.to_path_buf(), line },
            entry: entry.cloned(),
            message,
        });
    }

    fn load_file(&mut self, file: &Path, text: &str) {
        let doc: Y = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(1);
                self.error(file, line, None, format!("invalid YAML: {e}"));
                return;
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        let top_line = |key: &str| key_line(&lines, (0, lines.len()), key).map_or(1, |i| i + 1);
        let Y::Mapping(top) = &doc else {
            let msg =
                format!("a registry file must be a mapping with `namespace` and `entries`, found {}", type_name(&doc));
            self.error(file, 1, None, msg);
            return;
        };
        let mut p = Probs::default();
        let namespace = get_str(top, "namespace", "namespace", &mut p);
        if let Some(version) = get(top, "version") {
            let v = scalar_text(version);
            if v != "1.0" && v != "1" {
                p.push("version", format!("unsupported version `{v}` (expected \"1.0\")"));
            }
        }
        let namespace = match namespace {
            Some(ns) if !ns.is_empty() && !ns.contains(':') && !ns.contains(' ') => Some(ns),
            Some(ns) => {
                p.push("namespace", format!("invalid namespace `{ns}`"));
                None
            }
            None => {
                if get(top, "namespace").is_none() {
                    p.push("namespace", "missing `namespace`".into());
                }
                None
            }
        };
        let entries = match get(top, "entries") {
            Some(Y::Sequence(s)) => Some(s),
            Some(v) => {
                wrong(&mut p, "entries", "a list", v);
                None
            }
            None => {
                p.push("entries", "missing `entries`".into());
                None
            }
        };
        for prob in p.0 {
            let line = top_line(&prob.key);
            self.error(file, line, None, prob.message);
        }
        let (Some(namespace), Some(entries)) = (namespace, entries) else {
            return;
        };
        let (entries_line, item_lines) = entry_lines(&lines);
        let fallback = entries_line.unwrap_or(0);
        let yaml_dir = file.parent().unwrap_or(Path::new("."));
        for (i, raw) in entries.iter().enumerate() {
            let start = item_lines.get(i).copied().unwrap_or(fallback);
            let end = item_lines.get(i + 1).copied().unwrap_or(lines.len());
            let range = if item_lines.len() == entries.len() { (start, end) } else { (fallback, lines.len()) };
            self.load_entry(file, &lines, range, start + 1, &namespace, raw, yaml_dir);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn load_entry(
        &mut self,
        file: &Path,
        lines: &[&str],
        range: (usize, usize),
        line: usize,
        namespace: &str,
        raw: &Y,
        yaml_dir: &Path,
    ) {
        let Y::Mapping(m) = raw else {
            let msg = format!("an entry must be a mapping, found {}", type_name(raw));
            self.error(file, line, None, msg);
            return;
        };
        let mut p = Probs::default();
        let name = get_str(m, "name", "name", &mut p);
        let kind = get_str(m, "kind", "kind", &mut p);
        let id = match &name {
            Some(n) if !n.is_empty() && !n.contains(':') && !n.contains(char::is_whitespace) => {
                Some(EntryId::new(namespace, n.as_str()))
            }
            Some(n) => {
                p.push("name", format!("invalid entry name `{n}`"));
                None
            }
            None => {
                if get(m, "name").is_none() {
                    p.push("name", "entry without `name`".into());
                }
                None
            }
        };
        if kind.is_none() && get(m, "kind").is_none() {
            p.push("kind", "entry without `kind`".into());
        }
        let location = Location { file: file.to_path_buf(), line };
        let flush = |this: &mut Loader, probs: Probs, id: Option<&EntryId>| {
            for prob in probs.0 {
                let l = key_line(lines, range, &prob.key).map_or(line, |i| i + 1);
                this.error(file, l, id, prob.message);
            }
        };
        let (Some(id), Some(kind)) = (id.clone(), kind) else {
            flush(self, p, id.as_ref());
            return;
        };
        if let Some(&prev) = self.declared_index.get(&id) {
            let first = self.declared[prev].1.location.clone();
            self.error(file, line, Some(&id), format!("duplicate entry ID {id} (first defined at {first})"));
            return;
        }
        let parsed: Option<EntryKind> = match kind.as_str() {
            "process.lua" => parse_lua(m, yaml_dir, &mut p).map(EntryKind::ProcessLua),
            "function.lua" => parse_lua(m, yaml_dir, &mut p).map(EntryKind::FunctionLua),
            "library.lua" => parse_lua(m, yaml_dir, &mut p).map(EntryKind::LibraryLua),
            "process.host" => Some(EntryKind::ProcessHost(parse_host(m, &id.namespace, &mut p))),
            "terminal.host" => Some(EntryKind::TerminalHost(parse_host(m, &id.namespace, &mut p))),
            "process.service" => parse_service(m, &id.namespace, &mut p).map(EntryKind::ProcessService),
            "security.policy" => parse_policy(m, &id, &mut p),
            _ => {
                self.registry.warnings.push(Diagnostic {
                    location: location.clone(),
                    entry: Some(id.clone()),
                    message: format!("unknown kind `{kind}`; entry skipped"),
                });
                Some(EntryKind::Other { kind: kind.clone() })
            }
        };
        let mut refs = Refs::default();
        if let Some(k) = &parsed {
            if let Some(lua) = k.lua() {
                refs.imports = lua.imports.iter().map(|(a, t)| (a.clone(), t.clone())).collect();
                for module in &lua.modules {
                    if !PROVIDED_MODULES.contains(&module.as_str()) {
                        let l = key_line(lines, range, "modules").map_or(line, |i| i + 1);
                        self.registry.warnings.push(Diagnostic {
                            location: Location { file: file.to_path_buf(), line: l },
                            entry: Some(id.clone()),
                            message: format!("module `{module}` is not provided by Wisp; require of it will fail"),
                        });
                    }
                }
            }
            if let Some(l) = k.lifecycle() {
                refs.requires = l.requires.clone();
                refs.policies = l.security.as_ref().map(|s| s.policies.clone()).unwrap_or_default();
            }
            if let EntryKind::ProcessService(s) = k {
                refs.process = Some(s.process.clone());
                refs.host = Some(s.host.clone());
            }
        }
        let mut key_lines = HashMap::new();
        for key in ["imports", "process", "host", "requires", "policies"] {
            key_lines.insert(key, key_line(lines, range, key).map_or(line, |i| i + 1));
        }
        if key_line(lines, range, "requires").is_none() {
            // Only the alias: a cycle is reported at its line.
            if let Some(i) = key_line(lines, range, "depends_on") {
                key_lines.insert("requires", i + 1);
            }
        }
        flush(self, p, Some(&id));
        self.declared_index.insert(id.clone(), self.declared.len());
        self.declared.push((id.clone(), Declared { kind, location: location.clone(), key_lines, refs }));
        if let Some(kind) = parsed {
            self.registry.index.insert(id.clone(), self.registry.entries.len());
            self.registry.entries.push(Entry { id, kind, location });
        }
    }

    /// Cross-entry checks: references name entries of the right kind; no `requires` cycle.
    fn validate(&mut self) {
        let mut errors = Vec::new();
        let kind_of = |id: &EntryId| self.declared_index.get(id).map(|&i| self.declared[i].1.kind.as_str());
        for (id, d) in &self.declared {
            let mut check = |key: &'static str, what: String, target: &EntryId, kinds: &[&str]| {
                let problem = match kind_of(target) {
                    None => Some(format!("{what} names {target}, which is not defined")),
                    Some(k) if !kinds.is_empty() && !kinds.contains(&k) => {
                        Some(format!("{what} names {target}, which is a {k}, not a {}", kinds.join(" or ")))
                    }
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    errors.push(Diagnostic {
                        location: Location {
                            file: d.location.file.clone(),
                            line: d.key_lines.get(key).copied().unwrap_or(d.location.line),
                        },
                        entry: Some(id.clone()),
                        message,
                    });
                }
            };
            for (alias, target) in &d.refs.imports {
                check("imports", format!("import `{alias}`"), target, &["library.lua"]);
            }
            if let Some(t) = &d.refs.process {
                check("process", "`process`".into(), t, &["process.lua", "function.lua"]);
            }
            if let Some(t) = &d.refs.host {
                check("host", "`host`".into(), t, &["process.host", "terminal.host"]);
            }
            for t in &d.refs.requires {
                check("requires", "`requires`".into(), t, &[]);
            }
            for t in &d.refs.policies {
                check("policies", "`policies`".into(), t, &["security.policy"]);
            }
        }
        errors.extend(self.find_cycles());
        self.errors.extend(errors);
    }

    /// Reports each `requires` cycle once, at the `requires` line of its first entry.
    fn find_cycles(&self) -> Vec<Diagnostic> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let n = self.declared.len();
        let mut marks = vec![Mark::New; n];
        let mut out = Vec::new();
        let deps = |i: usize| -> Vec<usize> {
            self.declared[i].1.refs.requires.iter().filter_map(|t| self.declared_index.get(t).copied()).collect()
        };
        for root in 0..n {
            if marks[root] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(root, deps(root), 0)];
            marks[root] = Mark::Active;
            while let Some(top) = stack.last_mut() {
                if top.2 < top.1.len() {
                    let next = top.1[top.2];
                    top.2 += 1;
                    match marks[next] {
                        Mark::Done => {}
                        Mark::New => {
                            marks[next] = Mark::Active;
                            stack.push((next, deps(next), 0));
                        }
                        Mark::Active => {
                            let from = stack.iter().position(|s| s.0 == next).unwrap_or(0);
                            let mut names: Vec<String> =
                                stack[from..].iter().map(|s| self.declared[s.0].0.to_string()).collect();
                            names.push(self.declared[next].0.to_string());
                            let (id, d) = &self.declared[next];
                            out.push(Diagnostic {
                                location: Location {
                                    file: d.location.file.clone(),
                                    line: d.key_lines.get("requires").copied().unwrap_or(d.location.line),
                                },
                                entry: Some(id.clone()),
                                message: format!("requires cycle: {}", names.join(" -> ")),
                            });
                        }
                    }
                } else {
                    marks[top.0] = Mark::Done;
                    stack.pop();
                }
            }
        }
        out
    }
}
