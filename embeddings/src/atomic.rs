//! Atomic file writes: a temporary file in the destination's directory, renamed over the
//! destination once complete, so an interrupted run leaves either the old file or the new one and
//! never a truncated mix.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

/// Writes `path` through `fill`, atomically. The temporary file lives next to `path` because a
/// rename is only atomic within one file system; its name carries the process id and a counter so
/// that concurrent writers (parallel tests, two processes filling the same cache) never share one.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let path = &destination(path)?;
    let tmp = temp_path(path)?;
    let result = (|| -> io::Result<()> {
        let mut w = BufWriter::new(File::create(&tmp)?);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        // Without the sync a crash shortly after the rename can leave a renamed but empty file.
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// The file a write to `path` replaces: `path` itself, or the file a symbolic link points to (a
/// rename over the link would replace the link). Refuses anything that exists and is not a regular
/// file — a directory, a device such as `/dev/null`, a socket — because renaming over it would
/// destroy it; call it before long work so a bad destination fails fast.
pub fn destination(path: &Path) -> anyhow::Result<PathBuf> {
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(target) => target,
            // A dangling link: write where it points.
            Err(_) => std::fs::read_link(path)
                .map(|t| path.parent().unwrap_or(Path::new(".")).join(t))
                .with_context(|| format!("cannot resolve the link {}", path.display()))?,
        },
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&resolved) {
        Ok(m) if !m.is_file() => {
            anyhow::bail!("refusing to replace {}: it exists and is not a regular file", resolved.display())
        }
        _ => {}
    }
    let dir = resolved.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!("cannot write {}: the directory {} does not exist", resolved.display(), dir.display());
    }
    Ok(resolved)
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

fn temp_path(path: &Path) -> anyhow::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .with_context(|| format!("cannot write {}: the path has no file name", path.display()))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_regular_destinations_are_refused_and_links_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_bytes(dir.path(), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        assert!(destination(Path::new("/dev/null")).is_err());
        let target = dir.path().join("target.json");
        write_bytes(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_bytes(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(write_bytes(&dir.path().join("missing/x.json"), b"x").is_err());
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_bytes(&path, b"old").unwrap();
        let err = write_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("interrupted"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("interrupted"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_bytes(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_bytes(&dir.path().join("no/such/dir/out.bin"), b"x").unwrap_err();
        assert!(err.to_string().starts_with("cannot write"), "{err}");
    }
}
