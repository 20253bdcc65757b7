//! Alert inputs for the offline commands: `.avro` files, directories of
//! them, and `.tar.gz` archives (the form of ZTF's nightly archives).
//!
//! Owns: turning paths into a stream of named messages. Must never: stop
//! at a bad member; every unreadable item is yielded as a named error and
//! the stream goes on.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flate2::read::GzDecoder;

/// Largest single message read, in bytes (ZTF alerts are under 100 KB).
const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// One input message, or why it could not be read.
#[derive(Debug)]
pub struct Item {
    /// The file, or `archive.tar.gz:member`.
    pub name: String,
    pub bytes: Result<Bytes, String>,
}

fn is_archive(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// Every input item under `paths`, in a stable order: directories are
/// walked recursively (their `.avro` files and archives, sorted by name).
pub fn items(paths: &[PathBuf]) -> impl Iterator<Item = Item> {
    let (files, errors) = files(paths);
    errors.into_iter().chain(files.into_iter().flat_map(read))
}

/// The files under `paths` (alert files and archives), and the paths
/// that could not be listed, as items. [`read`] each file for its items.
pub fn files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Item>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        expand(path, &mut files, &mut errors);
    }
    (files, errors)
}

fn expand(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<Item>) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let entries = match std::fs::read_dir(path) {
                Ok(e) => e,
                Err(err) => {
                    errors.push(error(
                        path.display().to_string(),
                        format!("cannot list: {err}"),
                    ));
                    return;
                }
            };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            for child in children {
                let wanted = child.is_dir()
                    || is_archive(&child)
                    || child.extension().is_some_and(|e| e == "avro");
                if wanted {
                    expand(&child, files, errors);
                }
            }
        }
        Ok(_) => files.push(path.to_path_buf()),
        Err(err) => errors.push(error(
            path.display().to_string(),
            format!("cannot read: {err}"),
        )),
    }
}

fn error(name: String, why: String) -> Item {
    Item {
        name,
        bytes: Err(why),
    }
}

/// The items of one file: itself, or an archive's members.
pub fn read(path: PathBuf) -> Box<dyn Iterator<Item = Item>> {
    let name = path.display().to_string();
    if is_archive(&path) {
        return match File::open(&path) {
            Ok(file) => Box::new(read_archive(&name, file).into_iter()),
            Err(err) => Box::new(std::iter::once(error(name, format!("cannot open: {err}")))),
        };
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) if b.len() as u64 > MAX_MESSAGE_BYTES => Err(too_big(b.len() as u64)),
        Ok(b) => Ok(Bytes::from(b)),
        Err(err) => Err(format!("cannot read: {err}")),
    };
    Box::new(std::iter::once(Item { name, bytes }))
}

/// The regular-file members of a `.tar.gz`, each a named item; a damaged
/// archive yields what could be read and then one error.
fn read_archive(name: &str, file: File) -> Vec<Item> {
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut out = Vec::new();
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(err) => {
            return vec![error(
                name.to_string(),
                format!("not a readable .tar.gz: {err}"),
            )];
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(err) => {
                out.push(error(
                    name.to_string(),
                    format!("archive is damaged: {err}; stopped reading it"),
                ));
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<unnamed>".into());
        let item_name = format!("{name}:{member}");
        let size = entry.header().size().unwrap_or(0);
        if size > MAX_MESSAGE_BYTES {
            out.push(error(item_name, too_big(size)));
            continue;
        }
        let mut buf = Vec::with_capacity(size as usize);
        match entry.read_to_end(&mut buf) {
            Ok(_) => out.push(Item {
                name: item_name,
                bytes: Ok(Bytes::from(buf)),
            }),
            Err(err) => {
                out.push(error(
                    item_name,
                    format!("cannot read member: {err}; stopped reading the archive"),
                ));
                break;
            }
        }
    }
    out
}

fn too_big(size: u64) -> String {
    format!("{size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit for one alert")
}
