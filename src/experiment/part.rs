//! A world split over several processes or hosts: part K of N runs every N-th member of the
//! scenario (world peers, then viewers, in scenario order), so each part gets its share of
//! every class; part 1 also runs the tracker and the origin the other parts are given.

use std::str::FromStr;

/// Part `k` (1-based) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    k: u32,
    n: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a part is K/N with 1 <= K <= N <= {MAX_PARTS} (got `{0}`)")]
pub struct BadPart(String);

/// More parts than this is a typo, not a cluster.
pub const MAX_PARTS: u32 = 1024;

impl Part {
    pub fn new(k: u32, n: u32) -> Result<Part, BadPart> {
        if k == 0 || k > n || n > MAX_PARTS {
            return Err(BadPart(format!("{k}/{n}")));
        }
        Ok(Part { k, n })
    }

    /// The whole world in one part.
    pub fn whole() -> Part {
        Part { k: 1, n: 1 }
    }

    pub fn k(&self) -> u32 {
        self.k
    }

    pub fn n(&self) -> u32 {
        self.n
    }

    /// Part 1 runs the tracker and the origin.
    pub fn runs_services(&self) -> bool {
        self.k == 1
    }

    /// Whether member `index` (counted over the scenario's world peers, then its viewers)
    /// runs in this part.
    pub fn holds(&self, index: usize) -> bool {
        index % self.n as usize == (self.k - 1) as usize
    }
}

impl FromStr for Part {
    type Err = BadPart;

    fn from_str(text: &str) -> Result<Part, BadPart> {
        let bad = || BadPart(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Part::new(k, n).map_err(|_| bad())
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The tracker and origin another part started, for a part other than the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteServices {
    pub tracker_url: String,
    pub origin_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_share_out_every_member_once() {
        let parts: Vec<Part> = (1..=3).map(|k| Part::new(k, 3).unwrap()).collect();
        for index in 0..100 {
            assert_eq!(parts.iter().filter(|p| p.holds(index)).count(), 1);
        }
        assert!(parts[0].holds(0) && parts[1].holds(1) && parts[2].holds(2));
        assert!(Part::whole().holds(7));
    }

    #[test]
    fn a_part_is_read_from_k_slash_n_and_refused_otherwise() {
        assert_eq!("2/3".parse::<Part>(), Ok(Part { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "1/2000", ""] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
        assert_eq!(Part::new(2, 3).unwrap().to_string(), "2/3");
    }
}
