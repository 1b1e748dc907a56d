//! Lua code of registry entries and the runtime-wide cache of compiled bytecode.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The code of one `process.lua`, `function.lua` or `library.lua` entry.
#[derive(Debug, Clone)]
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
    compiled: Mutex<HashMap<Arc<str>, Compiled>>,
}

#[derive(Clone)]
struct Compiled {
    bytecode: Arc<[u8]>,
    /// Whether the code may assign a global (see [`writes_globals`]).
    writes_globals: bool,
}

impl ChunkCache {
    pub fn new() -> ChunkCache {
        ChunkCache::default()
    }

    /// Bytecode for `source`; syntax errors are carried inside the bytecode and raised at load.
    pub fn bytecode(&self, source: &Arc<str>) -> Arc<[u8]> {
        self.compiled(source).bytecode
    }

    /// Whether `code` or a library it imports may assign a global: only then does a process
    /// of it need a global table of its own (see `start_process` in shard.rs).
    pub fn needs_own_globals(&self, code: &LuaCode) -> bool {
        self.compiled(&code.source).writes_globals || code.imports.values().any(|i| self.needs_own_globals(i))
    }

    fn compiled(&self, source: &Arc<str>) -> Compiled {
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
        let code = Compiled { writes_globals: writes_globals(&code), bytecode: code };
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

/// Whether Luau bytecode may assign a global: true if any of its functions has a `SETGLOBAL`
/// instruction, and whenever the bytecode is not one this scanner knows how to read (a
/// compile error, an unknown version or constant), so the answer errs towards a process
/// getting a global table of its own. Were it ever wrong the other way, the assignment would
/// fail (a process without its own table writes to the shared globals, which are read-only),
/// never reach another process.
///
/// The layout follows Luau's loader (`lvmload.cpp`) for the bytecode versions it reads.
pub(crate) fn writes_globals(bytecode: &[u8]) -> bool {
    scan_for_global_writes(bytecode).unwrap_or(true)
}

/// Luau opcodes the scan needs (`LuauOpcode` in `Bytecode.h`).
const LOP_SETGLOBAL: u8 = 8;

/// Opcodes followed by an auxiliary word (Luau's `getOpLength`).
const OPS_WITH_AUX: &[u8] = &[
    7, 8, 12, 15, 16, 20, 27, 28, 29, 30, 31, 32, 53, 55, 58, 60, 66, 74, 75, 77, 78, 79, 80, 83, 84, 85, 86, 87, 88,
    90,
];

/// The bytecode versions whose layout the scan knows.
const BYTECODE_VERSIONS: std::ops::RangeInclusive<u8> = 3..=11;

fn scan_for_global_writes(bytecode: &[u8]) -> Option<bool> {
    let mut r = Reader { data: bytecode, pos: 0 };
    let version = r.u8()?;
    if !BYTECODE_VERSIONS.contains(&version) {
        return None;
    }
    let types_version = if version >= 4 { r.u8()? } else { 0 };
    for _ in 0..r.varint()? {
        let len = r.varint()?;
        r.skip(len as usize)?;
    }
    if types_version == 3 {
        while r.u8()? != 0 {
            r.varint()?; // the userdata type's name
        }
    }
    let mut writes = false;
    for _ in 0..r.varint()? {
        r.skip(4)?; // max stack size, parameters, upvalues, vararg
        if version >= 4 {
            r.u8()?; // flags
            if (1..=3).contains(&types_version) {
                let size = r.varint()?;
                r.skip(size as usize)?;
            }
        }
        let size_code = r.varint()? as usize;
        let mut i = 0;
        while i < size_code {
            let op = r.u32()? as u8;
            writes |= op == LOP_SETGLOBAL;
            if OPS_WITH_AUX.contains(&op) {
                r.u32()?;
                i += 1;
            }
            i += 1;
        }
        if i != size_code {
            return None; // an auxiliary word past the end: not the layout we know
        }
        for _ in 0..r.varint()? {
            skip_constant(&mut r)?;
        }
        for _ in 0..r.varint()? {
            r.varint()?; // child function ids
        }
        r.varint()?; // line defined
        r.varint()?; // debug name
        if r.u8()? != 0 {
            let gap_log2 = r.u8()?;
            let intervals = ((size_code as i64 - 1) >> gap_log2) + 1;
            r.skip(size_code)?;
            r.skip(usize::try_from(intervals).ok()? * 4)?;
        }
        if r.u8()? != 0 {
            for _ in 0..r.varint()? {
                r.varint()?;
                r.varint()?;
                r.varint()?;
                r.u8()?;
            }
            for _ in 0..r.varint()? {
                r.varint()?;
            }
        }
        if version >= 11 {
            for _ in 0..r.varint()? {
                r.u8()?;
                r.varint()?;
            }
        }
    }
    r.varint()?; // the main function's id
    (r.pos == bytecode.len()).then_some(writes)
}

fn skip_constant(r: &mut Reader) -> Option<()> {
    match r.u8()? {
        0 => {}                     // nil
        1 => r.skip(1)?,            // boolean
        2 => r.skip(8)?,            // number
        3 | 6 => drop(r.varint()?), // string, closure
        4 => r.skip(4)?,            // import
        5 => {
            for _ in 0..r.varint()? {
                r.varint()?;
            }
        }
        7 => r.skip(16)?, // vector
        8 => {
            for _ in 0..r.varint()? {
                r.varint()?;
                r.skip(4)?;
            }
        }
        9 => {
            r.u8()?;
            r.varint64()?;
        }
        11 => r.skip(32)?, // double vector
        _ => return None,
    }
    Some(())
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let byte = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.data.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len()).then(|| self.pos = end)
    }

    fn varint(&mut self) -> Option<u32> {
        u32::try_from(self.varint64()?).ok()
    }

    fn varint64(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 127) << shift;
            if byte & 128 == 0 {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(source: &str) -> bool {
        let cache = ChunkCache::new();
        cache.compiled(&Arc::from(source)).writes_globals
    }

    #[test]
    fn code_that_assigns_a_global_anywhere_is_found() {
        let cases = [
            ("x = 1", true),
            ("local function f() y = 2 end return {main = f}", true),
            ("function main() end", true),
            ("local t = {} function t.f() end return t", false),
            ("local n = 0 local function f() n += 1 return n end return {main = f}", false),
            ("local x = 1 x = 2 return x", false),
            ("return { main = function() print(string.format('%d', 1)) end }", false),
            ("local function f() return function() z = 3 end end return {main = f}", true),
            ("local s = [[long]] local v = {1, 2.5, true, nil, 'k'} return {main = function() return s, v end}", false),
            ("for i = 1, 3 do local t = {a = i} end", false),
            ("if (", true),
        ];
        for (source, expected) in cases {
            assert_eq!(compiled(source), expected, "{source}");
        }
    }

    #[test]
    fn bytecode_the_scan_cannot_read_counts_as_writing() {
        let good = ChunkCache::new().bytecode(&Arc::from("local x = 1 return x"));
        assert!(!writes_globals(&good));
        for cut in [1, 2, good.len() / 2, good.len() - 1] {
            assert!(writes_globals(&good[..cut]), "cut at {cut}");
        }
        let mut unknown_version = good.to_vec();
        unknown_version[0] = 99;
        assert!(writes_globals(&unknown_version));
        assert!(writes_globals(&[]));
    }
}
