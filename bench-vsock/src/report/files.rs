//! Writes a run's report files into the results folder.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use crate::results::Report;

fn create(path: &Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(
        File::create(path).context(format!("creating {}", path.display()))?,
    ))
}

/// Writes into `dir`: `hgrm/<run>.hgrm` for every run (noting each file in its run),
/// `latency.svg`, `throughput.svg`, `report.html`, then `report.json`; and the JSON also to `json` if given. Returns the files written.
///
/// # Errors
///
/// A folder or file could not be written.
pub fn write_all(dir: &Path, json: Option<&Path>, report: &mut Report) -> Result<Vec<PathBuf>> {
    let hgrm_dir = dir.join("hgrm");
    fs::create_dir_all(&hgrm_dir).context(format!("creating {}", hgrm_dir.display()))?;
    let mut written = Vec::new();
    for (i, run) in report.runs.iter_mut().enumerate() {
        let Some(h) = &run.histogram else { continue };
        let name = format!("hgrm/{}.hgrm", run.file_id(i));
        let path = dir.join(&name);
        let mut w = create(&path)?;
        super::hgrm::write(&mut w, h)?;
        w.flush()?;
        run.hgrm = Some(name);
    }
    written.push(hgrm_dir);
    let sums = crate::summary::summarize(&report.runs);
    type Plot = fn(&mut dyn Write, &[crate::summary::Summary]) -> std::io::Result<()>;
    let plots: [(&str, Plot); 2] = [
        ("latency.svg", super::svg::write_latency),
        ("throughput.svg", super::svg::write_throughput),
    ];
    for (name, plot) in plots {
        let path = dir.join(name);
        let mut w = create(&path)?;
        plot(&mut w, &sums)?;
        w.flush()?;
        written.push(path);
    }
    let path = dir.join("report.html");
    let mut w = create(&path)?;
    super::html::write(&mut w, report)?;
    w.flush()?;
    written.push(path);
    let mut targets = vec![dir.join("report.json")];
    targets.extend(json.map(Path::to_path_buf));
    for path in targets {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).context(format!("creating {}", parent.display()))?;
        }
        let mut w = create(&path)?;
        super::json::write(&mut w, report)?;
        w.flush()?;
        written.push(path);
    }
    Ok(written)
}
