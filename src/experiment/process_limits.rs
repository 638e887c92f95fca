//! What one process may run of a world: a member count, and the open-files limit it needs.

/// Most world peers and viewers one process runs: each holds up to `max_peers` connections,
/// and on loopback both ends of a connection are this process's descriptors.
pub const MAX_MEMBERS_PER_PROCESS: usize = 2000;
/// Descriptors a member needs at most with the engine's default 50 connections and their
/// turnover slack of 10.
const FDS_PER_MEMBER: u64 = 64;

/// The connections each of `members` may keep so that the world fits this process's
/// open-files limit (raised first, as far as allowed): `default` when it fits, else fewer,
/// never under 8.
pub(crate) fn connections_per_member(members: usize, default: usize) -> usize {
    let members = members.max(1) as u64;
    let limit = raise_open_files_limit(members * FDS_PER_MEMBER + 512);
    // Each member: its connections (on loopback the other end is another member's), its
    // listener and a few files.
    let fit = limit.saturating_sub(512) / members;
    // A member may hold its cap plus the turnover slack (a fifth more) for a while.
    let cap = fit.saturating_sub(4) * 5 / 6;
    (cap as usize).clamp(8, default.max(8))
}

/// Raises this process's open-files limit to `wanted` where it is lower (the hard limit too
/// when the process may); returns the limit now in force.
fn raise_open_files_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur >= wanted {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max.max(wanted),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return wanted;
        }
        let capped = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &capped) == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_world_keeps_the_default_and_a_huge_one_is_cut_to_fit() {
        assert_eq!(connections_per_member(10, 50), 50);
        let many = connections_per_member(1_000_000, 50);
        assert_eq!(many, 8, "never under 8");
    }
}
