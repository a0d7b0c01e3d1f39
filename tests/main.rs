//! End-to-end tests: the real `innkeep` binary as a child process, over loopback, with a
//! real data dir. One test binary; each area is a module.

mod board;
mod booking;
mod cluster;
mod connections;
mod crash;
mod durability;
mod frontdesk;
mod fuzz;
mod groups;
mod grpc;
mod harness;
mod load;
mod modify;
mod payments;
mod rearrange;
mod resume;
mod security;
mod selling;
mod telemetry;
mod validation;
mod webdriver;
mod webhooks;
