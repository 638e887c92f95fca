//! The capacity bound: the least penalty had every world peer given this viewer all its upload,
//! of pieces it held at the time, before their deadlines. A time-expanded max-flow.
//!
//! Between two consecutive event times (a spell's ends, a deadline) nothing changes, so cutting
//! each spell at the deadlines inside it makes the flow exact: the part of a spell before
//! deadline e can serve exactly the held pieces due at e or later. Those parts form a chain
//! per spell (capacity left over early may serve any later deadline), and each held piece is
//! joined to the one chain node at which it stops being servable, so a spell costs one edge
//! per held piece rather than one per (time slot, piece).

use super::{DuePiece, HoldingSpell, effective_deadline, movie_bytes};

const SOURCE: u32 = 0;
const SINK: u32 = 1;
/// Piece i is node `FIRST_PIECE + i`.
const FIRST_PIECE: u32 = 2;

/// The least penalty (bytes) the viewer could have paid had the spells' peers uploaded all they
/// could to it, only pieces they held, before each piece's deadline. Between 0 and the movie's
/// total bytes; see the module `bounds` for how odd inputs are read.
pub fn capacity_bound(pieces: &[DuePiece], spells: &[HoldingSpell]) -> u64 {
    let total = movie_bytes(pieces);
    if total == 0 || u32::try_from(pieces.len()).is_err() {
        return total;
    }
    let deadlines = Deadlines::new(pieces);
    let mut network = FlowNetwork::new(FIRST_PIECE as usize + pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        network.add_edge(FIRST_PIECE + i as u32, SINK, piece.bytes);
    }
    for spell in spells {
        add_spell(&mut network, &deadlines, spell, total);
    }
    total.saturating_sub(network.max_flow(SOURCE, SINK).min(total))
}

/// The movie's distinct deadlines in order (the slot edges) and each piece's place among them.
struct Deadlines {
    cuts: Vec<f64>,
    /// Per piece: its deadline and the index of that deadline in `cuts`.
    piece: Vec<(f64, usize)>,
}

impl Deadlines {
    fn new(pieces: &[DuePiece]) -> Self {
        let mut cuts: Vec<f64> = pieces.iter().map(effective_deadline).collect();
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let piece = pieces
            .iter()
            .map(|p| {
                let d = effective_deadline(p);
                (d, cuts.partition_point(|&c| c < d))
            })
            .collect();
        Self { cuts, piece }
    }
}

/// Adds one spell's chain: a node per group of held pieces that stop being servable at the
/// same deadline inside the spell (or at its end), fed by the spell's upload up to that time.
fn add_spell(network: &mut FlowNetwork, deadlines: &Deadlines, spell: &HoldingSpell, total: u64) {
    let (from, to) = (spell.from.max(0.0), spell.to);
    let refused = spell.from.is_nan() || to.is_nan() || from >= to || spell.upload.is_nan();
    if refused || spell.upload <= 0.0 {
        return;
    }
    // Deadlines strictly inside (from, to) cut the spell; `first` is the first such cut.
    let first = deadlines.cuts.partition_point(|&c| c <= from);
    let inner = deadlines
        .cuts
        .partition_point(|&c| c < to)
        .saturating_sub(first);
    // (chain position, piece): position j < inner is the slot ending at cut first + j, and
    // `inner` the last slot, ending at `to`; a piece joins the last slot it can use.
    let mut held: Vec<(usize, u32)> = spell
        .pieces
        .iter()
        .filter_map(|&p| {
            let &(deadline, rank) = deadlines.piece.get(p as usize)?;
            (deadline > from).then(|| (rank.saturating_sub(first).min(inner), p))
        })
        .collect();
    held.sort_unstable();
    held.dedup();
    // Bytes the spell can have uploaded by time `end`, rounded up (a lower bound stays one).
    let uploaded_by = |end: f64| -> u64 {
        let bytes = (spell.upload * (end - from)).ceil();
        if bytes >= total as f64 {
            total
        } else {
            bytes as u64 // NaN cannot occur: end > from and upload > 0
        }
    };
    // Slots with no piece of their own pass their upload on to the next node (every piece they
    // could serve is reachable from it), so each node is fed what was uploaded since the last.
    let mut previous: Option<(u32, u64)> = None; // (chain node, bytes uploaded by its end)
    for group in held.chunk_by(|a, b| a.0 == b.0) {
        let position = group[0].0;
        let end = deadlines
            .cuts
            .get(first + position)
            .copied()
            .filter(|_| position < inner);
        let by_end = uploaded_by(end.unwrap_or(to));
        let node = network.add_node();
        let before = previous.map_or(0, |(_, bytes)| bytes);
        network.add_edge(SOURCE, node, by_end.saturating_sub(before));
        if let Some((previous_node, _)) = previous {
            network.add_edge(previous_node, node, total);
        }
        for &(_, piece) in group {
            network.add_edge(node, FIRST_PIECE + piece, total);
        }
        previous = Some((node, by_end));
    }
}

/// A directed graph with integer capacities and Dinic's max-flow (iterative, so a long chain
/// cannot overflow the stack).
struct FlowNetwork {
    nodes: usize,
    /// Edge e and its residual twin e ^ 1: (from, to), capacity left.
    ends: Vec<(u32, u32)>,
    capacity: Vec<u64>,
}

impl FlowNetwork {
    fn new(nodes: usize) -> Self {
        Self {
            nodes,
            ends: Vec::new(),
            capacity: Vec::new(),
        }
    }

    fn add_node(&mut self) -> u32 {
        self.nodes += 1;
        (self.nodes - 1) as u32
    }

    fn add_edge(&mut self, from: u32, to: u32, capacity: u64) {
        self.ends.push((from, to));
        self.capacity.push(capacity);
        self.ends.push((to, from));
        self.capacity.push(0);
    }

    fn max_flow(&mut self, source: u32, sink: u32) -> u64 {
        let adjacency = Adjacency::new(self.nodes, &self.ends);
        let mut flow: u64 = 0;
        let mut level = vec![u32::MAX; self.nodes];
        loop {
            self.levels(&adjacency, source, &mut level);
            if level[sink as usize] == u32::MAX {
                return flow;
            }
            flow = flow.saturating_add(self.blocking_flow(&adjacency, &mut level, source, sink));
        }
    }

    /// Breadth-first distances from `source` over edges with capacity left.
    fn levels(&self, adjacency: &Adjacency, source: u32, level: &mut [u32]) {
        level.fill(u32::MAX);
        level[source as usize] = 0;
        let mut queue = std::collections::VecDeque::from([source]);
        while let Some(v) = queue.pop_front() {
            for &e in adjacency.of(v) {
                let w = self.ends[e as usize].1;
                if self.capacity[e as usize] > 0 && level[w as usize] == u32::MAX {
                    level[w as usize] = level[v as usize] + 1;
                    queue.push_back(w);
                }
            }
        }
    }

    /// Saturates every shortest path: walks forward along level-increasing edges, pushes the
    /// bottleneck at the sink, and retreats from dead ends (marking them so they are not
    /// walked again this phase).
    fn blocking_flow(&mut self, adj: &Adjacency, level: &mut [u32], source: u32, sink: u32) -> u64 {
        let mut next_edge: Vec<usize> = adj.start.clone();
        let mut path: Vec<u32> = Vec::new();
        let mut flow: u64 = 0;
        let mut v = source;
        loop {
            if v == sink {
                let push = path
                    .iter()
                    .map(|&e| self.capacity[e as usize])
                    .min()
                    .unwrap_or(0);
                for &e in &path {
                    self.capacity[e as usize] -= push;
                    self.capacity[(e ^ 1) as usize] += push;
                }
                flow = flow.saturating_add(push);
                let saturated = path.iter().position(|&e| self.capacity[e as usize] == 0);
                path.truncate(saturated.unwrap_or(0));
                v = path.last().map_or(source, |&e| self.ends[e as usize].1);
                continue;
            }
            let vi = v as usize;
            let end = adj.start[vi + 1];
            while next_edge[vi] < end {
                let e = adj.edges[next_edge[vi]];
                let w = self.ends[e as usize].1;
                if self.capacity[e as usize] > 0 && level[w as usize] == level[vi].wrapping_add(1) {
                    break;
                }
                next_edge[vi] += 1;
            }
            if next_edge[vi] < end {
                let e = adj.edges[next_edge[vi]];
                path.push(e);
                v = self.ends[e as usize].1;
            } else {
                level[vi] = u32::MAX; // a dead end for the rest of this phase
                let Some(e) = path.pop() else {
                    return flow;
                };
                v = self.ends[e as usize].0;
                next_edge[v as usize] += 1;
            }
        }
    }
}

/// Every node's edges (and residual twins) as one flat list, `start[v]..start[v + 1]`.
struct Adjacency {
    start: Vec<usize>,
    edges: Vec<u32>,
}

impl Adjacency {
    fn new(nodes: usize, ends: &[(u32, u32)]) -> Self {
        let mut start = vec![0usize; nodes + 1];
        for &(from, _) in ends {
            start[from as usize + 1] += 1;
        }
        for v in 0..nodes {
            start[v + 1] += start[v];
        }
        let mut fill = start.clone();
        let mut edges = vec![0u32; ends.len()];
        for (e, &(from, _)) in ends.iter().enumerate() {
            edges[fill[from as usize]] = e as u32;
            fill[from as usize] += 1;
        }
        Self { start, edges }
    }

    fn of(&self, v: u32) -> &[u32] {
        &self.edges[self.start[v as usize]..self.start[v as usize + 1]]
    }
}
