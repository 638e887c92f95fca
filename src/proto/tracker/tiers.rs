//! BEP 12 tracker tiers: the order in which a client tries its trackers.
//!
//! Each tier is shuffled once at start; trackers are tried tier by tier, in order, and one that
//! answers moves to the front of its tier so it is tried first next time.

use rand::Rng;
use rand::seq::SliceRandom;
use url::Url;

/// Where one tracker sits: tier number and index within the tier.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct TrackerPos {
    pub tier: usize,
    pub index: usize,
}

/// A tracker URL that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTracker {
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerTiers {
    tiers: Vec<Vec<Url>>,
    skipped: Vec<SkippedTracker>,
}

impl TrackerTiers {
    /// Builds tiers from a torrent's `announce-list` (or `[[announce]]`), shuffling each tier.
    /// URLs that do not parse, are not http(s) or udp, or are udp without a host and port are
    /// skipped and listed in [`TrackerTiers::skipped`]; empty tiers are dropped.
    pub fn new(tiers: Vec<Vec<String>>, rng: &mut impl Rng) -> TrackerTiers {
        let mut skipped = Vec::new();
        let mut out = Vec::new();
        for tier in tiers {
            let mut urls = Vec::new();
            for text in tier {
                match Url::parse(text.trim()) {
                    Ok(url)
                        if url.scheme() == "udp"
                            && (url.host().is_none() || url.port().is_none()) =>
                    {
                        skipped.push(SkippedTracker {
                            reason: "a udp tracker URL needs a host and a port".into(),
                            url: text,
                        })
                    }
                    Ok(url) if matches!(url.scheme(), "http" | "https" | "udp") => {
                        if !urls.contains(&url) {
                            urls.push(url);
                        }
                    }
                    Ok(url) => skipped.push(SkippedTracker {
                        reason: format!("{} trackers are not supported", url.scheme()),
                        url: text,
                    }),
                    Err(e) => skipped.push(SkippedTracker {
                        reason: format!("not a valid URL: {e}"),
                        url: text,
                    }),
                }
            }
            if !urls.is_empty() {
                urls.shuffle(rng);
                out.push(urls);
            }
        }
        TrackerTiers {
            tiers: out,
            skipped,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    pub fn skipped(&self) -> &[SkippedTracker] {
        &self.skipped
    }

    pub fn tiers(&self) -> &[Vec<Url>] {
        &self.tiers
    }

    /// Every tracker in the order one announce attempt should try them.
    pub fn attempt_order(&self) -> Vec<(TrackerPos, Url)> {
        let mut out = Vec::new();
        for (tier, urls) in self.tiers.iter().enumerate() {
            for (index, url) in urls.iter().enumerate() {
                out.push((TrackerPos { tier, index }, url.clone()));
            }
        }
        out
    }

    /// Moves the tracker at `pos` to the front of its tier, keeping the others' order.
    /// An out-of-range position is ignored.
    pub fn promote(&mut self, pos: TrackerPos) {
        if let Some(head) = self
            .tiers
            .get_mut(pos.tier)
            .and_then(|urls| urls.get_mut(..=pos.index))
        {
            head.rotate_right(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn names(t: &TrackerTiers) -> Vec<Vec<String>> {
        t.tiers()
            .iter()
            .map(|tier| {
                tier.iter()
                    .map(|u| u.host_str().unwrap_or("").to_owned())
                    .collect()
            })
            .collect()
    }

    fn input() -> Vec<Vec<String>> {
        vec![
            (0..6).map(|i| format!("http://a{i}/announce")).collect(),
            vec!["udp://u/announce".into(), "not a url".into()],
            vec!["https://b0/announce".into()],
        ]
    }

    #[test]
    fn shuffles_within_tiers_reproducibly_and_skips_unusable() {
        let t1 = TrackerTiers::new(input(), &mut StdRng::seed_from_u64(7));
        let t2 = TrackerTiers::new(input(), &mut StdRng::seed_from_u64(7));
        assert_eq!(t1, t2, "same seed, same order");
        assert_eq!(t1.tiers().len(), 2, "the all-unusable tier is dropped");
        assert_eq!(t1.skipped().len(), 2);
        let mut first = names(&t1)[0].clone();
        first.sort();
        let expected: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
        assert_eq!(first, expected, "a tier keeps its own members");
        // Some seed among a few must change the order, or shuffling does nothing.
        let shuffled = (0..8).any(|s| {
            names(&TrackerTiers::new(input(), &mut StdRng::seed_from_u64(s)))[0] != expected
        });
        assert!(shuffled);
        let order = t1.attempt_order();
        assert_eq!(order.len(), 7);
        assert_eq!(order[6].0, TrackerPos { tier: 1, index: 0 });
        assert_eq!(order[6].1.host_str(), Some("b0"));
    }

    #[test]
    fn promote_moves_to_front_and_keeps_the_rest() {
        let mut t = TrackerTiers::new(input(), &mut StdRng::seed_from_u64(1));
        let before = names(&t)[0].clone();
        t.promote(TrackerPos { tier: 0, index: 3 });
        let after = names(&t)[0].clone();
        let mut expected = vec![before[3].clone()];
        expected.extend(
            before
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .map(|(_, n)| n.clone()),
        );
        assert_eq!(after, expected);
        t.promote(TrackerPos { tier: 9, index: 0 });
        t.promote(TrackerPos { tier: 0, index: 99 });
        assert_eq!(
            names(&t)[0],
            expected,
            "out-of-range promotions are ignored"
        );
    }
}
