//! Benchmarks of Wisp.
//!
//! - `lua/`: the Lua benchmark app (the same programs as the Erlang and Go peers), run through the
//!   `wisp` binary by `cargo xtask bench`.
//! - `benches/hot_paths.rs`: criterion benches of the hot paths (`cargo bench -p wisp-benches`).
