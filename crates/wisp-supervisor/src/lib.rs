//! wisp-supervisor
