import Foundation

/// Metrics text as real Prometheus tools read it: prometheus_client's parser (PyPI) and `promtool check metrics`
/// (Debian package prometheus).
public enum PrometheusParser {
    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        samples = {}
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):
            for sample in family.samples:
                labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(sample.labels.items()))
                samples[sample.name + ("{" + labels + "}" if labels else "")] = sample.value
        print(json.dumps(samples))
        """

    /// Every sample of the file at `path`, keyed `name{label="value",...}` with labels sorted by name (label values
    /// as the parser unescaped them), as prometheus_client reads it.
    /// - Throws: ``FixtureError`` when python3 or prometheus_client is missing, or the parser refuses the file.
    public static func samples(path: String) throws -> [String: Double] {
        let result = try runToCompletion("/usr/bin/env", ["python3", "-c", script, path])
        guard result.code == 0, let line = result.out.split(separator: "\n").last,
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw FixtureError("prometheus_client could not parse \(path): \(result.out)") }
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// The same for `text` (written to a temporary file first).
    public static func samples(text: String) throws -> [String: Double] {
        try withFile(text) { try samples(path: $0) }
    }

    /// `promtool check metrics` on `text` (its stdin): the exit code and what it printed (problems and lint
    /// findings); `nil` when promtool is not installed.
    public static func promtoolCheck(text: String) throws -> (code: Int32, out: String)? {
        guard
            let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(
                where: FileManager.default.isExecutableFile(atPath:)
            )
        else { return nil }
        let result = try withFile(text) {
            try runToCompletion("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, $0])
        }
        return result
    }

    private static func withFile<T>(_ text: String, _ body: (String) throws -> T) throws -> T {
        let path = NSTemporaryDirectory() + "metrics-\(UUID().uuidString.prefix(8)).prom"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }
}

/// Runs a program to its end, stdin closed; its standard output and error together.
/// - Throws: what `Process.run()` throws when it cannot start.
public func runToCompletion(_ executable: String, _ arguments: [String]) throws -> (code: Int32, out: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
