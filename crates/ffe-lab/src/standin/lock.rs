//! Advisory whole-file locks (flock) shared by every process of a lab.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::StandinError;

/// An exclusive or shared flock held until drop (closing the file releases it).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<Self, StandinError> {
        Self::acquire(path, libc::LOCK_EX)
    }

    pub fn shared(path: &Path) -> Result<Self, StandinError> {
        Self::acquire(path, libc::LOCK_SH)
    }

    fn acquire(path: &Path, op: libc::c_int) -> Result<Self, StandinError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StandinError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| StandinError::io(path, e))?;
        loop {
            // SAFETY: flock on a valid, owned file descriptor; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(StandinError::io(path, err));
            }
        }
    }
}
