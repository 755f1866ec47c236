//! Persistence: openraft's log storage and state machine, both on one sled database per
//! process (sled locks its directory, so it is opened once).

pub mod keys;
mod log_store;
mod state_machine;

pub use log_store::LogStore;
pub use state_machine::{ApplyEvent, ApplyListener, Replica, StateMachineStore};
