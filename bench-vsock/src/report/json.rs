//! The JSON report: [`Report`] as `serde_json` writes it; `schema/report.schema.json`
//! describes it.

use std::io::Write;
use std::path::Path;

use crate::error::{Context, Result};
use crate::http::results::{HttpReport, KIND as HTTP_KIND};
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

/// A report of either kind, as `bench-vsock report` takes them.
#[derive(Debug, Clone)]
pub enum AnyReport {
    /// A compare (or single workload, or client) report: no `kind` field.
    Compare(Report),
    /// An `http` report: `"kind": "http"`.
    Http(HttpReport),
}

/// Reads a report of either kind, told apart by its `kind` field (compare reports, old and
/// new, have none).
///
/// # Errors
///
/// The file is missing or not a bench-vsock report of either kind.
pub fn read_any(path: &Path) -> Result<AnyReport> {
    let text = std::fs::read_to_string(path).context(format!("reading {}", path.display()))?;
    let not = |what: &str| format!("{} is not a bench-vsock {what}", path.display());
    let value: serde_json::Value = serde_json::from_str(&text).context(not("report"))?;
    if value.get("kind").and_then(|k| k.as_str()) == Some(HTTP_KIND) {
        let r = serde_json::from_value(value).context(not("http report"))?;
        return Ok(AnyReport::Http(r));
    }
    Ok(AnyReport::Compare(
        serde_json::from_value(value).context(not("report"))?,
    ))
}

/// Writes an http report as pretty JSON.
///
/// # Errors
///
/// Writing failed.
pub fn write_http(w: &mut dyn Write, report: &HttpReport) -> Result<()> {
    serde_json::to_writer_pretty(&mut *w, report)?;
    writeln!(w)?;
    Ok(())
}
