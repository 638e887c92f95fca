//! The life of one world peer: arrive, start with its saved pieces, trade under its limits,
//! leave and rejoin on the churn schedule, and after completing linger then reincarnate with a
//! fresh partial set. Every change is written to the peer's record in the roster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::content::{draw_pieces, write_partial};
use super::error::PrepareError;
use super::member::{LtPeer, Member};
use super::roster::{PeerState, Tracked};
use super::scenario::PeerClass;
use super::scenario::PeerClient;
use super::shared::{SeedUse, WorldShared};
use crate::engine::session::{self, Content};

/// How a session of a peer ended.
enum Turn {
    /// The world stopped.
    Stop,
    /// Its churn schedule says leave.
    Leave,
    /// It completed and reincarnates.
    Completed,
}

/// What follows an incarnation.
enum Next {
    Reincarnate,
    End,
}

/// One world peer: its class and index, and where its data lives.
struct WorldPeer {
    shared: Arc<WorldShared>,
    class_index: usize,
    i: u32,
    name: String,
    dir: PathBuf,
}

/// Runs peer `i` of class `class_index` until the world stops (or it leaves for good).
pub(crate) async fn run_peer(
    shared: Arc<WorldShared>,
    class_index: usize,
    i: u32,
    mut tracked: Tracked,
    cancel: CancellationToken,
) {
    let class = &shared.scenario.peers[class_index];
    let name = format!("{}-{i}", class.name);
    let arrive = shared.started + class.arrival.of(i, class.count);
    if !tracked.wait_arrival(arrive, &cancel).await {
        return;
    }
    let dir = shared.run_dir.join("peers").join(&name);
    let peer = WorldPeer {
        shared: Arc::clone(&shared),
        class_index,
        i,
        name,
        dir,
    };
    let mut incarnation = 0u32;
    loop {
        let content = match peer.prepare(incarnation).await {
            Ok(c) => c,
            Err(e) => {
                peer.event(&format!("cannot prepare its data: {e}"));
                tracked.fail(e.to_string());
                return;
            }
        };
        tracked.update(|r| r.incarnation = incarnation);
        match peer
            .live(&content, incarnation, &mut tracked, &cancel)
            .await
        {
            Next::End => return,
            Next::Reincarnate => {
                incarnation += 1;
                peer.event("reincarnates with a fresh partial set");
            }
        }
    }
}

impl WorldPeer {
    fn class(&self) -> &PeerClass {
        &self.shared.scenario.peers[self.class_index]
    }

    fn event(&self, what: &str) {
        self.shared.event(&format!("{}: {what}", self.name));
    }

    /// One incarnation: online and offline spells on the same data.
    async fn live(
        &self,
        content: &Content,
        incarnation: u32,
        tracked: &mut Tracked,
        cancel: &CancellationToken,
    ) -> Next {
        let seed = self.shared.seed(
            SeedUse::PeerSession,
            self.class_index,
            self.i,
            &[u64::from(incarnation)],
        );
        loop {
            let Some(session) = self.go_online(content, seed, incarnation, tracked).await else {
                return Next::End;
            };
            match watch(&session, tracked, self.class(), cancel).await {
                Turn::Stop => {
                    self.go_offline(session, tracked).await;
                    tracked.set_state(PeerState::Stopped);
                    return Next::End;
                }
                Turn::Completed => {
                    tracked.update(|r| {
                        r.completions += 1;
                        r.state = PeerState::Lingering;
                    });
                    self.event("complete; seeding before it reincarnates");
                    let go_on = tracked
                        .linger(&session, self.class().reincarnate, cancel)
                        .await;
                    self.go_offline(session, tracked).await;
                    if !go_on {
                        tracked.set_state(PeerState::Stopped);
                        return Next::End;
                    }
                    return Next::Reincarnate;
                }
                Turn::Leave => {
                    self.go_offline(session, tracked).await;
                    if !self.stay_away(tracked, cancel).await {
                        return Next::End;
                    }
                }
            }
        }
    }

    /// Starts the class's client on the peer's data; `None` (and the record failed) if it
    /// cannot. In a world with latency its relay is up before the client first announces, so
    /// the tracker never has to leave it out.
    async fn go_online(
        &self,
        content: &Content,
        seed: u64,
        incarnation: u32,
        tracked: &Tracked,
    ) -> Option<Member> {
        let port = match self.shared.links {
            Some(_) => match free_loopback_port() {
                Ok(port) => port,
                Err(e) => {
                    tracked.fail(format!("no free port on 127.0.0.1: {e}"));
                    return None;
                }
            },
            None => 0,
        };
        let planned = SocketAddr::from(([127, 0, 0, 1], port));
        if port != 0 {
            self.shared
                .link_peer(planned, self.class_index, self.i)
                .await;
        }
        let member = match self.start_client(content, seed, port).await {
            Ok(m) => m,
            Err(e) => {
                self.shared.unlink(Some(planned)).await;
                self.event(&format!("cannot start: {e}"));
                tracked.fail(e);
                return None;
            }
        };
        let s0 = member.stats();
        let listen = member.listen_addr();
        tracked.update(|r| {
            r.state = PeerState::Online;
            r.listen = listen;
            r.pieces_at_start = s0.pieces_have;
        });
        self.event(&format!(
            "online at {} with {}/{} pieces (incarnation {incarnation}, {})",
            listen.map(|a| a.to_string()).unwrap_or_default(),
            s0.pieces_have,
            s0.piece_count,
            self.class().client.name()
        ));
        Some(member)
    }

    async fn start_client(
        &self,
        content: &Content,
        seed: u64,
        port: u16,
    ) -> Result<Member, String> {
        let shared = &self.shared;
        let class = self.class();
        match class.client {
            PeerClient::Btvod => {
                let mut options = shared.session_options(class.limits, seed);
                options.listen.set_port(port);
                session::start(&shared.meta, content.clone(), options, |_, _| {})
                    .await
                    .map(Member::Btvod)
                    .map_err(|e| e.to_string())
            }
            PeerClient::Libtorrent => {
                let save_path = match content {
                    Content::SaveAs(path) | Content::Existing(path) => {
                        path.parent().unwrap_or(&self.dir).to_path_buf()
                    }
                    Content::DownloadDir(dir) => dir.clone(),
                };
                let pieces = shared.meta.geometry.piece_count();
                let peer = LtPeer::start(
                    &shared.lt,
                    &shared.torrent_path,
                    &save_path,
                    class.limits,
                    pieces,
                    SocketAddr::new(shared.bind, port),
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok(Member::Libtorrent(peer))
            }
        }
    }

    /// Takes the peer's link down, then its client, keeping its totals.
    async fn go_offline(&self, member: Member, tracked: &mut Tracked) {
        self.shared.unlink(member.listen_addr()).await;
        tracked.close(member).await;
    }

    /// Offline after leaving: waits out `rejoin_after`; false if the peer is gone for good or
    /// the world stopped meanwhile.
    async fn stay_away(&self, tracked: &Tracked, cancel: &CancellationToken) -> bool {
        tracked.update(|r| {
            r.state = PeerState::Offline;
            r.listen = None;
        });
        let Some(back) = self.class().rejoin_after else {
            self.event("left for good");
            tracked.set_state(PeerState::Gone);
            return false;
        };
        self.event(&format!("left; rejoins in {:.0} s", back.as_secs_f64()));
        let rejoined = tokio::select! {
            _ = cancel.cancelled() => false,
            _ = sleep(back) => true,
        };
        if !rejoined {
            tracked.set_state(PeerState::Stopped);
        }
        rejoined
    }

    /// The content an incarnation starts from: the shared complete copy for a seed, else a
    /// fresh partial copy in the peer's own directory.
    async fn prepare(&self, incarnation: u32) -> Result<Content, PrepareError> {
        let class = self.class();
        let shared = &self.shared;
        if class.is_seed_class() {
            return Ok(Content::Existing(shared.content_path.clone()));
        }
        let draw_seed = shared.seed(
            SeedUse::PartialDraw,
            self.class_index,
            self.i,
            &[u64::from(incarnation)],
        );
        let pieces = draw_pieces(
            class.draw,
            class.fraction_for(self.i),
            shared.meta.geometry.piece_count(),
            self.i,
            class.count,
            draw_seed,
        );
        let target = self.dir.join(&shared.meta.name);
        let job = {
            let shared = Arc::clone(shared);
            let target = target.clone();
            move || write_partial(&shared.meta, &shared.content_path, &target, &pieces)
        };
        tokio::task::spawn_blocking(job)
            .await?
            .map_err(|source| PrepareError::Write {
                path: target.clone(),
                source,
            })?;
        Ok(Content::SaveAs(target))
    }
}

/// A port on 127.0.0.1 free right now (the client binds it a moment later).
fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Waits for the session's next turn: the world stopping, the peer's time to leave, or (for a
/// peer that reincarnates) the last piece, updating the record as stats change.
async fn watch(
    member: &Member,
    tracked: &Tracked,
    class: &PeerClass,
    cancel: &CancellationToken,
) -> Turn {
    let leave_at = class.leave_after.map(|d| Instant::now() + d);
    let mut stats = member.watch();
    let was_complete = stats.now().complete;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let s = stats.now();
        tracked.show(&s);
        if class.reincarnate.is_some() && s.complete && !was_complete {
            return Turn::Completed;
        }
        let leave = async {
            match leave_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Turn::Stop,
            _ = leave => return Turn::Leave,
            _ = stats.changed() => {}
            _ = tick.tick() => {}
        }
    }
}
