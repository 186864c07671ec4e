//! The report files of a run, in the results folder: opened before the run measures, so an
//! unwritable path fails at once instead of losing the measurements, and written after it;
//! every error names the file.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use crate::results::Report;
use crate::summary::Summary;

/// Writes a file through `body`, naming the file in any error (creating, writing or
/// flushing it).
///
/// # Errors
///
/// The file could not be created or written.
pub fn write_file(path: &Path, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let file = File::create(path).context(format!("creating {}", path.display()))?;
    fill(path, file, body)
}

fn fill(path: &Path, file: File, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let mut w = BufWriter::new(file);
    body(&mut w)
        .and_then(|()| w.flush().map_err(Into::into))
        .context(format!("writing {}", path.display()))
}

/// A JSON report file, open since before the run.
pub(crate) struct Opened {
    path: PathBuf,
    file: File,
    /// Whether opening it made it (so a run that fails removes it again).
    created: bool,
}

impl Opened {
    /// Opens `path` for writing without truncating it: a run that fails leaves what was
    /// there.
    pub(crate) fn open(path: &Path) -> Result<Opened> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).context(format!("creating {}", parent.display()))?;
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .context(format!("opening {} for writing", path.display()))?;
        Ok(Opened {
            path: path.to_path_buf(),
            file,
            created: !existed,
        })
    }

    /// Gives up after a failed run: removes the file if opening made it (empty), and leaves
    /// a file that was there before as it was.
    pub(crate) fn abandon(self) {
        if self.created {
            drop(self.file);
            // Best effort: a file we cannot remove is an empty file, not a wrong one.
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Replaces the file's contents with what `body` writes.
    pub(crate) fn write(
        mut self,
        body: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<PathBuf> {
        // Only a regular file can be emptied; a device such as /dev/stdout is written as is.
        let regular = self.file.metadata().is_ok_and(|m| m.is_file());
        if regular {
            self.file
                .set_len(0)
                .and_then(|()| self.file.rewind())
                .context(format!("truncating {}", self.path.display()))?;
        }
        fill(&self.path, self.file, body)?;
        Ok(self.path)
    }
}

/// Where a run's reports go: the results folder, made and checked, and the JSON files,
/// open, before anything is measured.
pub struct Outputs {
    dir: PathBuf,
    jsons: Vec<Opened>,
}

impl Outputs {
    /// Makes `dir` (and its `hgrm` folder) and opens `dir/report.json` and `json`, if given.
    ///
    /// # Errors
    ///
    /// A folder could not be made or a file not opened for writing: the error names it.
    pub fn open(dir: &Path, json: Option<&Path>) -> Result<Outputs> {
        let hgrm = dir.join("hgrm");
        fs::create_dir_all(&hgrm).context(format!("creating {}", hgrm.display()))?;
        let mut jsons = vec![Opened::open(&dir.join("report.json"))?];
        if let Some(j) = json {
            jsons.push(Opened::open(j)?);
        }
        Ok(Outputs {
            dir: dir.to_path_buf(),
            jsons,
        })
    }

    /// Gives up after a failed run: removes the JSON files that opening made (empty), and
    /// leaves files that were there before as they were.
    pub fn abandon(self) {
        for j in self.jsons {
            j.abandon();
        }
    }

    /// Writes into the folder: `hgrm/<run>.hgrm` for every run (noting each file in its
    /// run), the plots, `report.html`, then `report.json` and the extra JSON. Returns the
    /// files written.
    ///
    /// # Errors
    ///
    /// A file could not be written: the error names it.
    pub fn write(self, report: &mut Report, sums: &[Summary]) -> Result<Vec<PathBuf>> {
        let dir = &self.dir;
        let mut written = Vec::new();
        for (i, run) in report.runs.iter_mut().enumerate() {
            let Some(h) = &run.histogram else { continue };
            let name = format!("hgrm/{}.hgrm", run.file_id(i));
            write_file(&dir.join(&name), |w| Ok(super::hgrm::write(w, h)?))?;
            run.hgrm = Some(name);
        }
        written.push(dir.join("hgrm"));
        for plot in super::svg::PLOTS {
            let path = dir.join(plot.file);
            write_file(&path, |w| Ok((plot.draw)(w, sums)?))?;
            written.push(path);
        }
        let path = dir.join("report.html");
        write_file(&path, |w| Ok(super::html::write(w, report, sums)?))?;
        written.push(path);
        for j in self.jsons {
            written.push(j.write(|w| super::json::write(w, report))?);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bench-vsock-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_error_names_the_file() {
        let e = write_file(Path::new("/dev/full"), |w| Ok(w.write_all(&[0; 10])?)).unwrap_err();
        assert!(
            e.message().starts_with("writing /dev/full: "),
            "{}",
            e.message()
        );
    }

    #[test]
    fn an_abandoned_run_removes_only_what_it_made() {
        let dir = fresh("abandon");
        let old = dir.join("old.json");
        fs::write(&old, "kept").unwrap();
        let out = Outputs::open(&dir.join("results"), Some(&old)).unwrap();
        assert!(dir.join("results/report.json").exists());
        out.abandon();
        assert!(!dir.join("results/report.json").exists());
        assert_eq!(fs::read_to_string(&old).unwrap(), "kept");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rewritten_file_holds_only_the_new_contents() {
        let dir = fresh("rewrite");
        let path = dir.join("r.json");
        fs::write(&path, "a much longer old content").unwrap();
        let opened = Opened::open(&path).unwrap();
        assert!(!opened.created);
        opened.write(|w| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        fs::remove_dir_all(&dir).unwrap();
    }
}
