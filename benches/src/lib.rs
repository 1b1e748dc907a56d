//! Criterion benches of the hot paths live in `benches/`.
