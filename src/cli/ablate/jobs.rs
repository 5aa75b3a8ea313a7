//! `ember ablate --jobs N`: the shard child processes, supervised so that none outlives the
//! command.
//!
//! - When a child fails, the others are asked to stop (SIGINT: a training saves its
//!   checkpoint, a shard stops before its next cell) and killed after a grace period.
//! - The first Ctrl-C is passed on the same way (each child runs in its own process group,
//!   so the terminal's Ctrl-C reaches this process only and each child is asked once); a
//!   second Ctrl-C kills them at once.
//! - An error or panic here drops [`Children`], which kills and reaps every child.
//! - On Linux a child also gets SIGINT when this process dies, even of SIGKILL
//!   (`PR_SET_PDEATHSIG`).
//!
//! Killing a child loses nothing finished: checkpoints and cell files are written to a
//! temporary file and renamed, and a rerun resumes.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often [`supervise`] looks at the children.
const POLL: Duration = Duration::from_millis(100);

/// Running child processes; dropping this kills (SIGKILL, whole process group) and reaps
/// every one that has not exited.
#[derive(Default)]
pub struct Children {
    procs: Vec<Proc>,
}

struct Proc {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
}

/// How [`supervise`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every child exited with status 0.
    Done,
    /// Child `name` exited with `code` (1 when killed by a signal); the others were stopped.
    Failed { name: String, code: i32 },
    /// Ctrl-C: the children were stopped.
    Interrupted,
}

impl Children {
    /// Start `cmd` as a child called `name` (for messages), in its own process group;
    /// returns its process id.
    pub fn spawn(&mut self, name: impl Into<String>, mut cmd: Command) -> io::Result<u32> {
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            let on_exec = move || {
                // SAFETY: prctl, getppid and _exit are async-signal-safe, as pre_exec requires.
                unsafe {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        libc::_exit(130); // the parent died before prctl took effect
                    }
                }
                Ok(())
            };
            // SAFETY: the closure only makes async-signal-safe calls (above).
            unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, on_exec) };
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        self.procs.push(Proc { name: name.into(), child, status: None });
        Ok(pid)
    }

    /// Reap the children that exited: `(still running, the first one that failed in this call)`.
    fn poll(&mut self) -> io::Result<(usize, Option<(String, ExitStatus)>)> {
        let mut failed = None;
        for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
            p.status = p.child.try_wait()?;
            match p.status {
                Some(s) if !s.success() && failed.is_none() => failed = Some((p.name.clone(), s)),
                _ => {}
            }
        }
        Ok((self.procs.iter().filter(|p| p.status.is_none()).count(), failed))
    }

    /// Ask every running child to stop (SIGINT to its process group).
    fn interrupt(&mut self) {
        for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
            #[cfg(unix)]
            // SAFETY: plain syscall; the child is not reaped, so its pid (= group id) is still ours.
            unsafe {
                libc::kill(-(p.child.id() as libc::pid_t), libc::SIGINT);
            }
            #[cfg(not(unix))]
            let _ = p.child.kill();
        }
    }

    /// Kill (SIGKILL to the process group) and reap every child that has not exited.
    pub fn kill(&mut self) {
        for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
            #[cfg(unix)]
            // SAFETY: as in `interrupt`.
            unsafe {
                libc::kill(-(p.child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = p.child.kill();
            p.status = p.child.wait().ok();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wait for `children`, calling `tick` every [`POLL`] (progress). When one fails or
/// `ctrl_c` (a count of Ctrl-C presses) becomes 1, the running ones are interrupted and,
/// if still running after `grace` (or at a second Ctrl-C), killed. Returns once every
/// child has exited and been reaped.
pub fn supervise(children: &mut Children, ctrl_c: &AtomicUsize, grace: Duration, mut tick: impl FnMut()) -> io::Result<Ending> {
    let mut ending = Ending::Done;
    let mut deadline = None;
    loop {
        let (running, failed) = children.poll()?;
        tick();
        if deadline.is_none() {
            if let Some((name, status)) = failed {
                eprintln!("ember ablate: {name} failed ({status}); stopping the other shards (a training saves its checkpoint)");
                ending = Ending::Failed { name, code: status.code().filter(|&c| c != 0).unwrap_or(1) };
            } else if ctrl_c.load(Ordering::SeqCst) > 0 {
                eprintln!("\nCtrl-C: stopping the shards (a training saves its checkpoint; press again to kill them now)");
                ending = Ending::Interrupted;
            }
            if ending != Ending::Done && running > 0 {
                children.interrupt();
                deadline = Some(Instant::now() + grace);
            }
        }
        if running == 0 {
            return Ok(ending);
        }
        let again = ctrl_c.load(Ordering::SeqCst) >= 2;
        if again || deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!("ember ablate: killing the shards that are still running ({})", if again { "second Ctrl-C" } else { "grace period over" });
            children.kill();
            return Ok(if ending == Ending::Done { Ending::Interrupted } else { ending });
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    /// Whether process `pid` exists (a zombie counts: it has not been reaped).
    fn exists(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    fn start(scripts: &[&str]) -> (Children, Vec<u32>) {
        let mut c = Children::default();
        let pids = scripts.iter().enumerate().map(|(i, s)| c.spawn(format!("child {i}"), sh(s)).unwrap()).collect();
        (c, pids)
    }

    #[test]
    fn dropping_the_children_kills_and_reaps_them() {
        let (c, pids) = start(&["exec sleep 60", "trap '' INT; while :; do sleep 0.05; done"]);
        assert!(pids.iter().all(|&p| exists(p)));
        drop(c);
        assert!(pids.iter().all(|&p| !exists(p)), "children left running: {pids:?}");
    }

    #[test]
    fn a_failing_child_stops_its_siblings() {
        let (mut c, pids) = start(&["sleep 0.3; exit 3", "exec sleep 60"]);
        let t = Instant::now();
        let ending = supervise(&mut c, &AtomicUsize::new(0), Duration::from_secs(20), || {}).unwrap();
        assert_eq!(ending, Ending::Failed { name: "child 0".into(), code: 3 });
        assert!(t.elapsed() < Duration::from_secs(10), "the sibling was interrupted, not waited for: {:?}", t.elapsed());
        assert!(!exists(pids[1]), "sibling still running");
    }

    #[test]
    fn a_child_that_ignores_the_stop_request_is_killed_after_the_grace_period() {
        // (child 0 fails after the other has had time to set its trap)
        let (mut c, pids) = start(&["sleep 0.3; exit 4", "trap '' INT; while :; do sleep 0.05; done"]);
        let t = Instant::now();
        let ending = supervise(&mut c, &AtomicUsize::new(0), Duration::from_millis(600), || {}).unwrap();
        assert_eq!(ending, Ending::Failed { name: "child 0".into(), code: 4 });
        assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(10), "0.3 s + the grace period: {:?}", t.elapsed());
        assert!(!exists(pids[1]), "stubborn sibling still running");
    }

    #[test]
    fn ctrl_c_stops_the_children_and_a_second_kills_them() {
        // The first Ctrl-C is passed on: `sleep` dies of SIGINT, so no grace period is needed.
        let (mut c, pids) = start(&["exec sleep 60", "exec sleep 60"]);
        let t = Instant::now();
        assert_eq!(supervise(&mut c, &AtomicUsize::new(1), Duration::from_secs(20), || {}).unwrap(), Ending::Interrupted);
        assert!(t.elapsed() < Duration::from_secs(10) && pids.iter().all(|&p| !exists(p)));
        // A second Ctrl-C kills a child that ignores the first, long before the grace period.
        let (mut c, pids) = start(&["trap '' INT; while :; do sleep 0.05; done"]);
        let t = Instant::now();
        assert_eq!(supervise(&mut c, &AtomicUsize::new(2), Duration::from_secs(20), || {}).unwrap(), Ending::Interrupted);
        assert!(t.elapsed() < Duration::from_secs(10) && !exists(pids[0]));
    }

    #[test]
    fn children_that_succeed_end_done() {
        let (mut c, _) = start(&["exit 0", "sleep 0.2"]);
        let mut ticks = 0;
        assert_eq!(supervise(&mut c, &AtomicUsize::new(0), Duration::from_secs(20), || ticks += 1).unwrap(), Ending::Done);
        assert!(ticks >= 2, "progress ticks while waiting: {ticks}");
    }
}
