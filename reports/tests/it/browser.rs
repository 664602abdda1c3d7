//! report.html in a real browser: headless Chromium loads the page from disk, with the network
//! features it would use disabled, and the page's inline script reports how many figures
//! decoded. When Chromium is absent the test installs Debian's `chromium` (as root), and when
//! that is impossible it says SKIPPED on stderr with the reason: it never passes silently.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixtures::{sample_report, temp_dir};

const CANDIDATES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

#[test]
fn every_figure_loads_in_headless_chromium() {
    let browser = match find_or_install_chromium() {
        Ok(path) => path,
        Err(reason) => {
            eprintln!("SKIPPED: chromium not installable here: {reason}");
            return;
        }
    };
    let output = sample_report();
    let figures = output.figures.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")).count();
    let page = fs::canonicalize(&output.html).expect("absolute path");

    let dom = run_chromium(&browser, &page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    let loaded = attribute(&dom, "data-figures-loaded")
        .unwrap_or_else(|| panic!("the page's load script did not run; DOM starts: {}", head(&dom)));
    assert_eq!(loaded, format!("{figures}/{figures}"), "figures decoded / figures on the page");

    let screenshot = std::env::temp_dir().join("bftsim-report-screenshot.png");
    let _ = fs::remove_file(&screenshot);
    let shot_arg = format!("--screenshot={}", screenshot.display());
    run_chromium(&browser, &page, &[&shot_arg, "--window-size=1280,2400", "--hide-scrollbars"]);
    let png = fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    assert!(png.len() > 50_000, "a 1280x2400 screenshot of text and figures is not blank ({} bytes)", png.len());
    eprintln!("report.html: {figures}/{figures} figures loaded in Chromium; screenshot: {}", screenshot.display());
}

fn run_chromium(browser: &Path, page: &Path, extra: &[&str]) -> Output {
    let profile = temp_dir(&format!("chromium-profile-{}", extra.len()));
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("file://{}", page.display()));
    let output = Command::new("timeout")
        .arg("180")
        .arg(browser)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        browser.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = fs::remove_dir_all(&profile);
    output
}

/// The browser, installing Debian's `chromium` when it is missing and we are root.
fn find_or_install_chromium() -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    if !is_root() {
        return Err("/usr/bin/chromium is missing and installing it needs root".into());
    }
    eprintln!("chromium missing: installing Debian's chromium with apt-get (this can take minutes)");
    let mut log = String::new();
    for step in [&["install", "-y", "chromium"][..], &["update"], &["install", "-y", "chromium"]] {
        if find().is_some() {
            break;
        }
        match Command::new("timeout")
            .arg("900")
            .arg("apt-get")
            .args(step)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
        {
            Ok(out) => log = format!("apt-get {} exited {}: {}", step.join(" "), out.status, tail(&out.stderr)),
            Err(e) => log = format!("cannot run apt-get: {e}"),
        }
    }
    find().ok_or(log)
}

fn find() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The value of the first `name="…"` attribute in `html`.
fn attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn head(text: &str) -> &str {
    text.get(..text.len().min(300)).unwrap_or(text)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}
