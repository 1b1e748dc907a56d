//! Lua code of registry entries and the runtime-wide cache of compiled bytecode.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The code of one `process.lua`, `function.lua` or `library.lua` entry.
#[derive(Debug)]
pub struct LuaCode {
    /// The entry ID, `namespace:name`.
    pub entry: String,
    /// The name errors show for this chunk (the source file).
    pub chunk_name: String,
    pub source: Arc<str>,
    pub method: String,
    /// Built-in modules the entry may `require`.
    pub modules: Vec<String>,
    /// `require(alias)` targets: library entries.
    pub imports: BTreeMap<String, Arc<LuaCode>>,
}

/// Compiled bytecode per source text, shared by every shard so a source compiles once per runtime.
#[derive(Default)]
pub struct ChunkCache {
    compiled: Mutex<HashMap<Arc<str>, Arc<[u8]>>>,
}

impl ChunkCache {
    pub fn new() -> ChunkCache {
        ChunkCache::default()
    }

    /// Bytecode for `source`; syntax errors are carried inside the bytecode and raised at load.
    pub fn bytecode(&self, source: &Arc<str>) -> Arc<[u8]> {
        let mut compiled = match self.compiled.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(code) = compiled.get(source) {
            return code.clone();
        }
        let code: Arc<[u8]> = mlua::chunk::Compiler::new()
            .set_optimization_level(2)
            .compile(source.as_bytes())
            .unwrap_or_else(|err| {
                // Luau encodes compile errors as bytecode: a 0 byte, then `:line: message`;
                // loading it raises the message behind the chunk's name.
                let message = match err {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                let mut bytes = b"\0:".to_vec();
                bytes.extend_from_slice(message.as_bytes());
                bytes
            })
            .into();
        compiled.insert(source.clone(), code.clone());
        code
    }

    pub fn len(&self) -> usize {
        self.compiled.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
