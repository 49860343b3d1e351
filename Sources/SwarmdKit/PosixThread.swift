#if canImport(Glibc)
import Glibc
#endif
import CSwarmLinux

/// Starts a pthread running `body`. Threads inherit the creating thread's
/// signal mask: swarmd blocks its signals before any thread exists.
func startThread(name: String, _ body: @escaping () -> Void) -> pthread_t? {
    final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }
    let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        b.name.withCString { _ = swarm_set_thread_name($0) }  // shown by top -H
        b.body()
        return nil
    }, box)
    guard rc == 0 else { Unmanaged<Box>.fromOpaque(box).release(); return nil }
    return thread
}
