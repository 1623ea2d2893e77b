//! Reading the files configuration names (configuration files, certificates, keys, the
//! positions file): regular files only and bounded in size, so a path that names a FIFO or a
//! device (`/dev/zero`) is an error rather than a hang or an exhausted memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Configuration files and certificates are far smaller than this.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The whole of a regular file of at most `max` bytes.
pub fn read(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    // Non-blocking: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(bytes)
}

fn too_large(max: u64) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("larger than {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files() {
        assert!(read(Path::new("/dev/zero"), 10).is_err());
        assert!(read(Path::new("/"), 10).is_err());
        let dir = std::env::temp_dir().join(format!("lookout-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read(&file, 10).unwrap(), b"0123456789");
        assert!(read(&file, 9).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
