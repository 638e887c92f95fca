//! What viewers give partial peers in the fluid model: the pieces of a viewer's movie that it
//! already holds (the movie's start, in play order) and a partial peer lacks. A partial peer
//! lacks pieces all over the movie, so a viewer helps it long before the viewer is complete.

use super::{Member, Progress, State, viewer_held};

/// The viewers' movie orders, one per distinct order (a class's viewers share one).
pub(super) struct Orders {
    orders: Vec<Vec<u32>>,
    /// Per member: the order it plays, for viewers.
    of: Vec<Option<usize>>,
}

impl Orders {
    pub(super) fn new(members: &[Member]) -> Self {
        let mut orders: Vec<Vec<u32>> = Vec::new();
        let of = members
            .iter()
            .map(|m| {
                let Progress::Viewer { movie, .. } = &m.progress else {
                    return None;
                };
                let pieces: Vec<u32> = movie.iter().map(|&(p, _)| p).collect();
                Some(match orders.iter().position(|o| *o == pieces) {
                    Some(g) => g,
                    None => {
                        orders.push(pieces);
                        orders.len() - 1
                    }
                })
            })
            .collect();
        Self { orders, of }
    }

    /// A partial peer's start: it lacks the pieces of its drawn order.
    pub(super) fn lacks(&self, missing: &[u32], piece_count: u32) -> Lacks {
        let mut lacks = vec![false; piece_count as usize];
        for &p in missing {
            if let Some(l) = lacks.get_mut(p as usize) {
                *l = true;
            }
        }
        let mut out = Lacks {
            order: missing.to_vec(),
            lacks,
            next: 0,
            first_lacking: vec![0; self.orders.len()],
            bytes: 0.0,
        };
        out.skip_held(self);
        out
    }
}

/// A partial peer's holdings: the drawn order of the pieces it missed, which it lacks, where
/// its drawn order goes on, per movie order the first piece it lacks, and bytes from viewers
/// toward the next piece.
#[derive(Clone, Debug, Default)]
pub(super) struct Lacks {
    order: Vec<u32>,
    lacks: Vec<bool>,
    next: usize,
    first_lacking: Vec<usize>,
    bytes: f64,
}

impl Lacks {
    fn has(&self, piece: u32) -> bool {
        !self.lacks.get(piece as usize).copied().unwrap_or(false)
    }

    /// Moves each order's first lacking position past the pieces it now holds.
    pub(super) fn skip_held(&mut self, orders: &Orders) {
        for (g, order) in orders.orders.iter().enumerate() {
            let mut at = self.first_lacking[g];
            while order.get(at).is_some_and(|&p| self.has(p)) {
                at += 1;
            }
            self.first_lacking[g] = at;
        }
    }

    /// It holds the piece now.
    fn take(&mut self, piece: u32) {
        if let Some(l) = self.lacks.get_mut(piece as usize) {
            *l = false;
        }
    }

    /// How many pieces it wants in all (it held the others when its life began).
    pub(super) fn wanted(&self) -> usize {
        self.order.len()
    }

    /// The next piece of its drawn order it lacks.
    pub(super) fn next_drawn(&mut self) -> Option<u32> {
        while let Some(&p) = self.order.get(self.next) {
            if !self.has(p) {
                return Some(p);
            }
            self.next += 1;
        }
        None
    }

    /// Marks the next drawn piece as held (`skip_held` moves the orders' positions on).
    pub(super) fn took_drawn(&mut self, piece: u32) {
        self.take(piece);
        self.next += 1;
    }
}

/// Per movie order, in one step: how far the online viewers hold it (sorted) with the summed
/// shares of those holding at least that far, and where the downloading partial peers' first
/// lacking piece is (sorted).
pub(super) struct Reach {
    per_order: Vec<OrderReach>,
}

#[derive(Default)]
struct OrderReach {
    /// Online viewers: pieces of the order held, with the member.
    viewers: Vec<(usize, usize)>,
    /// `share_from[k]`: the summed shares of `viewers[k..]`.
    share_from: Vec<f64>,
    /// Downloading partial peers' first lacking positions.
    lacking: Vec<usize>,
}

impl OrderReach {
    /// How far the furthest online viewer holds the order.
    fn furthest(&self) -> usize {
        self.viewers.last().map_or(0, |v| v.0)
    }
}

impl Reach {
    pub(super) fn new(
        members: &[Member],
        states: &[State],
        online: &[bool],
        downloading: &[bool],
        orders: &Orders,
    ) -> Self {
        let mut per_order: Vec<OrderReach> = (0..orders.orders.len())
            .map(|_| OrderReach::default())
            .collect();
        for (i, m) in members.iter().enumerate().filter(|(i, _)| online[*i]) {
            if let Some(g) = orders.of[i] {
                let held = viewer_held(m, &states[i]).min(orders.orders[g].len());
                per_order[g].viewers.push((held, i));
            } else if downloading[i]
                && let Some(l) = &states[i].lacks
            {
                for (g, o) in per_order.iter_mut().enumerate() {
                    o.lacking.push(l.first_lacking[g]);
                }
            }
        }
        for o in &mut per_order {
            o.viewers.sort_unstable();
            o.lacking.sort_unstable();
        }
        Self { per_order }
    }

    /// Sums the viewers' shares of this step (call again when they change).
    pub(super) fn with_shares(&mut self, shares: &[f64]) {
        for o in &mut self.per_order {
            o.share_from = vec![0.0; o.viewers.len() + 1];
            for k in (0..o.viewers.len()).rev() {
                o.share_from[k] = o.share_from[k + 1] + shares[o.viewers[k].1];
            }
        }
    }

    /// How many downloading partial peers viewer `v` (playing order `g`) can help.
    pub(super) fn partials_helped(&self, orders: &Orders, v: usize, held: usize) -> usize {
        orders.of[v].map_or(0, |g| {
            let held = held.min(orders.orders[g].len());
            self.per_order[g].lacking.partition_point(|&f| f < held)
        })
    }

    /// The summed shares of the viewers that hold a piece this partial peer lacks.
    pub(super) fn offered_to(&self, lacks: &Lacks) -> f64 {
        self.per_order
            .iter()
            .enumerate()
            .map(|(g, o)| {
                let first = o.viewers.partition_point(|v| v.0 <= lacks.first_lacking[g]);
                o.share_from[first]
            })
            .sum()
    }
}

/// A partial peer spends `bytes` received from viewers on the pieces they hold that it lacks,
/// in play order; returns the pieces it gained.
pub(super) fn fill_from_viewers(
    piece_len: impl Fn(u32) -> f64,
    orders: &Orders,
    reach: &Reach,
    lacks: &mut Lacks,
    bytes: f64,
) -> Vec<u32> {
    let mut gained = Vec::new();
    lacks.bytes += bytes;
    for (g, o) in reach.per_order.iter().enumerate() {
        let order = &orders.orders[g];
        let mut at = lacks.first_lacking[g];
        while at < o.furthest() {
            let p = order[at];
            if lacks.has(p) {
                at += 1;
                continue;
            }
            let len = piece_len(p);
            if lacks.bytes < len {
                break;
            }
            lacks.bytes -= len;
            lacks.take(p);
            gained.push(p);
            at += 1;
        }
    }
    lacks.skip_held(orders);
    // Nothing left to take from the viewers: what they offered was not needed.
    if reach
        .per_order
        .iter()
        .enumerate()
        .all(|(g, o)| lacks.first_lacking[g] >= o.furthest())
    {
        lacks.bytes = 0.0;
    }
    gained
}
