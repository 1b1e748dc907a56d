//! wisp-lua
