//! A per-binary version: the lab can write a copy of the stand-in that reports another version
//! (to drive upgrades), by patching a fixed slot in the binary.

use std::path::Path;

use super::StandinError;

const SLOT_LEN: usize = 96;
const MARKER_LEN: usize = 32;

/// Marker (32 bytes) + NUL-terminated version. Read with a volatile load so the compiler cannot
/// fold the bytes in: the file on disk is what counts.
#[used]
static VERSION_SLOT: [u8; SLOT_LEN] = slot();

const fn slot() -> [u8; SLOT_LEN] {
    let marker = *b"ffe-lab k3s stand-in version:\x01\x02\x03";
    let mut s = [0u8; SLOT_LEN];
    let mut i = 0;
    while i < MARKER_LEN {
        s[i] = marker[i];
        i += 1;
    }
    s
}

/// The version patched into this binary, if any.
pub fn embedded_version() -> Option<String> {
    // SAFETY: reading a valid, aligned static of plain bytes.
    let bytes: [u8; SLOT_LEN] = unsafe { std::ptr::read_volatile(&VERSION_SLOT) };
    let v = &bytes[MARKER_LEN..];
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    std::str::from_utf8(&v[..end])
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The marker, rebuilt at run time (never a second contiguous copy in the binary).
fn marker() -> [u8; MARKER_LEN] {
    const KEY: u8 = 0xA5;
    const HIDDEN: [u8; MARKER_LEN] = {
        let s = slot();
        let mut h = [0u8; MARKER_LEN];
        let mut i = 0;
        while i < MARKER_LEN {
            h[i] = s[i] ^ KEY;
            i += 1;
        }
        h
    };
    let key = std::hint::black_box(KEY);
    HIDDEN.map(|b| b ^ key)
}

fn slot_offset(bin: &[u8], src: &Path) -> Result<usize, StandinError> {
    let marker = marker();
    let positions: Vec<usize> = memchr::memmem::find_iter(bin, &marker)
        .map(|i| i + MARKER_LEN)
        .collect();
    match positions[..] {
        [pos] if pos + SLOT_LEN - MARKER_LEN <= bin.len() => Ok(pos),
        _ => Err(StandinError::failed(
            1,
            format!(
                "{}: expected exactly one stand-in version slot, found {}",
                src.display(),
                positions.len()
            ),
        )),
    }
}

/// The version patched into the stand-in binary at `path` (`None` if unpatched or not a stand-in).
pub fn file_version(path: &Path) -> Option<String> {
    let bin = std::fs::read(path).ok()?;
    let start = slot_offset(&bin, path).ok()?;
    let v = &bin[start..start + SLOT_LEN - MARKER_LEN];
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    std::str::from_utf8(&v[..end])
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Copy the stand-in binary `src` to `dst` so that it reports `version` (e.g. `v1.34.1+k3s1`).
pub fn write_with_version(src: &Path, dst: &Path, version: &str) -> Result<(), StandinError> {
    if version.is_empty() || version.len() >= SLOT_LEN - MARKER_LEN || version.contains('\0') {
        return Err(StandinError::failed(
            1,
            format!(
                "stand-in version {version:?} must be 1..{} bytes",
                SLOT_LEN - MARKER_LEN - 1
            ),
        ));
    }
    let mut bin = std::fs::read(src).map_err(|e| StandinError::io(src, e))?;
    let start = slot_offset(&bin, src)?;
    bin[start..start + SLOT_LEN - MARKER_LEN].fill(0);
    bin[start..start + version.len()].copy_from_slice(version.as_bytes());
    super::write_file(dst, &bin, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("fake");
        let mut bytes = b"ELF junk".to_vec();
        bytes.extend_from_slice(&slot());
        bytes.extend_from_slice(b"tail");
        std::fs::write(&src, &bytes).unwrap();
        assert_eq!(file_version(&src), None);
        let dst = dir.path().join("patched");
        write_with_version(&src, &dst, "v1.34.1+k3s1").unwrap();
        assert_eq!(file_version(&dst).as_deref(), Some("v1.34.1+k3s1"));
        write_with_version(&dst, &src, "v1.35.0+k3s1").unwrap();
        assert_eq!(file_version(&src).as_deref(), Some("v1.35.0+k3s1"));
        assert!(write_with_version(&dst, &src, "").is_err());
        std::fs::write(&src, b"no slot here").unwrap();
        assert!(write_with_version(&src, &dst, "v1").is_err());
    }
}
