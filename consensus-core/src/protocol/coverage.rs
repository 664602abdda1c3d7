//! Protocol coverage: which rules of docs/protocol.md fired, which checks passed or failed, which
//! inputs were rejected and why, and which abstract states an agent voted in.
//!
//! Each [`Point`] has a stable kebab-case name (`L28`, `V3-fail`, `reject-bad-signature`,
//! `commit-cert-duplicate-signer`, `state-prevote-locked-none-valid-older-proposal`, ...). An
//! agent counts the points it reaches in a [`Coverage`]: one fixed-size array of counters
//! indexed by the point, written through a shared reference (the state machine's context is
//! shared), so recording is an add, never an allocation. Coverage only observes: no protocol
//! decision reads it.
//!
//! The points and what each means are listed in docs/coverage.md; a recorded set is written as
//! a bitset of point indices ([`Coverage::to_hex`]) together with [`VERSION`], the version of
//! this table.

use std::cell::Cell;

use super::messages::VoteKind;
use super::Rejection;

/// The version of the point table: bumped whenever a point is added, removed or moved, so that
/// a bitset written by one version is never read with another's names. Version 2 removed
/// `reject-invalid-vote` (bit 81; no code emitted its reason) and moved the later points down.
pub const VERSION: u32 = 2;

macro_rules! points {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// A protocol rule, check outcome, rejection reason or abstract state (docs/coverage.md).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Point {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Point {
            /// Every point, in index order.
            pub const ALL: &'static [Point] = &[$(Point::$variant,)+];

            /// The point's stable name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Point::$variant => $name,)+
                }
            }
        }
    };
}

points! {
    /// L1–L4: the session became known (its `Open`, or the client-signed spec a proposal or
    /// certificate carries): evaluation asked for, vote collection and the deadline scheduled,
    /// round 0 started.
    L1 = "L1",
    /// L5–L6: this agent's own vote signed and broadcast.
    L5 = "L5",
    /// L7–L8: a committee member's signed vote held.
    L8 = "L8",
    /// L9: two different signed votes of one agent (received, or carried by a proposal): evidence.
    L9 = "L9",
    /// L10–L11, L13: StartRound.
    L10 = "L10",
    /// L12: StartRound as the round's proposer (TryPropose).
    L12 = "L12",
    /// L15: the valid value re-proposed with its polka certificate.
    L15 = "L15",
    /// L16: a fresh value proposed with all n votes.
    L16 = "L16",
    /// L16: a fresh value proposed with at least q votes once vote collection is over.
    L16Quorum = "L16-quorum",
    /// L17: a fresh value proposed early: at least q votes, all for one candidate.
    L17 = "L17",
    /// L16b: votes missing and the outcome is no decision by the threshold: wait.
    L16b = "L16b",
    /// L16c: at or past the deadline, with votes missing, the proposer proposes what it holds.
    L16c = "L16c",
    /// L18–L19: a fallback-mode value proposed.
    L18 = "L18",
    /// L18: the fallback is on, the deadline not yet passed, the engine gives no decision: wait
    /// for the deadline rather than agree on no decision.
    L18Wait = "L18-wait",
    /// L21: the proposer waits for votes.
    L21 = "L21",
    /// L22: a second, different proposal of one round from its proposer: evidence.
    L22Conflicting = "L22-conflicting-proposal",
    /// L22–L23, L25: a proposal without a valid round prevoted.
    L23 = "L23",
    /// L22, L24–L25: a proposal without a valid round answered with a nil prevote.
    L24 = "L24",
    /// L26–L28, L30: a re-proposal prevoted on its polka.
    L28 = "L28",
    /// L26, L29–L30: a re-proposal with its polka answered with a nil prevote.
    L29 = "L29",
    /// L26–L27: a re-proposal waits for q prevotes of its valid round.
    L26Wait = "L26-wait",
    /// L27: a proposal whose valid round is not below its round: nil prevote.
    L27NotBelow = "L27-valid-round-not-below",
    /// L31–L32: a round vote kept and counted.
    L31 = "L31",
    /// L31: a round vote beyond the keeper's bound of future rounds per signer: dropped.
    L31FutureBound = "L31-future-bound",
    /// L32: a second value of one signer in one (round, kind): evidence, both kept and counted.
    L32 = "L32",
    /// L32: a further value of one signer beyond the keeper's bound: evidence only.
    L32Bound = "L32-bound",
    /// L33: a copy of a held round vote: counted once.
    L33 = "L33",
    /// L34–L35: the prevote timeout scheduled.
    L35 = "L35",
    /// L36–L40: locked on the proposal's value and precommitted it (with L41).
    L39 = "L39",
    /// L36–L37, L41: the polka seen after precommitting: the valid value only.
    L41 = "L41",
    /// L42–L43: a polka of an earlier round learned late became the valid value.
    L43 = "L43",
    /// L44–L45: q nil prevotes: precommit nil.
    L45 = "L45",
    /// L46–L47: the precommit timeout scheduled.
    L47 = "L47",
    /// L48–L51: decided on the proposal and q precommits.
    L50 = "L50",
    /// L52–L53: decided on a commit certificate.
    L53 = "L53",
    /// L54–L55: f + 1 agents in a later round: moved to it.
    L55 = "L55",
    /// L56–L57: the propose timeout: nil prevote.
    L57 = "L57",
    /// L58–L59: the prevote timeout: nil precommit.
    L59 = "L59",
    /// L60–L61: the precommit timeout: the next round.
    L61 = "L61",
    /// L62–L63: own messages re-sent on the retransmit tick.
    L63 = "L63",
    /// L64–L65: the polka of the valid round gossiped.
    L65 = "L65",
    /// L66–L67: the decision certificate sent to a peer or the client.
    L67 = "L67",
    /// L68–L69: own round votes of an earlier round sent to a peer still in it.
    L69 = "L69",
    /// L70–L71: a session whose spec is unknown: Sync asked of a peer.
    L71 = "L71",
    /// L72–L73: certificates sent in answer to a Sync.
    L73 = "L73",
    /// L74–L75: a session recovered after a restart.
    L75 = "L75",
    /// L76: the status tick's Sync.
    L76 = "L76",
    /// L77: a Sync from a peer that applied more: Sync back.
    L77 = "L77",
    /// V1 holds: the value names the session and carries its client-signed spec.
    V1Pass = "V1-pass",
    /// V1 fails.
    V1Fail = "V1-fail",
    /// V2 holds: at least q votes from distinct committee members, ascending, all for the session.
    V2Pass = "V2-pass",
    /// V2 fails.
    V2Fail = "V2-fail",
    /// V3 holds: every vote's signature verifies.
    V3Pass = "V3-pass",
    /// V3 fails.
    V3Fail = "V3-fail",
    /// V4 holds: the claimed outcome is `outcome(mode, votes)` (either mode).
    V4Pass = "V4-pass",
    /// V4 fails.
    V4Fail = "V4-fail",
    /// V5 holds: a normal-mode value claims the engine's aggregate.
    V5Pass = "V5-pass",
    /// V5 fails.
    V5Fail = "V5-fail",
    /// V6 holds: a fallback-mode value claims `fallback_consensus` of its votes.
    V6Pass = "V6-pass",
    /// V6 fails.
    V6Fail = "V6-fail",
    /// V7 holds: a fallback value with the fallback policy on and no decision by the engine.
    V7Pass = "V7-pass",
    /// V7 fails.
    V7Fail = "V7-fail",
    /// V8 holds: a fallback value checked past the session deadline.
    V8Pass = "V8-pass",
    /// V8 fails (not cached: the same value may pass later).
    V8Fail = "V8-fail",
    /// V9–V10 hold: a resolution decided a candidate with at least f + 1 supporting votes.
    V10Pass = "V10-pass",
    /// V10 applied: a resolution for a candidate with f or fewer supporters became no decision.
    V10Fail = "V10-fail",
    /// V11: a tie at a top count of at least f + 1 went to the weighted tie-break.
    V11Pass = "V11-pass",
    /// V11: a tie of f or fewer votes per side went to human review.
    V11Fail = "V11-fail",
    /// V12: strong dissent for one candidate by at least max(2, f + 1) votes went to evidence
    /// analysis.
    V12Pass = "V12-pass",
    /// V12: strong dissent below that: recorded, the majority rule holds.
    V12Fail = "V12-fail",
    /// V13: flagged voters excluded and the rest re-tallied.
    V13Pass = "V13-pass",
    /// V13: too few counted votes left without the flagged: human review.
    V13Fail = "V13-fail",
    /// An input rejected: a frame that did not decode.
    RejectMalformed = "reject-malformed",
    /// An input rejected: a signature that does not verify.
    RejectBadSignature = "reject-bad-signature",
    /// An input rejected: a signer outside the committee.
    RejectNotInCommittee = "reject-not-in-committee",
    /// An input rejected: an `Open` the client did not sign.
    RejectNotTheClient = "reject-not-the-client",
    /// An input rejected: a proposal from another agent than the round's proposer.
    RejectWrongProposer = "reject-wrong-proposer",
    /// An input rejected: a proposal refused as invalid (only the `pol-round-zero-rejected`
    /// mutation refuses proposals outright; an invalid value gets a nil prevote instead).
    RejectInvalidProposal = "reject-invalid-proposal",
    /// An input rejected: another or a stale session, or one too far ahead.
    RejectWrongSession = "reject-wrong-session",
    /// An input rejected: a commit certificate that does not prove its decision.
    RejectInvalidCommit = "reject-invalid-commit",
    /// An input rejected: the buffer of a session not yet ready is full.
    RejectBufferFull = "reject-buffer-full",
    /// L26–L27: a polka certificate of q distinct valid prevotes.
    PolkaCertOk = "polka-cert-ok",
    /// L26–L27: a certificate entry that is not a prevote.
    PolkaCertKind = "polka-cert-kind",
    /// L26–L27: a certificate prevote of another session.
    PolkaCertSession = "polka-cert-session",
    /// L26–L27: a certificate prevote of another round than the valid round.
    PolkaCertRound = "polka-cert-round",
    /// L26–L27: a certificate prevote for another value.
    PolkaCertValue = "polka-cert-value",
    /// L26–L27: a certificate prevote by an agent outside the committee.
    PolkaCertNotMember = "polka-cert-not-member",
    /// L26–L27: a second certificate prevote of one signer (counted once).
    PolkaCertDuplicateSigner = "polka-cert-duplicate-signer",
    /// L26–L27: a certificate prevote whose signature does not verify.
    PolkaCertBadSignature = "polka-cert-bad-signature",
    /// L26–L27: fewer than q distinct valid prevotes (they count as ordinary prevotes).
    PolkaCertTooFew = "polka-cert-too-few",
    /// L52–L53: a commit certificate of q valid precommits for a valid value.
    CommitCertOk = "commit-cert-ok",
    /// L52–L53: a certificate entry that is not a precommit.
    CommitCertKind = "commit-cert-kind",
    /// L52–L53: a precommit of another session.
    CommitCertSession = "commit-cert-session",
    /// L52–L53: precommits of different rounds.
    CommitCertRound = "commit-cert-round",
    /// L52–L53: a precommit for another value than the proposal's.
    CommitCertValue = "commit-cert-value",
    /// L52–L53: a precommit by an agent outside the committee.
    CommitCertNotMember = "commit-cert-not-member",
    /// L52–L53: a second precommit of one signer.
    CommitCertDuplicateSigner = "commit-cert-duplicate-signer",
    /// L52–L53: a precommit whose signature does not verify.
    CommitCertBadSignature = "commit-cert-bad-signature",
    /// L52–L53: fewer than q precommits.
    CommitCertTooFew = "commit-cert-too-few",
    /// L53: q valid precommits for a value that is not valid (V1–V8).
    CommitCertInvalidValue = "commit-cert-invalid-value",
    /// An own prevote; unlocked, no valid value; the round's proposal held.
    PrevoteNoneNoneProposal = "state-prevote-locked-none-valid-none-proposal",
    /// An own prevote; unlocked, no valid value; no proposal of the round held.
    PrevoteNoneNone = "state-prevote-locked-none-valid-none-no-proposal",
    /// An own prevote; unlocked, a valid value of an earlier round; the proposal held.
    PrevoteNoneOlderProposal = "state-prevote-locked-none-valid-older-proposal",
    /// An own prevote; unlocked, a valid value of an earlier round; no proposal held.
    PrevoteNoneOlder = "state-prevote-locked-none-valid-older-no-proposal",
    /// An own prevote; locked and valid in earlier rounds; the proposal held.
    PrevoteOlderOlderProposal = "state-prevote-locked-older-valid-older-proposal",
    /// An own prevote; locked and valid in earlier rounds; no proposal held.
    PrevoteOlderOlder = "state-prevote-locked-older-valid-older-no-proposal",
    /// An own precommit; unlocked, no valid value; the proposal held.
    PrecommitNoneNoneProposal = "state-precommit-locked-none-valid-none-proposal",
    /// An own precommit; unlocked, no valid value; no proposal held.
    PrecommitNoneNone = "state-precommit-locked-none-valid-none-no-proposal",
    /// An own precommit; unlocked, a valid value of an earlier round; the proposal held.
    PrecommitNoneOlderProposal = "state-precommit-locked-none-valid-older-proposal",
    /// An own precommit; unlocked, a valid value of an earlier round; no proposal held.
    PrecommitNoneOlder = "state-precommit-locked-none-valid-older-no-proposal",
    /// An own precommit; locked and valid in earlier rounds; the proposal held.
    PrecommitOlderOlderProposal = "state-precommit-locked-older-valid-older-proposal",
    /// An own precommit; locked and valid in earlier rounds; no proposal held.
    PrecommitOlderOlder = "state-precommit-locked-older-valid-older-no-proposal",
    /// An own precommit for the value just locked in this round (L40).
    PrecommitSameSameProposal = "state-precommit-locked-same-valid-same-proposal",
    /// (Simulator) an honest agent's own round vote in the round of the slowest honest agent
    /// that voted in the session.
    Ahead0 = "ahead-0",
    /// (Simulator) one round ahead of the slowest honest agent.
    Ahead1 = "ahead-1",
    /// (Simulator) two rounds ahead.
    Ahead2 = "ahead-2",
    /// (Simulator) three or more rounds ahead.
    Ahead3Plus = "ahead-3-plus",
}

impl Point {
    /// Number of points.
    pub const COUNT: usize = Point::ALL.len();

    /// The point's index in [`Point::ALL`] (and in a bitset).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The point named `name`, in this version of the table.
    pub fn from_name(name: &str) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// The point of a rejection reason.
    pub fn rejection(reason: &Rejection) -> Point {
        match reason {
            Rejection::Malformed => Point::RejectMalformed,
            Rejection::BadSignature => Point::RejectBadSignature,
            Rejection::NotInCommittee => Point::RejectNotInCommittee,
            Rejection::NotTheClient => Point::RejectNotTheClient,
            Rejection::WrongProposer => Point::RejectWrongProposer,
            Rejection::InvalidProposal => Point::RejectInvalidProposal,
            Rejection::WrongSession => Point::RejectWrongSession,
            Rejection::InvalidCommit => Point::RejectInvalidCommit,
            Rejection::BufferFull => Point::RejectBufferFull,
        }
    }

    /// A check's outcome: `pass` or `fail` by whether it held.
    pub fn check(held: bool, pass: Point, fail: Point) -> Point {
        if held {
            pass
        } else {
            fail
        }
    }

    /// The rounds-ahead point of an agent `ahead` rounds ahead of the slowest honest agent.
    pub fn ahead(ahead: u32) -> Point {
        match ahead {
            0 => Point::Ahead0,
            1 => Point::Ahead1,
            2 => Point::Ahead2,
            _ => Point::Ahead3Plus,
        }
    }

    /// The abstract state in which an agent has just sent its own round vote of `kind`: its
    /// lock and valid value relative to the current round, and whether it holds the round's
    /// proposal. `None` for a combination the protocol cannot reach (a prevote leaves the
    /// propose step, where nothing is locked or valid in the current round yet; a lock comes
    /// with a valid value at least as recent; a precommit with a lock of the current round is
    /// L40's, for the proposal held).
    pub fn state(kind: VoteKind, locked: Relative, valid: Relative, proposal: bool) -> Option<Point> {
        use Relative::{None as N, Older as O, Same as S};
        let point = match (kind, locked, valid, proposal) {
            (VoteKind::Prevote, N, N, true) => Point::PrevoteNoneNoneProposal,
            (VoteKind::Prevote, N, N, false) => Point::PrevoteNoneNone,
            (VoteKind::Prevote, N, O, true) => Point::PrevoteNoneOlderProposal,
            (VoteKind::Prevote, N, O, false) => Point::PrevoteNoneOlder,
            (VoteKind::Prevote, O, O, true) => Point::PrevoteOlderOlderProposal,
            (VoteKind::Prevote, O, O, false) => Point::PrevoteOlderOlder,
            (VoteKind::Precommit, N, N, true) => Point::PrecommitNoneNoneProposal,
            (VoteKind::Precommit, N, N, false) => Point::PrecommitNoneNone,
            (VoteKind::Precommit, N, O, true) => Point::PrecommitNoneOlderProposal,
            (VoteKind::Precommit, N, O, false) => Point::PrecommitNoneOlder,
            (VoteKind::Precommit, O, O, true) => Point::PrecommitOlderOlderProposal,
            (VoteKind::Precommit, O, O, false) => Point::PrecommitOlderOlder,
            (VoteKind::Precommit, S, S, true) => Point::PrecommitSameSameProposal,
            _ => return None,
        };
        Some(point)
    }
}

/// A lock's or valid value's round relative to the current round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relative {
    /// None held.
    None,
    /// Of the current round.
    Same,
    /// Of an earlier round.
    Older,
}

impl Relative {
    /// Where `held` (a round, if any) stands relative to `current`.
    pub fn of(held: Option<u32>, current: u32) -> Relative {
        match held {
            None => Relative::None,
            Some(r) if r >= current => Relative::Same,
            Some(_) => Relative::Older,
        }
    }
}

/// How often each point was reached: one counter per point, written through `&self`.
#[derive(Clone, PartialEq, Eq)]
pub struct Coverage {
    counts: [Cell<u32>; Point::COUNT],
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage { counts: std::array::from_fn(|_| Cell::new(0)) }
    }
}

impl std::fmt::Debug for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.reached().map(|p| (p.name(), self.count(p)))).finish()
    }
}

impl Coverage {
    /// Counts one more of `point` (saturating).
    #[inline]
    pub fn record(&self, point: Point) {
        let c = &self.counts[point.index()];
        c.set(c.get().saturating_add(1));
    }

    /// How often `point` was reached.
    pub fn count(&self, point: Point) -> u32 {
        self.counts[point.index()].get()
    }

    /// The points reached at least once, in index order.
    pub fn reached(&self) -> impl Iterator<Item = Point> + '_ {
        Point::ALL.iter().copied().filter(|p| self.count(*p) > 0)
    }

    /// The points never reached, in index order.
    pub fn missed(&self) -> impl Iterator<Item = Point> + '_ {
        Point::ALL.iter().copied().filter(|p| self.count(*p) == 0)
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Coverage) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            let sum = mine.get().saturating_add(theirs.get());
            mine.set(sum);
        }
    }

    /// The points reached, as a bitset in lower-case hex: byte `i / 8` holds point `i` at bit
    /// `i % 8` (least significant first), two hex digits per byte, every byte written. Read it
    /// with [`points_of_hex`] and the same [`VERSION`].
    pub fn to_hex(&self) -> String {
        let mut bytes = [0u8; Point::COUNT.div_ceil(8)];
        for p in self.reached() {
            bytes[p.index() / 8] |= 1 << (p.index() % 8);
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a coverage bitset could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitsetError {
    /// Written with another version of the point table.
    #[error("coverage table version {found}, this build reads version {VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Not an even number of hex digits.
    #[error("coverage bitset {0:?} is not hex bytes")]
    NotHex(String),
    /// A bit set beyond the last point of this version.
    #[error("coverage bitset sets bit {0}, beyond the {count} points of version {VERSION}", count = Point::COUNT)]
    UnknownPoint(usize),
}

/// The points of a bitset written by [`Coverage::to_hex`] with table version `version`.
pub fn points_of_hex(version: u32, hex: &str) -> Result<Vec<Point>, BitsetError> {
    if version != VERSION {
        return Err(BitsetError::Version { found: version });
    }
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BitsetError::NotHex(hex.to_string()));
    }
    let mut points = Vec::new();
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| BitsetError::NotHex(hex.to_string()))?;
        let byte = u8::from_str_radix(text, 16).map_err(|_| BitsetError::NotHex(hex.to_string()))?;
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                let index = i * 8 + bit;
                points.push(*Point::ALL.get(index).ok_or(BitsetError::UnknownPoint(index))?);
            }
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_indices_follow_the_table() {
        let mut names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
        for (i, p) in Point::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(Point::from_name(p.name()), Some(*p));
            assert!(p.name().chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{}", p.name());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Point::COUNT);
    }

    #[test]
    fn a_bitset_round_trips_and_refuses_what_it_cannot_read() {
        let coverage = Coverage::default();
        assert_eq!(points_of_hex(VERSION, &coverage.to_hex()), Ok(Vec::new()));
        for p in [Point::L1, Point::V3Fail, Point::CommitCertDuplicateSigner, Point::Ahead3Plus] {
            coverage.record(p);
        }
        coverage.record(Point::L1);
        assert_eq!(coverage.count(Point::L1), 2);
        let hex = coverage.to_hex();
        assert_eq!(hex.len(), Point::COUNT.div_ceil(8) * 2);
        assert_eq!(points_of_hex(VERSION, &hex), Ok(coverage.reached().collect()));
        assert_eq!(points_of_hex(VERSION + 1, &hex), Err(BitsetError::Version { found: VERSION + 1 }));
        assert!(matches!(points_of_hex(VERSION, "0"), Err(BitsetError::NotHex(_))));
        assert!(matches!(points_of_hex(VERSION, "zz"), Err(BitsetError::NotHex(_))));
        let beyond = "ff".repeat(Point::COUNT.div_ceil(8) + 1);
        assert!(matches!(points_of_hex(VERSION, &beyond), Err(BitsetError::UnknownPoint(_))));
    }

    /// docs/coverage.md lists every point with its bit, for this version of the table.
    #[test]
    fn the_documentation_lists_every_point_with_its_bit() {
        let doc = include_str!("../../../docs/coverage.md");
        assert!(doc.contains(&format!("## The points (version {VERSION})")), "docs/coverage.md is for another version");
        for p in Point::ALL {
            let row = format!("| {} | `{}` |", p.index(), p.name());
            assert!(doc.contains(&row), "docs/coverage.md lacks the row {row}");
        }
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, b) = (Coverage::default(), Coverage::default());
        a.record(Point::L28);
        b.record(Point::L28);
        b.record(Point::V13Pass);
        a.merge(&b);
        assert_eq!((a.count(Point::L28), a.count(Point::V13Pass)), (2, 1));
        assert_eq!(a.reached().count() + a.missed().count(), Point::COUNT);
    }
}
