//! The protocol coverage of a run as `runs.jsonl` carries it (docs/coverage.md): the points
//! its honest agents reached, as a bitset of point indices in hex, with the version of the
//! point table the indices refer to.

use consensus_core::protocol::coverage::{points_of_hex, BitsetError, Coverage, Point, VERSION};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The coverage field of a [`crate::model::RunRecord`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CoverageRecord {
    /// The version of consensus-core's point table (`protocol::coverage::VERSION`).
    pub version: u32,
    /// Point `i` reached: bit `i % 8` (least significant first) of byte `i / 8`, two lower-case
    /// hex digits per byte.
    pub points: String,
}

impl CoverageRecord {
    /// The record of `coverage`, in this build's table.
    pub fn of(coverage: &Coverage) -> CoverageRecord {
        CoverageRecord { version: VERSION, points: coverage.to_hex() }
    }

    /// The points reached, in table order; an error for another table version or a malformed
    /// bitset.
    pub fn points(&self) -> Result<Vec<Point>, BitsetError> {
        points_of_hex(self.version, &self.points)
    }

    /// The names of the points reached, in table order.
    pub fn names(&self) -> Result<Vec<&'static str>, BitsetError> {
        Ok(self.points()?.into_iter().map(Point::name).collect())
    }
}

/// The points reached by any of `records` (readable ones; the others are skipped and counted).
/// Returns the union and how many records could not be read.
pub fn union<'r>(records: impl IntoIterator<Item = &'r CoverageRecord>) -> (Vec<Point>, usize) {
    let mut reached = [false; Point::COUNT];
    let mut unreadable = 0;
    for record in records {
        match record.points() {
            Ok(points) => points.into_iter().for_each(|p| reached[p.index()] = true),
            Err(_) => unreadable += 1,
        }
    }
    (Point::ALL.iter().copied().filter(|p| reached[p.index()]).collect(), unreadable)
}

/// The family of a point, as the exploration's coverage summary groups them.
pub fn family(point: Point) -> &'static str {
    let name = point.name();
    if name.starts_with('L') {
        "rules"
    } else if name.starts_with('V') && name.ends_with("-pass") {
        "V-checks pass"
    } else if name.starts_with('V') {
        "V-checks fail"
    } else if name.starts_with("reject-") {
        "rejections"
    } else if name.starts_with("polka-cert-") || name.starts_with("commit-cert-") {
        "certificate checks"
    } else {
        "abstract states"
    }
}

/// The families in the order the summaries list them.
pub const FAMILIES: [&str; 6] =
    ["rules", "V-checks pass", "V-checks fail", "rejections", "certificate checks", "abstract states"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_json_and_reads_back_as_names() {
        let coverage = Coverage::default();
        coverage.record(Point::L28);
        coverage.record(Point::RejectBadSignature);
        let record = CoverageRecord::of(&coverage);
        let json = serde_json::to_string(&record).unwrap_or_default();
        let back: CoverageRecord = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, record);
        assert_eq!(back.names(), Ok(vec!["L28", "reject-bad-signature"]));
        let other = CoverageRecord { version: VERSION + 1, points: record.points.clone() };
        assert_eq!(other.names(), Err(BitsetError::Version { found: VERSION + 1 }));
        let (points, unreadable) = union([&record, &other, &CoverageRecord::of(&Coverage::default())]);
        assert_eq!((points, unreadable), (vec![Point::L28, Point::RejectBadSignature], 1));
    }

    #[test]
    fn every_point_has_one_of_the_listed_families() {
        for p in Point::ALL {
            assert!(FAMILIES.contains(&family(*p)), "{}", p.name());
        }
        let of = |name| Point::from_name(name).map(family);
        assert_eq!(of("L16-quorum"), Some("rules"));
        assert_eq!(of("V10-pass"), Some("V-checks pass"));
        assert_eq!(of("V8-fail"), Some("V-checks fail"));
        assert_eq!(of("reject-malformed"), Some("rejections"));
        assert_eq!(of("commit-cert-too-few"), Some("certificate checks"));
        assert_eq!(of("ahead-2"), Some("abstract states"));
        assert_eq!(of("state-prevote-locked-none-valid-none-proposal"), Some("abstract states"));
    }
}
