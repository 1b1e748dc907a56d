//! wisp-runtime
