//! What a job has to tell the master, kept so that it outlives the session
//! it started in. A job's output goes into its outbox and from there up the
//! current session; when the session is lost (the master died, or another
//! took over the grid) the job keeps running and its outbox keeps what it
//! writes. The node names its held jobs when it registers again, and the
//! master says, for each one it takes back, how much of its output it has
//! recorded: the outbox sends the rest, then the job's end. Each byte the
//! master records, it records once.
//!
//! An outbox keeps at most [`KEEP`] bytes already sent (for a master that
//! recorded less than it was sent) and at most [`KEEP`] not yet sent (the
//! guest waits beyond that). A job whose end went up is held a little
//! longer, in [`Delivered`], in case its master died before recording it.

use crate::output::Chunk;
use grid_core::OutputStream;
use grid_proto as pb;
use pb::node_message::Msg as Up;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// Output bytes an outbox keeps after sending them, and the most it holds
/// unsent.
pub(crate) const KEEP: usize = 4 << 20;
/// Output is sent in messages of at most this size.
const MAX_MESSAGE: usize = 256 << 10;
/// How long a job runs on with no master taking it back before it is
/// stopped.
pub(crate) const REATTACH_WITHIN: Duration = Duration::from_secs(60);
/// How long a job's end is held after it went up, and how many ends.
const DELIVERED_FOR: Duration = Duration::from_secs(15);
const DELIVERED_MAX: usize = 1024;
/// How long a notice waits for room in a session's stream before it is
/// dropped (a master that reads nothing loses the node soon anyway).
const NOTICE_WITHIN: Duration = Duration::from_secs(5);

/// A session's stream up to the master.
pub(crate) type Uplink = mpsc::Sender<pb::NodeMessage>;

/// One job's messages to the master.
pub(crate) struct Outbox {
    job_id: String,
    state: Mutex<State>,
    /// Wakes the job's sender: output came, the end came, or a session
    /// took the job back.
    moved: Notify,
    /// Whether the node compiles the job's module now.
    compiling: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    /// Output kept, oldest first: each chunk with the offset of its first
    /// byte in the job's output.
    chunks: VecDeque<(u64, OutputStream, Vec<u8>)>,
    /// Bytes written so far.
    end: u64,
    /// Bytes handed to `uplink`.
    sent: u64,
    /// The session that takes the job's messages now.
    uplink: Option<Uplink>,
    /// Bumped each time the job changes sessions, so that a send to an old
    /// one does not count for the new.
    session: u64,
    /// The job's end (finished or handed back), once known.
    last: Option<pb::NodeMessage>,
    last_sent: bool,
    /// No master takes it: nothing more is sent.
    abandoned: bool,
    /// Since when no session takes its messages.
    detached_at: Option<Instant>,
}

/// What a sender does next.
enum Next {
    Send {
        to: Uplink,
        msg: Box<pb::NodeMessage>,
        upto: u64,
        session: u64,
        last: bool,
    },
    /// Nothing to send until something moves.
    Wait,
    /// Everything went up (or nothing will).
    Done,
}

impl Outbox {
    /// The outbox of job `job_id`, sending to `uplink`.
    pub(crate) fn new(job_id: &str, uplink: Uplink) -> Arc<Self> {
        let state = State { uplink: Some(uplink), ..State::default() };
        Arc::new(Self {
            job_id: job_id.to_owned(),
            state: Mutex::new(state),
            moved: Notify::new(),
            compiling: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's id.
    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Output bytes written so far.
    pub(crate) fn output_bytes(&self) -> u64 {
        self.lock().end
    }

    /// Keeps a chunk of output.
    fn push(&self, stream: OutputStream, data: &[u8]) {
        let mut s = self.lock();
        if s.abandoned {
            return;
        }
        let at = s.end;
        s.end += data.len() as u64;
        match s.chunks.back_mut() {
            Some((_, last, bytes)) if *last == stream && bytes.len() + data.len() <= MAX_MESSAGE => {
                bytes.extend_from_slice(data)
            }
            _ => s.chunks.push_back((at, stream, data.to_vec())),
        }
        // What went up long ago is dropped.
        while let Some((at, _, bytes)) = s.chunks.front() {
            let kept = s.end - at;
            if at + bytes.len() as u64 <= s.sent && kept > KEEP as u64 {
                s.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whether the guest may write more: not too much waits unsent.
    fn has_room(&self) -> bool {
        let s = self.lock();
        s.end - s.sent < KEEP as u64 || s.abandoned
    }

    /// The job ended with `msg` (its result, or its hand-back): sent once
    /// its output has gone up.
    pub(crate) fn finish(&self, msg: pb::NodeMessage) {
        self.lock().last = Some(msg);
        self.moved.notify_one();
    }

    /// Tells the master of the session that holds the job that the node
    /// compiles its module. A master that takes the job back later is told
    /// again ([`Outbox::resay_compiling`]).
    pub(crate) async fn say_compiling(&self) {
        self.compiling.store(true, std::sync::atomic::Ordering::Relaxed);
        self.tell(self.compiling_notice(false)).await;
    }

    /// Tells the master that the module it was told compiles has compiled;
    /// nothing if it was told no such thing.
    pub(crate) async fn say_compiled(&self) {
        if self.compiling.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.tell(self.compiling_notice(true)).await;
        }
    }

    /// Tells a master that took the job back that its module still
    /// compiles, if it does.
    pub(crate) async fn resay_compiling(&self) {
        if self.compiling.load(std::sync::atomic::Ordering::Relaxed) {
            self.tell(self.compiling_notice(false)).await;
        }
    }

    fn compiling_notice(&self, done: bool) -> pb::NodeMessage {
        let notice = pb::JobCompiling { job_id: self.job_id.clone(), done };
        pb::NodeMessage { msg: Some(Up::Compiling(notice)) }
    }

    /// Sends a notice up the session that holds the job, ahead of any
    /// output still to go, waiting at most [`NOTICE_WITHIN`] for room;
    /// nothing if no session holds it.
    async fn tell(&self, msg: pb::NodeMessage) {
        let uplink = {
            let s = self.lock();
            s.uplink.clone().filter(|_| !s.abandoned)
        };
        if let Some(uplink) = uplink {
            let _ = tokio::time::timeout(NOTICE_WITHIN, uplink.send(msg)).await;
        }
    }

    /// The session is lost: the job's messages wait for another.
    pub(crate) fn detach(&self) {
        let mut s = self.lock();
        s.uplink = None;
        s.session += 1;
        s.detached_at.get_or_insert_with(Instant::now);
    }

    /// A master took the job back on `uplink`, having recorded `from` bytes
    /// of its output. Returns whether the outbox still has them all from
    /// there (if not, the job cannot go on there).
    pub(crate) fn resume(&self, uplink: Uplink, from: u64) -> bool {
        let mut s = self.lock();
        let first = s.chunks.front().map_or(s.end, |c| c.0);
        if from < first || from > s.end || s.abandoned {
            return false;
        }
        s.sent = from;
        s.uplink = Some(uplink);
        s.session += 1;
        s.last_sent = false;
        s.detached_at = None;
        drop(s);
        self.moved.notify_one();
        true
    }

    /// No master takes the job: nothing more is sent, and the guest is not
    /// held up by its output.
    pub(crate) fn abandon(&self) {
        let mut s = self.lock();
        s.abandoned = true;
        s.uplink = None;
        s.chunks.clear();
        drop(s);
        self.moved.notify_one();
    }

    /// Whether no master takes the job any more.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// How long no session has taken its messages.
    pub(crate) fn detached_for(&self, now: Instant) -> Option<Duration> {
        self.lock().detached_at.map(|at| now.saturating_duration_since(at))
    }

    /// Whether its end went up (and it was not abandoned since).
    fn delivered(&self) -> bool {
        let s = self.lock();
        s.last_sent && !s.abandoned
    }

    /// What to send next; the end only once the guest has written all
    /// (`written`) and all of it went up.
    fn next(&self, written: bool) -> Next {
        let mut s = self.lock();
        if s.abandoned {
            return Next::Done;
        }
        let Some(to) = s.uplink.clone() else { return Next::Wait };
        if s.sent < s.end {
            let at = s.chunks.partition_point(|c| c.0 + c.2.len() as u64 <= s.sent);
            let (start, stream, bytes) = &s.chunks[at];
            let skip = (s.sent - start) as usize;
            let mut data = bytes[skip..].to_vec();
            let stream = *stream;
            // Later chunks of the same stream ride along.
            for (_, next, more) in s.chunks.range(at + 1..) {
                if *next != stream || data.len() + more.len() > MAX_MESSAGE {
                    break;
                }
                data.extend_from_slice(more);
            }
            let upto = s.sent + data.len() as u64;
            let stream = pb::OutputStream::from(stream) as i32;
            let msg =
                pb::NodeMessage { msg: Some(Up::Output(pb::JobOutput { job_id: self.job_id.clone(), stream, data })) };
            return Next::Send { to, msg: Box::new(msg), upto, session: s.session, last: false };
        }
        match (&s.last, s.last_sent) {
            _ if !written => Next::Wait,
            (Some(msg), false) => {
                let msg = Box::new(msg.clone());
                Next::Send { to, msg, upto: s.end, session: s.session, last: true }
            }
            (Some(_), true) => {
                // Its end went up: the session need not stay open for it.
                s.uplink = None;
                Next::Done
            }
            (None, _) => Next::Wait,
        }
    }

    /// A send to session `session` went through (up to byte `upto`, or the
    /// end with `last`), or failed.
    fn sent(&self, session: u64, upto: u64, last: bool, ok: bool) {
        let mut s = self.lock();
        if s.session != session {
            return;
        }
        if !ok {
            s.uplink = None;
            s.detached_at.get_or_insert_with(Instant::now);
            return;
        }
        s.sent = upto;
        s.last_sent |= last;
    }
}

/// Sends job `outbox`'s messages up whichever session takes them, reading
/// its output from `guest` as it comes (and not faster than it goes up),
/// until its end has gone up or no master takes it.
pub(crate) async fn pump(outbox: Arc<Outbox>, mut guest: Option<mpsc::Receiver<Chunk>>) {
    loop {
        match outbox.next(guest.is_none()) {
            Next::Send { to, msg, upto, session, last } => {
                let ok = to.send(*msg).await.is_ok();
                outbox.sent(session, upto, last, ok);
                continue;
            }
            Next::Done if guest.is_none() => return,
            Next::Done | Next::Wait => {}
        }
        let room = outbox.has_room();
        tokio::select! {
            chunk = async { guest.as_mut().expect("guarded").recv().await }, if guest.is_some() && room => match chunk {
                Some(c) => {
                    outbox.push(c.stream, &c.data);
                    // What else is waiting goes in with it.
                    while let Some(rx) = guest.as_mut() {
                        match rx.try_recv() {
                            Ok(c) => outbox.push(c.stream, &c.data),
                            Err(_) => break,
                        }
                    }
                }
                None => guest = None,
            },
            () = outbox.moved.notified() => {}
        }
    }
}

/// Jobs whose end went up lately: held, briefly, for a master that took
/// over before recording it.
#[derive(Default)]
pub(crate) struct Delivered {
    recent: Mutex<VecDeque<(Instant, Arc<Outbox>)>>,
}

impl Delivered {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(Instant, Arc<Outbox>)>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `outbox`, whose end went up now.
    pub(crate) fn hold(&self, outbox: Arc<Outbox>) {
        let now = Instant::now();
        let mut recent = self.lock();
        while recent.len() >= DELIVERED_MAX || recent.front().is_some_and(|(at, _)| now - *at > DELIVERED_FOR) {
            recent.pop_front();
        }
        recent.push_back((now, outbox));
    }

    /// Every job held (still held after: see [`forget`](Self::forget)).
    pub(crate) fn list(&self) -> Vec<Arc<Outbox>> {
        let now = Instant::now();
        let mut recent = self.lock();
        recent.retain(|(at, _)| now - *at <= DELIVERED_FOR);
        recent.iter().map(|(_, o)| o.clone()).collect()
    }

    /// No longer holds `outbox`: a master took it back, or will not.
    pub(crate) fn forget(&self, outbox: &Arc<Outbox>) {
        self.lock().retain(|(_, o)| !Arc::ptr_eq(o, outbox));
    }
}

/// Sends `outbox`'s messages (see [`pump`]); once its end has gone up, holds
/// it in `delivered`.
pub(crate) async fn deliver(outbox: Arc<Outbox>, guest: Option<mpsc::Receiver<Chunk>>, delivered: &Delivered) {
    pump(outbox.clone(), guest).await;
    if outbox.delivered() {
        delivered.hold(outbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(msg: &pb::NodeMessage) -> String {
        match &msg.msg {
            Some(Up::Output(o)) => String::from_utf8(o.data.clone()).unwrap(),
            Some(Up::Finished(_)) => "<end>".into(),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn drain(rx: &mut mpsc::Receiver<pb::NodeMessage>) -> String {
        let mut all = String::new();
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            all += &text(&msg);
        }
        all
    }

    fn end() -> pb::NodeMessage {
        pb::NodeMessage { msg: Some(Up::Finished(pb::JobFinished { job_id: "j".into(), result: None })) }
    }

    #[tokio::test]
    async fn a_job_taken_back_by_another_session_sends_what_it_did_not_record_and_its_end() {
        let (first, mut first_rx) = mpsc::channel(16);
        let outbox = Outbox::new("j", first);
        let (guest, guest_rx) = mpsc::channel(16);
        let pumping = tokio::spawn(pump(outbox.clone(), Some(guest_rx)));
        guest.send(Chunk { stream: OutputStream::Stdout, data: Bytes::from_static(b"hello ") }).await.unwrap();
        assert_eq!(drain(&mut first_rx).await, "hello ");
        // The session is lost; the job writes on and ends.
        drop(first_rx);
        outbox.detach();
        guest.send(Chunk { stream: OutputStream::Stdout, data: Bytes::from_static(b"world") }).await.unwrap();
        drop(guest);
        outbox.finish(end());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pumping.is_finished(), "the job's end went nowhere");
        // The next master recorded 3 bytes of it.
        let (second, mut second_rx) = mpsc::channel(16);
        assert_eq!(outbox.output_bytes(), 11);
        assert!(outbox.resume(second, 3));
        assert_eq!(drain(&mut second_rx).await, "lo world<end>");
        tokio::time::timeout(Duration::from_secs(30), pumping).await.unwrap().unwrap();
        // A master that claims more than there is takes nothing back.
        let (third, _third_rx) = mpsc::channel(16);
        assert!(!outbox.resume(third, 12));
    }

    #[tokio::test]
    async fn output_long_sent_is_not_kept_and_cannot_be_resumed() {
        let (up, mut rx) = mpsc::channel(1024);
        let outbox = Outbox::new("j", up);
        let (guest, guest_rx) = mpsc::channel(16);
        let pumping = tokio::spawn(pump(outbox.clone(), Some(guest_rx)));
        let chunk = vec![b'x'; 64 << 10];
        let reading = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        for _ in 0..(3 * KEEP / chunk.len()) {
            guest.send(Chunk { stream: OutputStream::Stdout, data: Bytes::from(chunk.clone()) }).await.unwrap();
        }
        drop(guest);
        outbox.finish(end());
        tokio::time::timeout(Duration::from_secs(30), pumping).await.unwrap().unwrap();
        let kept: usize = outbox.lock().chunks.iter().map(|c| c.2.len()).sum();
        assert!(kept <= KEEP + MAX_MESSAGE, "{kept} bytes kept");
        let (again, _rx) = mpsc::channel(16);
        assert!(!outbox.resume(again, 0), "resumed from output no longer kept");
        reading.abort();
    }
}
