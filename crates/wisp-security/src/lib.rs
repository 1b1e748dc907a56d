//! wisp-security
