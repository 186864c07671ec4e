//! The JSON report: [`Report`] as `serde_json` writes it; `schema/report.schema.json`
//! describes it.

use std::io::Write;
use std::path::Path;

use crate::error::{Context, Result};
use crate::results::Report;

/// Writes the report as pretty JSON.
///
/// # Errors
///
/// Writing failed.
pub fn write(w: &mut dyn Write, report: &Report) -> Result<()> {
    serde_json::to_writer_pretty(&mut *w, report)?;
    writeln!(w)?;
    Ok(())
}

/// Reads a report written by [`write()`].
///
/// # Errors
///
/// The file is missing or not a bench-vsock report.
pub fn read(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).context(format!("reading {}", path.display()))?;
    serde_json::from_str(&text).context(format!("{} is not a bench-vsock report", path.display()))
}
