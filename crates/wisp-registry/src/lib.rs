//! wisp-registry
