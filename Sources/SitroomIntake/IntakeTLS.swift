import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import SitroomConfig
import Synchronization

/// TLS in front of the HTTP channel, with swift-nio-ssl (BoringSSL), TLS 1.2 or later. The certificate chain and key
/// are read again on every reload, so a renewed certificate (certbot writes new files) counts for new connections
/// after `systemctl reload sitroom-intake`, without a restart: each connection takes the context current when it is
/// accepted. This is HummingbirdTLS's `TLSChannel` with a context that can be replaced.
struct IntakeTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let context: IntakeTLSContext

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = self.context.current
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension IntakeTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

/// The TLS context new connections get; replaced by a reload.
public final class IntakeTLSContext: Sendable {
    private let context: Mutex<NIOSSLContext>

    /// Loads `files`.
    /// - Throws: ``IntakeTLSError`` naming the file that cannot be used.
    public init(_ files: IntakeConfiguration.TLSFiles) throws {
        context = Mutex(try Self.load(files))
    }

    var current: NIOSSLContext { context.withLock { $0 } }

    /// Reads `files` again and uses them for the next connections.
    /// - Throws: ``IntakeTLSError``; the old context then stays.
    public func reload(_ files: IntakeConfiguration.TLSFiles) throws {
        let fresh = try Self.load(files)
        context.withLock { $0 = fresh }
    }

    static func load(_ files: IntakeConfiguration.TLSFiles) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certFile)
        } catch {
            throw IntakeTLSError(message: "tls.cert_file: \(files.certFile) is not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else {
            throw IntakeTLSError(message: "tls.cert_file: \(files.certFile) holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            // SecretFile refuses a key file that group or others may read, as ssh does.
            let text = try SecretFile.read(files.keyFile, key: "tls.key_file")
            key = try NIOSSLPrivateKey(bytes: Array((text + "\n").utf8), format: .pem)
        } catch {
            throw IntakeTLSError(
                message: "tls.key_file: \(files.keyFile) cannot be used as a PEM private key (\(error))"
            )
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw IntakeTLSError(message: "tls: the certificate and key do not make a TLS context (\(error))")
        }
    }
}

/// A certificate or key that cannot be used; the message names the key and file (never the key's content).
public struct IntakeTLSError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
