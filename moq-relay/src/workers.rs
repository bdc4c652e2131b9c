//! The relay's threads: one single-threaded tokio runtime per worker, each with its own
//! endpoint on the relay's port (`Endpoint::bind_group`) and the connections that endpoint
//! accepts.
//!
//! quinn spawns an endpoint's driver, and a connection's driver, on the runtime that binds
//! or accepts them, and everything a session spawns stays on the runtime it runs on. So a
//! connection's datagrams, its driver, its session's tasks and its timers share one thread:
//! a task woken by another task of the same thread is simply run next. Only what crosses
//! connections on different workers (a track's frames read by subscribers elsewhere) wakes
//! another thread. tokio's multi-threaded scheduler instead wakes a parked worker to steal
//! nearly every task that becomes ready, which cost the relay a futex call and a context
//! switch or more per frame and subscriber (docs/performance.md, "Multi-core").
//!
//! The price is no stealing: a worker whose connections are busier than the others' cannot
//! hand them over. The kernel spreads new connections over the workers' sockets evenly.

use std::future::Future;
use std::num::NonZeroUsize;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The relay's workers. The runtime that starts them (the main thread's) is the first; the
/// others run on threads of their own until [`Workers::stop`].
pub(crate) struct Workers {
    /// Each worker's runtime.
    runtimes: Vec<Handle>,
    /// The extra threads: a signal that ends each one's runtime, and the thread.
    threads: Vec<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Workers {
    /// Starts `count - 1` threads beside the current runtime, which must be single-threaded
    /// for the count to hold.
    ///
    /// # Errors
    /// When a runtime or a thread cannot be created.
    pub(crate) fn start(count: NonZeroUsize) -> std::io::Result<Self> {
        let mut runtimes = vec![Handle::current()];
        let mut threads = Vec::new();
        for index in 1..count.get() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtimes.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("moq-relay-worker-{index}"))
                .spawn(move || {
                    // Either the signal or its sender dropped: the runtime ends here, and the
                    // tasks it still holds are dropped with it.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push((stop, thread));
        }
        Ok(Self { runtimes, threads })
    }

    /// Each worker's runtime, the main thread's first.
    pub(crate) fn runtimes(&self) -> &[Handle] {
        &self.runtimes
    }

    /// Runs `task` on worker `index`.
    pub(crate) fn spawn(
        &self,
        index: usize,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        self.runtimes[index].spawn(task)
    }

    /// Ends the extra threads' runtimes, dropping what they still run, and waits for them.
    pub(crate) async fn stop(self) {
        let threads: Vec<_> = self
            .threads
            .into_iter()
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        // Joined off this runtime, which keeps running (and driving the endpoint's socket)
        // while the workers drop their tasks.
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

/// Tasks cancelled when this is dropped.
pub(crate) struct AbortOnDrop(pub(crate) Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn a_task_and_what_it_spawns_run_on_its_workers_thread() {
        let workers = Workers::start(NonZeroUsize::new(3).unwrap()).unwrap();
        assert_eq!(workers.runtimes().len(), 3);
        let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
        for index in 0..3 {
            let report = report.clone();
            workers.spawn(index, async move {
                let spawned = tokio::spawn(async { thread_name() }).await.unwrap();
                report.send((index, thread_name(), spawned)).unwrap();
            });
        }
        let main = thread_name();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let wait = tokio::time::timeout(std::time::Duration::from_secs(10), reports.recv());
            let (index, first, spawned) = wait.await.unwrap().unwrap();
            assert_eq!(first, spawned);
            let expected = match index {
                0 => main.clone(),
                index => format!("moq-relay-worker-{index}"),
            };
            assert_eq!(first, expected);
            seen.push(index);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        workers.stop().await;
    }
}
