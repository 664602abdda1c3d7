//! Integration tests of the reports crate: reports from synthetic result sets, and the page in
//! headless Chromium.

mod browser;
mod explore;
mod fixtures;
mod report;
mod spacetime;
