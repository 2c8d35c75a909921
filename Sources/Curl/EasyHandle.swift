import CCurl

/// One libcurl easy handle, owned by one worker thread for its whole life.
///
/// Reusing the handle keeps its connection cache, so consecutive requests to the same origin reuse a
/// keep-alive connection. Every request starts from `curl_easy_reset`, so no option leaks from one request
/// into the next.
final class EasyHandle {
    // Internal (not private) so the SMTP transfer in SMTP.swift configures the same handle.
    let handle: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    /// - Throws: ``CurlError/failedInit`` when `curl_easy_init` fails.
    init() throws(CurlError) {
        _ = curlGlobalInit
        guard let handle = curl_easy_init() else {
            throw CurlError(code: CurlError.failedInit.code, message: "curl_easy_init failed")
        }
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(sitroom_CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(sitroom_CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// The outcome of one transfer.
    struct Outcome {
        var result: Result<HTTPResponse, CurlError>
        /// New connections this transfer opened (`CURLINFO_NUM_CONNECTS`).
        var connectsOpened: Int
    }

    /// What every transfer sets, whatever its protocol.
    struct Basics {
        var url: String
        /// `CURLOPT_PROTOCOLS_STR`: the schemes the URL may have, such as `http,https`.
        var protocols: String
        /// Whole-transfer limit in seconds (`CURLOPT_TIMEOUT_MS`).
        var timeout: Double
        /// Connection limit in seconds (`CURLOPT_CONNECTTIMEOUT_MS`).
        var connectTimeout: Double
        /// The request as errors name it, such as `GET https://host/path` or `SMTP smtp://host`: no credentials.
        /// Made only for an error (it parses the URL again, which a transfer that succeeds should not pay for).
        var target: () -> String
    }

    /// How a transfer ended.
    enum End {
        case completed
        /// Failed; `performed` tells whether `curl_easy_perform` ran (no when an option was refused).
        case failed(CurlError, performed: Bool)
    }

    /// The one libcurl perform path: resets the handle, sets the options every transfer needs (no signals, no
    /// proxy from the environment, the allowed protocols, TCP keep-alive, the limits, the error buffer, the
    /// progress callback that aborts a cancelled transfer), lets `configure` set the protocol's own, runs
    /// `curl_easy_perform` (through `around`, which may lend it memory that must stay put), and maps a failure to
    /// a ``CurlError`` (``failure(_:_:context:)``). Blocks the calling thread until the transfer completes, fails
    /// or `context.isCancelled` turns true.
    func transfer(
        _ basics: Basics,
        context: TransferContext,
        configure: () throws(CurlError) -> Void,
        around: (_ perform: () -> CURLcode) -> CURLcode = { $0() }
    ) -> End {
        errorBuffer[0] = 0
        curl_easy_reset(handle)
        let rc: CURLcode
        do {
            let contextPointer = Unmanaged.passUnretained(context).toOpaque()
            try setLong(CURLOPT_NOSIGNAL, 1)
            try setString(CURLOPT_URL, basics.url)
            try setPointer(CURLOPT_ERRORBUFFER, errorBuffer)
            // Honour nothing from the environment (http_proxy and friends).
            try setString(CURLOPT_PROXY, "")
            try setString(CURLOPT_PROTOCOLS_STR, basics.protocols)
            try setLong(CURLOPT_TCP_KEEPALIVE, 1)
            try setLong(CURLOPT_TIMEOUT_MS, milliseconds(basics.timeout))
            try setLong(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(basics.connectTimeout))
            try check(
                sitroom_curl_easy_setopt_xferinfo_callback(handle, CURLOPT_XFERINFOFUNCTION, progressCallback),
                "CURLOPT_XFERINFOFUNCTION"
            )
            try setPointer(CURLOPT_XFERINFODATA, contextPointer)
            try setLong(CURLOPT_NOPROGRESS, 0)
            try configure()
            rc = around { withExtendedLifetime(context) { curl_easy_perform(handle) } }
        } catch {
            return .failed(
                CurlError(
                    code: error.code,
                    message: "\(error.message) (\(basics.target()))",
                    requestMayHaveBeenSent: false
                ),
                performed: false
            )
        }
        guard rc == CURLE_OK else { return .failed(failure(rc, basics.target(), context: context), performed: true) }
        return .completed
    }

    /// Performs `request`, blocking the calling thread until it completes, fails or `isCancelled` turns true.
    func perform(_ request: HTTPRequest, isCancelled: @escaping () -> Bool) -> Outcome {
        let context = TransferContext(isCancelled: isCancelled)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        let basics = Basics(
            url: request.url,
            protocols: "http,https",
            timeout: request.timeout,
            connectTimeout: request.connectTimeout,
            target: { "\(request.method.rawValue) \(redactedURL(request.url))" }
        )
        let end = transfer(basics, context: context) { () throws(CurlError) in
            try configure(request, context: context, headerList: &headerList)
        } around: { perform in
            guard sendsBody(request) else { return perform() }
            // CURLOPT_POSTFIELDS is not copied: the body must stay put until curl_easy_perform returns.
            return withBody(request.body) { body in
                let set = sitroom_curl_easy_setopt_pointer(handle, CURLOPT_POSTFIELDS, body)
                guard set == CURLE_OK else { return set }
                return perform()
            }
        }
        switch end {
        case .failed(let error, performed: false):
            return Outcome(result: .failure(error), connectsOpened: 0)
        case .failed(let error, performed: true):
            return Outcome(result: .failure(error), connectsOpened: info(CURLINFO_NUM_CONNECTS))
        case .completed:
            let response = HTTPResponse(
                status: info(CURLINFO_RESPONSE_CODE),
                headers: context.headers,
                body: context.body
            )
            return Outcome(result: .success(response), connectsOpened: info(CURLINFO_NUM_CONNECTS))
        }
    }

    /// A `long` from `curl_easy_getinfo` about the last transfer; 0 when libcurl has none.
    func info(_ what: CURLINFO) -> Int {
        var value = 0
        _ = sitroom_curl_easy_getinfo_long(handle, what, &value)
        return value
    }

    private func configure(
        _ request: HTTPRequest,
        context: TransferContext,
        headerList: inout UnsafeMutablePointer<curl_slist>?
    ) throws(CurlError) {
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        try check(
            sitroom_curl_easy_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback),
            "CURLOPT_WRITEFUNCTION"
        )
        try setPointer(CURLOPT_WRITEDATA, contextPointer)
        try check(
            sitroom_curl_easy_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback),
            "CURLOPT_HEADERFUNCTION"
        )
        try setPointer(CURLOPT_HEADERDATA, contextPointer)
        // libcurl silently sends a request again on a fresh connection when a reused one dies before any
        // answer arrives. For a non-idempotent request (POST: create meeting) that could make a second
        // meeting, so the replay is refused and the caller is told the request may have been sent.
        context.replayable = request.isIdempotent
        try check(sitroom_curl_easy_setopt_prereq_callback(handle, prereqCallback), "CURLOPT_PREREQFUNCTION")
        try setPointer(CURLOPT_PREREQDATA, contextPointer)

        if !sendsBody(request) {
            try setLong(CURLOPT_HTTPGET, 1)
            if request.method != .get {
                try setString(CURLOPT_CUSTOMREQUEST, request.method.rawValue)
            }
        } else {
            // A POST with CURLOPT_POSTFIELDS (set in perform) sends the body from memory; the custom
            // request line turns it into PUT, PATCH or DELETE.
            try setLong(CURLOPT_POST, 1)
            try check(
                sitroom_curl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)),
                "CURLOPT_POSTFIELDSIZE_LARGE"
            )
            if request.method != .post {
                try setString(CURLOPT_CUSTOMREQUEST, request.method.rawValue)
            }
        }

        for (name, value) in request.headers {
            guard !name.isEmpty, !(name + value).contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }),
                !name.contains(":")
            else {
                throw CurlError(
                    code: CurlError.badFunctionArgument.code,
                    message: "invalid header name or value for \(name.filter { $0 != "\r" && $0 != "\n" })"
                )
            }
            // "Name;" is libcurl's way to send a header with an empty value; "Name:" would remove it.
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        if !request.body.isEmpty {
            // No "Expect: 100-continue" round trip for large bodies.
            headerList = curl_slist_append(headerList, "Expect:")
        }
        if headerList != nil {
            try setPointer(CURLOPT_HTTPHEADER, UnsafeRawPointer(headerList))
        }

        if let auth = request.basicAuth {
            try setLong(CURLOPT_HTTPAUTH, Int(bitPattern: UInt(sitroom_CURLAUTH_BASIC)))
            try setString(CURLOPT_USERNAME, auth.user)
            try setString(CURLOPT_PASSWORD, auth.password)
        }
    }

    /// GET, and DELETE without a body, send none; the others always do (if only `Content-Length: 0`).
    private func sendsBody(_ request: HTTPRequest) -> Bool {
        switch request.method {
        case .get: false
        case .delete: !request.body.isEmpty
        case .post, .put, .patch: true
        }
    }

    func setLong(_ option: CURLoption, _ value: Int) throws(CurlError) {
        try check(sitroom_curl_easy_setopt_long(handle, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    /// libcurl copies string options, so the C string only has to live for the call.
    func setString(_ option: CURLoption, _ value: String) throws(CurlError) {
        let rc = value.withCString { sitroom_curl_easy_setopt_pointer(handle, option, $0) }
        try check(rc, "curl_easy_setopt(\(option.rawValue))")
    }

    func setPointer(_ option: CURLoption, _ value: UnsafeRawPointer?) throws(CurlError) {
        try check(sitroom_curl_easy_setopt_pointer(handle, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    func milliseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 1 }
        return max(1, Int(min(seconds * 1000, Double(Int32.max))))
    }

    /// Lends libcurl a pointer to the body for the transfer; never NULL (a NULL POSTFIELDS with POST
    /// would make libcurl read the body from stdin).
    private func withBody<R>(_ body: [UInt8], _ work: (UnsafeRawPointer) -> R) -> R {
        if body.isEmpty {
            var zero: UInt8 = 0
            return withUnsafePointer(to: &zero) { work(UnsafeRawPointer($0)) }
        }
        return body.withUnsafeBytes { work($0.baseAddress!) }
    }

    /// The one failure mapping, for every protocol: `curl_easy_strerror`, libcurl's detail from the error buffer
    /// (or "cancelled" when the awaiting task was), and the request's `target`; whether the request may have
    /// been sent, from what the transfer knows (a refused replay was; no connection and no byte written was not).
    private func failure(_ rc: CURLcode, _ target: String, context: TransferContext) -> CurlError {
        let code = Int32(bitPattern: rc.rawValue)
        if context.replayRefused {
            return CurlError(
                code: code,
                message: "connection closed after the request was sent; not sent again (\(target))",
                requestMayHaveBeenSent: true
            )
        }
        var text = String(cString: curl_easy_strerror(rc))
        let detail = String(cString: errorBuffer)
        if context.wasCancelled {
            text += ": cancelled"
        } else if !detail.isEmpty && detail != text {
            text += ": \(detail)"
        }
        var sent: Bool? = nil
        if !CurlError.neverSentCodes.contains(code) {
            // A timeout (or any other failure) before the connection existed and before a byte of the
            // request was written means the server never saw it.
            var connectTime: curl_off_t = 0
            _ = sitroom_curl_easy_getinfo_off_t(handle, CURLINFO_CONNECT_TIME_T, &connectTime)
            if info(CURLINFO_REQUEST_SIZE) == 0 && connectTime == 0 { sent = false }
        }
        return CurlError(code: code, message: "\(text) (\(target))", requestMayHaveBeenSent: sent)
    }
}

/// State shared with the C callbacks for one transfer, of any protocol.
final class TransferContext {
    /// The response body received (HTTP).
    var body: [UInt8] = []
    /// The final response's headers (HTTP).
    var headers: [String: String] = [:]
    /// The bytes to upload through the read callback (the SMTP message), and how many were handed to libcurl.
    var upload: [UInt8] = []
    var uploaded = 0
    var wasCancelled = false
    let isCancelled: () -> Bool
    /// Whether libcurl may send the request again on a new connection (idempotent methods only).
    var replayable = true
    /// Connections the request was about to be sent on, in this transfer.
    var sendAttempts = 0
    /// The prereq callback refused a replay.
    var replayRefused = false

    init(isCancelled: @escaping () -> Bool) {
        self.isCancelled = isCancelled
    }
}

private let writeCallback: curl_write_callback = { data, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    if let data, length > 0 {
        context.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}

/// Called once per header line of every response, including `100 Continue` and redirects: a status line
/// starts a new set, so only the final response's headers remain.
private let headerCallback: curl_write_callback = { data, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    guard let data, length > 0 else { return length }
    // Read over the bytes: a header line is ASCII up to its colon, and this runs for every header of every answer.
    let bytes = UnsafeRawBufferPointer(start: data, count: length).bindMemory(to: UInt8.self)
    var end = bytes.count
    while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
    let line = UnsafeBufferPointer(rebasing: bytes[0..<end])
    if line.starts(with: "HTTP/".utf8) {
        context.headers = [:]
    } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
        func trimmed(_ part: Slice<UnsafeBufferPointer<UInt8>>) -> String {
            var from = part.startIndex
            var to = part.endIndex
            while from < to, part[from] == 0x20 || part[from] == 0x09 { from += 1 }
            while to > from, part[to - 1] == 0x20 || part[to - 1] == 0x09 { to -= 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: part[from..<to]), as: UTF8.self)
        }
        let name = trimmed(line[..<colon]).lowercased()
        let value = trimmed(line[(colon + 1)...])
        if !name.isEmpty { context.headers[name] = value }
    }
    return length
}

/// Refuses libcurl's transparent replay of a non-idempotent request on a second connection.
private let prereqCallback: sitroom_curl_prereq_callback = { userData, _, _, _, _ in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    context.sendAttempts += 1
    if context.sendAttempts > 1 && !context.replayable {
        context.replayRefused = true
        return 1  // CURL_PREREQFUNC_ABORT
    }
    return 0  // CURL_PREREQFUNC_OK
}

/// Aborts the transfer (CURLE_ABORTED_BY_CALLBACK) once the awaiting task is cancelled.
private let progressCallback: curl_xferinfo_callback = { userData, _, _, _, _ in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    if context.isCancelled() {
        context.wasCancelled = true
        return 1
    }
    return 0
}

/// `curl_global_init`, run once per process before the first handle (a lazy global is initialised once,
/// thread-safely).
let curlGlobalInit: Void = {
    let rc = curl_global_init(sitroom_CURL_GLOBAL_DEFAULT)
    precondition(rc == CURLE_OK, "curl_global_init failed: \(rc.rawValue)")
}()

/// The URL as scheme://host[:port]/path: no user info, query or fragment, so it is safe to log.
func redactedURL(_ url: String) -> String {
    guard let parts = URLParts(url) else { return "<invalid URL>" }
    return parts.scheme + "://" + parts.hostAndExplicitPort + parts.path
}

/// The origin key for connection reuse and limits: scheme://host:port, default port filled in.
func originKey(_ url: String) -> String? {
    guard let parts = URLParts(url) else { return nil }
    return "\(parts.scheme)://\(parts.host):\(parts.port)"
}

/// A URL split by libcurl's own parser (`curl_url`), so the origin agrees with what libcurl connects to.
struct URLParts {
    var scheme: String
    var host: String
    var port: String
    var hostAndExplicitPort: String
    var path: String

    init?(_ url: String) {
        _ = curlGlobalInit
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        guard curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK else { return nil }
        func part(_ which: CURLUPart, _ flags: UInt32 = 0) -> String? {
            var value: UnsafeMutablePointer<CChar>?
            guard curl_url_get(handle, which, &value, flags) == CURLUE_OK, let value else { return nil }
            defer { curl_free(value) }
            return String(cString: value)
        }
        guard let scheme = part(CURLUPART_SCHEME), let host = part(CURLUPART_HOST),
            let port = part(CURLUPART_PORT, UInt32(CURLU_DEFAULT_PORT))
        else { return nil }
        self.scheme = scheme.lowercased()
        let lowercasedHost = host.lowercased()
        self.host = lowercasedHost
        self.port = port
        hostAndExplicitPort = part(CURLUPART_PORT).map { "\(lowercasedHost):\($0)" } ?? lowercasedHost
        path = part(CURLUPART_PATH) ?? "/"
    }
}
