import Glibc

/// Starts a detached POSIX thread running `body`; it ends when `body` returns.
/// - Parameters:
///   - name: The thread's name, as `ps -L` shows it (at most 15 bytes are kept, the kernel's limit), or `nil`.
///   - body: The thread's work.
/// - Returns: 0, or the error number from `pthread_create` (such as `EAGAIN` when the process may start no more).
///
/// The corresponding C function is `pthread_create` (detached); the name is written to `/proc/thread-self/comm`
/// (what `pthread_setname_np` does, which Swift's Glibc module does not export).
public func startDetachedThread(name: String? = nil, _ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Start {
        let name: String?
        let body: @Sendable () -> Void
        init(name: String?, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(
        &thread,
        &attributes,
        { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            if let name = start.name {
                // The kernel keeps 15 bytes and the NUL; a longer name would make the call fail with ERANGE.
                var bytes = Array(name.utf8.prefix(15))
                while !bytes.isEmpty, String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
                setCurrentThreadName(bytes)
            }
            start.body()
            return nil
        },
        start
    )
    if rc != 0 {
        Unmanaged<Start>.fromOpaque(start).release()
    }
    return rc
}

/// Names the calling thread (`comm`, at most 15 bytes); a failure leaves the name as it was.
private func setCurrentThreadName(_ bytes: [UInt8]) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
