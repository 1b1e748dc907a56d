//! The copied payload of a message.

/// A value that crosses between processes. Always a tree: no cycles, no shared parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Nil,
    Bool(bool),
    Number(f64),
    Str(Box<[u8]>),
    Table(Box<Table>),
}

/// A table key: Lua allows any non-nil value, payloads allow booleans, numbers and strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Bool(bool),
    Number(f64),
    Str(Box<[u8]>),
}

/// A table: the array part `1..=n` and the remaining pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub array: Vec<Value>,
    pub map: Vec<(Key, Value)>,
}

/// Why a value cannot become a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("cannot send a {0}")]
    Unsupported(&'static str),
    #[error("cannot send a table that contains itself")]
    Cycle,
    #[error("payload nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("cannot use a {0} as a table key in a payload")]
    BadKey(&'static str),
    /// The copy would exceed the payload bound (a table reached twice counts twice).
    #[error("payload too large (a copy is at most {0} bytes)")]
    TooLarge(usize),
}

impl Value {
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(s.as_ref().into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A short human rendering, as `tostring` would give for scalars.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format_number(*n),
            Value::Str(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Table(_) => "table".into(),
        }
    }
}

/// Formats a number as Lua does: integral values without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into_bytes().into_boxed_slice())
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
