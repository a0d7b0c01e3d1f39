//! `innkeep-benches`: Innkeep's criterion benchmarks (in `benches/`) and the HTTP load
//! generator `innkeep-load`, whose logic lives here as a library so tests can drive it.

pub mod inprocess;
pub mod load;
pub mod proc_stat;
