//! Everything that shows results: one exporter per format, each writing to `impl Write`.

pub mod cells;
pub mod columns;
pub mod files;
pub mod hgrm;
pub mod html;
pub mod json;
pub mod markdown;
pub mod progress;
pub mod proxy;
pub mod svg;
pub mod table;
pub mod targets;
