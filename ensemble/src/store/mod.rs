//! Persistence: openraft's log storage and state machine, both on one sled database per
//! process (sled locks its directory, so it is opened once), made durable by `durable`
//! (fsync of sled's files, which sled itself does not do).

// openraft's storage traits fix `StorageError` (large) as the error type; helpers share it.
#![allow(clippy::result_large_err)]

mod durable;
pub mod keys;
mod log_store;
mod state_machine;

pub use durable::DiskSync;
pub use log_store::LogStore;
pub use state_machine::{ApplyEvent, ApplyListener, Replica, StateMachineStore};

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use std::sync::Arc;

    use super::{DiskSync, LogStore, StateMachineStore};
    use crate::types::typ::StorageError;
    use crate::types::TypeConfig;

    /// Builds a fresh store in its own temporary directory; the guard keeps it alive.
    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
            let db = sled::Config::new()
                .path(dir.path())
                .open()
                .map_err(|e| openraft::StorageIOError::write(&e))?;
            let disk = Arc::new(
                DiskSync::open(dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?,
            );
            let log = LogStore::open(&db, disk.clone())
                .map_err(|e| openraft::StorageIOError::write(&e))?;
            let sm = StateMachineStore::open(&db, disk)
                .map_err(|e| openraft::StorageIOError::write(&std::io::Error::other(e)))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log and state-machine storage.
    #[test]
    fn openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(SledBuilder)
    }
}
