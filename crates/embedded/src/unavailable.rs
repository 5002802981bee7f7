//! Which failures of the embedded adapters mean "the backend is unavailable":
//! the ports' `Unavailable` errors (503 with `Retry-After` in the API) as
//! opposed to their `Backend` errors (retrying will not help).
//!
//! For SQLite: the database busy or locked by another connection past the
//! busy timeout, failing disk I/O, a full disk, a failed file lock. For files:
//! I/O that timed out, was interrupted, would block, or failed on a busy,
//! full or failing device. A corrupt or newer database, a missing directory
//! or a permission refused are not: they need someone to act before a retry
//! can succeed.

use std::io;

use rusqlite::ErrorCode;

/// Whether SQLite could not serve the call right now.
pub fn sqlite_unavailable(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// `EIO`, which the standard library files under an uncategorised kind.
const EIO: i32 = 5;

/// Whether file I/O failed for a reason that may pass by itself.
pub fn io_unavailable(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), TimedOut | Interrupted | WouldBlock | StorageFull | QuotaExceeded | ResourceBusy)
        || e.raw_os_error() == Some(EIO)
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn busy_locked_and_io_failures_of_sqlite_are_unavailable() {
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_IOERR, ffi::SQLITE_FULL, ffi::SQLITE_PROTOCOL] {
            assert!(sqlite_unavailable(&sqlite(code)), "{code}");
        }
        // Extended codes count as their primary code.
        assert!(sqlite_unavailable(&sqlite(ffi::SQLITE_BUSY_SNAPSHOT)));
        assert!(sqlite_unavailable(&sqlite(ffi::SQLITE_IOERR_FSYNC)));
        for code in
            [ffi::SQLITE_CORRUPT, ffi::SQLITE_CONSTRAINT, ffi::SQLITE_READONLY, ffi::SQLITE_NOTADB, ffi::SQLITE_ERROR]
        {
            assert!(!sqlite_unavailable(&sqlite(code)), "{code}");
        }
        assert!(!sqlite_unavailable(&rusqlite::Error::QueryReturnedNoRows));
    }

    #[test]
    fn passing_io_failures_are_unavailable_and_setup_problems_are_not() {
        for kind in [io::ErrorKind::TimedOut, io::ErrorKind::Interrupted, io::ErrorKind::StorageFull] {
            assert!(io_unavailable(&io::Error::from(kind)), "{kind:?}");
        }
        assert!(io_unavailable(&io::Error::from_raw_os_error(EIO)));
        for kind in [io::ErrorKind::PermissionDenied, io::ErrorKind::NotFound, io::ErrorKind::InvalidData] {
            assert!(!io_unavailable(&io::Error::from(kind)), "{kind:?}");
        }
    }
}
