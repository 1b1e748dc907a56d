use std::fmt;

/// Index of a process host inside one runtime (hosts are numbered as they are declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostIndex(pub u16);

/// A process identifier: a host, a slot in that host's process table and the slot's generation.
///
/// The generation makes a PID unique over time: when a slot is reused its generation grows,
/// so a stale PID never reaches the new occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub host: HostIndex,
    pub slot: u32,
    pub generation: u32,
}

impl Pid {
    pub const fn new(host: HostIndex, slot: u32, generation: u32) -> Pid {
        Pid { host, slot, generation }
    }

    /// The number shown after `0x` in the rendered PID: generation in the high half, slot in the low.
    pub const fn serial(self) -> u64 {
        ((self.generation as u64) << 32) | self.slot as u64
    }

    /// Renders the PID as `{host|0x0002a}` given the host's name.
    pub fn display<'a>(self, host_name: &'a str) -> PidDisplay<'a> {
        PidDisplay { pid: self, host_name }
    }

    /// Splits `{host|0x0002a}` into the host name and a PID for `host`.
    /// The caller maps the name to a `HostIndex`.
    pub fn parse_parts(text: &str) -> Result<(&str, u64), PidParseError> {
        let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or(PidParseError::Shape)?;
        let (host, serial) = inner.split_once('|').ok_or(PidParseError::Shape)?;
        let hex = serial.strip_prefix("0x").ok_or(PidParseError::Shape)?;
        if host.is_empty() || hex.is_empty() || hex.len() > 16 {
            return Err(PidParseError::Shape);
        }
        let serial = u64::from_str_radix(hex, 16).map_err(|_| PidParseError::Shape)?;
        Ok((host, serial))
    }

    pub const fn from_serial(host: HostIndex, serial: u64) -> Pid {
        Pid { host, slot: serial as u32, generation: (serial >> 32) as u32 }
    }
}

pub struct PidDisplay<'a> {
    pid: Pid,
    host_name: &'a str,
}

impl PidDisplay<'_> {
    /// Appends the rendering to `out` (cheaper than `format!`: PIDs are rendered on hot paths).
    pub fn write_to(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let serial = self.pid.serial();
        let digits = (((64 - serial.leading_zeros()) as usize).div_ceil(4)).max(5);
        out.reserve(self.host_name.len() + digits + 5);
        out.push('{');
        out.push_str(self.host_name);
        out.push_str("|0x");
        // Room is reserved above, so each push is a store (a PID is rendered per spawn).
        out.extend((0..digits).rev().map(|i| char::from(HEX[((serial >> (i * 4)) & 0xf) as usize])));
        out.push('}');
    }

    pub fn to_string_fast(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for PidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_fast())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidParseError {
    #[error("not a PID: expected {{host|0x...}}")]
    Shape,
    #[error("unknown host `{0}`")]
    UnknownHost(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let pid = Pid::new(HostIndex(1), 42, 0);
        let text = pid.display("app:processes").to_string();
        assert_eq!(text, "{app:processes|0x0002a}");
        let (host, serial) = Pid::parse_parts(&text).unwrap();
        assert_eq!(host, "app:processes");
        assert_eq!(Pid::from_serial(HostIndex(1), serial), pid);
    }

    #[test]
    fn fast_rendering_matches_the_format() {
        for (slot, generation) in [(0, 0), (42, 0), (0xfffff, 0), (0x123456, 0), (7, 1), (u32::MAX, u32::MAX)] {
            let pid = Pid::new(HostIndex(0), slot, generation);
            assert_eq!(pid.display("h").to_string_fast(), format!("{{h|0x{:05x}}}", pid.serial()));
        }
    }

    #[test]
    fn reused_slot_renders_differently() {
        let a = Pid::new(HostIndex(0), 7, 0).display("h").to_string();
        let b = Pid::new(HostIndex(0), 7, 1).display("h").to_string();
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "{}", "{h|}", "{h|0x}", "{|0x1}", "h|0x1", "{h|0xzz}", "{h|12}", "{h|0x11112222333344445}"] {
            assert!(Pid::parse_parts(bad).is_err(), "{bad}");
        }
    }
}
