import Foundation

// Over 500 lines on purpose: an Encoder and a Decoder must each implement Swift's keyed, unkeyed and
// single-value containers; the record format's reader and writer are one unit and are read together.

/// sitroom's record format for values in LMDB: a compact, self-describing binary form of any `Codable` value.
///
/// Why not JSON: the store writes an incident, a room or a notice on nearly every event, and Foundation's
/// `JSONEncoder`/`JSONDecoder` took half the CPU of applying a spool file (number formatting, escaping, key
/// sorting, parsing). Why not a library: none among the package copies offers a binary `Codable` format, and
/// Foundation's binary property lists measured slower than its JSON. Self-describing (field names kept, as in
/// JSON), so a field added later reads as absent from older records and a field dropped is skipped.
///
/// Layout: the first byte is ``RecordFormat/magic`` (never `{` or `[`, so the JSON values of older stores are
/// told apart), then one value:
/// - `0x00` nil; `0x01` false; `0x02` true;
/// - `0x03` a signed integer, zig-zag LEB128; `0x04` an unsigned integer, LEB128;
/// - `0x05` a Double, its 8-byte bit pattern little-endian; `0x06` a Float, 4 bytes;
/// - `0x07` a string: LEB128 length, then UTF-8;
/// - `0x08` a keyed container: entries (a key as LEB128 length and UTF-8, then a value) up to `0x0F`;
/// - `0x09` an unkeyed container: values up to `0x0F`.
public enum RecordFormat {
    /// The first byte of every record.
    public static let magic: UInt8 = 0xB5

    static let null: UInt8 = 0x00
    static let falseValue: UInt8 = 0x01
    static let trueValue: UInt8 = 0x02
    static let int: UInt8 = 0x03
    static let uint: UInt8 = 0x04
    static let double: UInt8 = 0x05
    static let float: UInt8 = 0x06
    static let string: UInt8 = 0x07
    static let keyed: UInt8 = 0x08
    static let unkeyed: UInt8 = 0x09
    static let end: UInt8 = 0x0F

    /// Whether `bytes` hold a record (rather than JSON written by an older sitroom).
    public static func isRecord(_ bytes: [UInt8]) -> Bool { bytes.first == magic }
}

// MARK: - Encoding

/// Encodes `Encodable` values as records.
public struct RecordEncoder: Sendable {
    public init() {}

    /// - Returns: the record's bytes, starting with ``RecordFormat/magic``.
    /// - Throws: `EncodingError` from the value, or when it asks for a container this format cannot end
    ///   (`nestedContainer`, `superEncoder`: unused by sitroom's values).
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let writer = RecordWriter()
        writer.bytes.append(RecordFormat.magic)
        try writer.encodeValue(value, codingPath: [])
        if let problem = writer.problem { throw problem }
        return writer.bytes
    }
}

/// The bytes being written, shared by every container of one encode.
final class RecordWriter {
    var bytes: [UInt8] = []
    /// Set when a value asked for something the format cannot express.
    var problem: EncodingError?
    /// Whether the value being encoded asked for a container (so its end marker is due when it returns).
    private var openedContainer = false

    init() { bytes.reserveCapacity(256) }

    func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    func text(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    func int(_ value: Int64) {
        bytes.append(RecordFormat.int)
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    func uint(_ value: UInt64) {
        bytes.append(RecordFormat.uint)
        varint(value)
    }

    func double(_ value: Double) {
        bytes.append(RecordFormat.double)
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
    }

    func float(_ value: Float) {
        bytes.append(RecordFormat.float)
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
    }

    func string(_ value: String) {
        bytes.append(RecordFormat.string)
        text(value)
    }

    func bool(_ value: Bool) { bytes.append(value ? RecordFormat.trueValue : RecordFormat.falseValue) }

    /// Encodes one value where a value is due: its own container, or a nil when it encodes nothing.
    func encodeValue<T: Encodable>(_ value: T, codingPath: [any CodingKey], key: (any CodingKey)? = nil) throws {
        // Scalars the format knows are written directly, not through `Encodable` (as JSONEncoder does).
        // (By metatype, not `as?`: a dynamic cast per value costs more than the writing.)
        if T.self == String.self { return string(Self.reinterpret(value)) }
        if T.self == Double.self { return double(Self.reinterpret(value)) }
        if T.self == Int.self { return int(Int64(Self.reinterpret(value) as Int)) }
        if T.self == Int64.self { return int(Self.reinterpret(value)) }
        if T.self == Bool.self { return bool(Self.reinterpret(value)) }
        let outer = openedContainer
        openedContainer = false
        let start = bytes.count
        try value.encode(to: RecordEncoding(writer: self, at: CodingPathTail(parent: codingPath, key: key)))
        if openedContainer {
            bytes.append(RecordFormat.end)
        } else if bytes.count == start {
            bytes.append(RecordFormat.null)
        }
        openedContainer = outer
    }

    /// `value` as `U`, which the caller has checked is its type.
    private static func reinterpret<T, U>(_ value: T) -> U {
        precondition(T.self == U.self)
        return withUnsafePointer(to: value) { $0.withMemoryRebound(to: U.self, capacity: 1) { $0.pointee } }
    }

    /// A value asks for a keyed or unkeyed container: written once, ended when the value's `encode` returns.
    func open(_ tag: UInt8) {
        guard !openedContainer else { return }  // asked twice by one value: the same container
        openedContainer = true
        bytes.append(tag)
    }

    func unsupported(_ what: String, _ codingPath: [any CodingKey]) {
        problem =
            problem
            ?? EncodingError.invalidValue(
                what,
                EncodingError.Context(codingPath: codingPath, debugDescription: "records cannot hold \(what)")
            )
    }
}

/// A coding path built only when asked for (errors): the parent's path and the last key.
struct CodingPathTail {
    var parent: [any CodingKey]
    var key: (any CodingKey)?
    var path: [any CodingKey] { key.map { parent + [$0] } ?? parent }
}

struct RecordEncoding: Encoder {
    let writer: RecordWriter
    let at: CodingPathTail
    var codingPath: [any CodingKey] { at.path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(writer: RecordWriter, at: CodingPathTail) {
        self.writer = writer
        self.at = at
    }

    init(writer: RecordWriter, codingPath: [any CodingKey]) {
        self.init(writer: writer, at: CodingPathTail(parent: codingPath, key: nil))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        writer.open(RecordFormat.keyed)
        return KeyedEncodingContainer(RecordKeyedEncoding<Key>(writer: writer, at: at))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        writer.open(RecordFormat.unkeyed)
        return RecordUnkeyedEncoding(writer: writer, at: at)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        RecordSingleEncoding(writer: writer, at: at)
    }
}

struct RecordKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: RecordWriter
    let at: CodingPathTail
    var codingPath: [any CodingKey] { at.path }

    init(writer: RecordWriter, at: CodingPathTail) {
        self.writer = writer
        self.at = at
    }

    init(writer: RecordWriter, codingPath: [any CodingKey]) {
        self.init(writer: writer, at: CodingPathTail(parent: codingPath, key: nil))
    }

    private func key(_ key: Key) { writer.text(key.stringValue) }

    mutating func encodeNil(forKey key: Key) throws {
        self.key(key)
        writer.bytes.append(RecordFormat.null)
    }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        self.key(key)
        writer.bool(value)
    }
    mutating func encode(_ value: String, forKey key: Key) throws {
        self.key(key)
        writer.string(value)
    }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        self.key(key)
        writer.double(value)
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        self.key(key)
        writer.float(value)
    }
    mutating func encode(_ value: Int, forKey key: Key) throws {
        self.key(key)
        writer.int(Int64(value))
    }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws {
        self.key(key)
        writer.int(value)
    }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encode(UInt64(value), forKey: key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encode(UInt64(value), forKey: key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encode(UInt64(value), forKey: key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encode(UInt64(value), forKey: key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        self.key(key)
        writer.uint(value)
    }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        self.key(key)
        try writer.encodeValue(value, codingPath: at.path, key: key)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        writer.unsupported("a nested keyed container", codingPath + [key])
        return KeyedEncodingContainer(RecordKeyedEncoding<NestedKey>(writer: writer, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        writer.unsupported("a nested unkeyed container", codingPath + [key])
        return RecordUnkeyedEncoding(writer: writer, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> any Encoder {
        writer.unsupported("a super encoder", codingPath)
        return RecordEncoding(writer: writer, codingPath: codingPath)
    }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writer.unsupported("a super encoder", codingPath + [key])
        return RecordEncoding(writer: writer, codingPath: codingPath + [key])
    }
}

struct RecordUnkeyedEncoding: UnkeyedEncodingContainer {
    let writer: RecordWriter
    let at: CodingPathTail
    var codingPath: [any CodingKey] { at.path }

    init(writer: RecordWriter, at: CodingPathTail) {
        self.writer = writer
        self.at = at
    }

    init(writer: RecordWriter, codingPath: [any CodingKey]) {
        self.init(writer: writer, at: CodingPathTail(parent: codingPath, key: nil))
    }
    var count = 0

    mutating func encodeNil() throws {
        writer.bytes.append(RecordFormat.null)
        count += 1
    }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try writer.encodeValue(value, codingPath: codingPath)
        count += 1
    }
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        writer.unsupported("a nested keyed container", codingPath)
        return KeyedEncodingContainer(RecordKeyedEncoding<NestedKey>(writer: writer, codingPath: codingPath))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        writer.unsupported("a nested unkeyed container", codingPath)
        return RecordUnkeyedEncoding(writer: writer, codingPath: codingPath)
    }
    mutating func superEncoder() -> any Encoder {
        writer.unsupported("a super encoder", codingPath)
        return RecordEncoding(writer: writer, codingPath: codingPath)
    }
}

struct RecordSingleEncoding: SingleValueEncodingContainer {
    let writer: RecordWriter
    let at: CodingPathTail
    var codingPath: [any CodingKey] { at.path }

    init(writer: RecordWriter, at: CodingPathTail) {
        self.writer = writer
        self.at = at
    }

    init(writer: RecordWriter, codingPath: [any CodingKey]) {
        self.init(writer: writer, at: CodingPathTail(parent: codingPath, key: nil))
    }

    mutating func encodeNil() throws { writer.bytes.append(RecordFormat.null) }
    mutating func encode(_ value: Bool) throws { writer.bool(value) }
    mutating func encode(_ value: String) throws { writer.string(value) }
    mutating func encode(_ value: Double) throws { writer.double(value) }
    mutating func encode(_ value: Float) throws { writer.float(value) }
    mutating func encode(_ value: Int) throws { writer.int(Int64(value)) }
    mutating func encode(_ value: Int8) throws { writer.int(Int64(value)) }
    mutating func encode(_ value: Int16) throws { writer.int(Int64(value)) }
    mutating func encode(_ value: Int32) throws { writer.int(Int64(value)) }
    mutating func encode(_ value: Int64) throws { writer.int(value) }
    mutating func encode(_ value: UInt) throws { writer.uint(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { writer.uint(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { writer.uint(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { writer.uint(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { writer.uint(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try writer.encodeValue(value, codingPath: codingPath) }
}

// MARK: - JSON of older stores

extension RecordFormat {
    /// The record holding the same value as a JSON text written by sitroom before schema 3 (the migration to 3
    /// rewrites every JSON value of the store this way, without knowing its type): objects become keyed
    /// containers, arrays unkeyed ones, integral numbers integers, others Doubles (a Double field reads either).
    /// - Returns: `nil` when `bytes` are not a JSON object, array or string (the store's raw ASCII values).
    /// - Throws: Foundation's error for malformed JSON.
    static func transcode(json bytes: [UInt8]) throws -> [UInt8]? {
        guard let first = bytes.first,
            first == UInt8(ascii: "{") || first == UInt8(ascii: "[") || first == UInt8(ascii: "\"")
        else { return nil }
        let object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        let writer = RecordWriter()
        writer.bytes.append(magic)
        write(object, to: writer)
        return writer.bytes
    }

    private static func write(_ object: Any, to writer: RecordWriter) {
        switch object {
        case let dictionary as [String: Any]:
            writer.bytes.append(keyed)
            for key in dictionary.keys.sorted() {
                writer.text(key)
                write(dictionary[key]!, to: writer)
            }
            writer.bytes.append(end)
        case let array as [Any]:
            writer.bytes.append(unkeyed)
            for element in array { write(element, to: writer) }
            writer.bytes.append(end)
        case let string as String:
            writer.string(string)
        case let number as NSNumber:
            // Foundation's JSON numbers: booleans are NSNumbers of type "c".
            switch String(cString: number.objCType) {
            case "c": writer.bool(number.boolValue)
            case "d", "f":
                let value = number.doubleValue
                if value.rounded() == value, abs(value) < 9e15 {
                    writer.int(Int64(value))
                } else {
                    writer.double(value)
                }
            case "Q": writer.uint(number.uint64Value)
            default: writer.int(number.int64Value)
            }
        default:
            writer.bytes.append(null)
        }
    }
}

// MARK: - Decoding

/// Decodes records (and, for values written by an older sitroom, JSON).
public struct RecordDecoder: Sendable {
    public init() {}

    /// - Throws: `DecodingError.dataCorrupted` for bytes that are not a whole record, or the type's own errors
    ///   (a missing field, a wrong type) naming the coding path.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBufferPointer { buffer in
            var reader = RecordReader(bytes: buffer, index: 0)
            guard reader.index < buffer.count, buffer[0] == RecordFormat.magic else {
                throw reader.corrupt("not a record (first byte)")
            }
            reader.index = 1
            let value = try reader.value()
            guard reader.index == buffer.count else { throw reader.corrupt("bytes after the record") }
            return try RecordDecoding(value: value, codingPath: []).decode(type)
        }
    }
}

/// A parsed record value; a keyed container keeps its entries in order (few: searched linearly).
indirect enum RecordValue {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case float(Float)
    case string(String)
    case keyed([(key: String, value: RecordValue)])
    case unkeyed([RecordValue])

    var kind: String {
        switch self {
        case .null: return "nil"
        case .bool: return "a Bool"
        case .int, .uint: return "an integer"
        case .double, .float: return "a floating-point number"
        case .string: return "a string"
        case .keyed: return "a keyed container"
        case .unkeyed: return "an unkeyed container"
        }
    }
}

struct RecordReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int

    func corrupt(_ what: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: "record: \(what) at byte \(index)"))
    }

    mutating func byte() throws -> UInt8 {
        guard index < bytes.count else { throw corrupt("truncated") }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            guard shift < 64 else { throw corrupt("integer too long") }
            value |= UInt64(next & 0x7F) << shift
            if next < 0x80 { return value }
            shift += 7
        }
    }

    mutating func text() throws -> String {
        let count = Int(try varint())
        guard count <= bytes.count - index else { throw corrupt("string past the end") }
        defer { index += count }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<index + count]), as: UTF8.self)
    }

    mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= bytes.count - index else { throw corrupt("number past the end") }
        var value: T = 0
        for k in 0..<size { value |= T(bytes[index + k]) << (8 * k) }
        index += size
        return value
    }

    mutating func value() throws -> RecordValue {
        switch try byte() {
        case RecordFormat.null: return .null
        case RecordFormat.falseValue: return .bool(false)
        case RecordFormat.trueValue: return .bool(true)
        case RecordFormat.int:
            let raw = try varint()
            return .int(Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
        case RecordFormat.uint: return .uint(try varint())
        case RecordFormat.double: return .double(Double(bitPattern: try fixed(UInt64.self)))
        case RecordFormat.float: return .float(Float(bitPattern: try fixed(UInt32.self)))
        case RecordFormat.string: return .string(try text())
        case RecordFormat.keyed:
            var entries: [(key: String, value: RecordValue)] = []
            while true {
                guard index < bytes.count else { throw corrupt("unended keyed container") }
                if bytes[index] == RecordFormat.end {
                    index += 1
                    return .keyed(entries)
                }
                let key = try text()
                entries.append((key, try value()))
            }
        case RecordFormat.unkeyed:
            var elements: [RecordValue] = []
            while true {
                guard index < bytes.count else { throw corrupt("unended unkeyed container") }
                if bytes[index] == RecordFormat.end {
                    index += 1
                    return .unkeyed(elements)
                }
                elements.append(try value())
            }
        default:
            index -= 1
            throw corrupt("unknown tag \(bytes[index])")
        }
    }
}

struct RecordDecoding: Decoder {
    let value: RecordValue
    /// The parent's path and this value's key: the path is built only when asked (errors), not per field.
    let parentPath: [any CodingKey]
    let key: (any CodingKey)?
    var codingPath: [any CodingKey] { key.map { parentPath + [$0] } ?? parentPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: RecordValue, codingPath: [any CodingKey], key: (any CodingKey)? = nil) {
        self.value = value
        self.parentPath = codingPath
        self.key = key
    }

    func mismatch(_ type: Any.Type) -> DecodingError {
        .typeMismatch(
            type,
            DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(type), found \(value.kind)")
        )
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // The scalars the format knows are read directly, not through `Decodable`.
        // (By metatype, not `is`/`as!`: a dynamic cast per field costs more than the reading.)
        if T.self == String.self {
            guard case .string(let string) = value else { throw mismatch(type) }
            return Self.reinterpret(string)
        }
        if T.self == Double.self { return Self.reinterpret(try double()) }
        if T.self == Int.self { return Self.reinterpret(Int(try integer(type))) }
        if T.self == Bool.self {
            guard case .bool(let flag) = value else { throw mismatch(type) }
            return Self.reinterpret(flag)
        }
        return try T(from: self)
    }

    /// `value` as `U`, which the caller has checked is its type.
    private static func reinterpret<T, U>(_ value: T) -> U {
        precondition(T.self == U.self)
        return withUnsafePointer(to: value) { $0.withMemoryRebound(to: U.self, capacity: 1) { $0.pointee } }
    }

    func integer(_ type: Any.Type) throws -> Int64 {
        switch value {
        case .int(let number): return number
        case .uint(let number) where number <= UInt64(Int64.max): return Int64(number)
        default: throw mismatch(type)
        }
    }

    func unsigned(_ type: Any.Type) throws -> UInt64 {
        switch value {
        case .uint(let number): return number
        case .int(let number) where number >= 0: return UInt64(number)
        default: throw mismatch(type)
        }
    }

    func double() throws -> Double {
        switch value {
        case .double(let number): return number
        case .float(let number): return Double(number)
        case .int(let number): return Double(number)
        case .uint(let number): return Double(number)
        default: throw mismatch(Double.self)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .keyed(let entries) = value else { throw mismatch([String: Any].self) }
        return KeyedDecodingContainer(RecordKeyedDecoding<Key>(entries: entries, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .unkeyed(let elements) = value else { throw mismatch([Any].self) }
        return RecordUnkeyedDecoding(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        RecordSingleDecoding(decoding: self)
    }
}

struct RecordKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let entries: [(key: String, value: RecordValue)]
    var codingPath: [any CodingKey]

    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

    private func find(_ key: Key) -> RecordValue? {
        let name = key.stringValue
        for entry in entries where entry.key == name { return entry.value }
        return nil
    }

    private func decoding(_ key: Key) throws -> RecordDecoding {
        guard let value = find(key) else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(codingPath: codingPath, debugDescription: "no value for \(key.stringValue)")
            )
        }
        return RecordDecoding(value: value, codingPath: codingPath, key: key)
    }

    func contains(_ key: Key) -> Bool { find(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let value = find(key) else { return true }
        if case .null = value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoding(key).decode(type) }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = find(key) else { return nil }
        if case .null = value { return nil }
        return try RecordDecoding(value: value, codingPath: codingPath, key: key).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try decoding(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoding(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        RecordDecoding(value: .keyed(entries), codingPath: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { try decoding(key) }
}

struct RecordUnkeyedDecoding: UnkeyedDecodingContainer {
    let elements: [RecordValue]
    var codingPath: [any CodingKey]
    var currentIndex = 0

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private mutating func next(_ type: Any.Type) throws -> RecordDecoding {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                DecodingError.Context(codingPath: codingPath, debugDescription: "unkeyed container is at its end")
            )
        }
        defer { currentIndex += 1 }
        return RecordDecoding(value: elements[currentIndex], codingPath: codingPath)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = elements[currentIndex] else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(type).decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try next(type).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next([Any].self).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { try next(Any.self) }
}

struct RecordSingleDecoding: SingleValueDecodingContainer {
    let decoding: RecordDecoding
    var codingPath: [any CodingKey] { decoding.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoding.value { return true }
        return false
    }
    func decode(_ type: Bool.Type) throws -> Bool { try decoding.decode(type) }
    func decode(_ type: String.Type) throws -> String { try decoding.decode(type) }
    func decode(_ type: Double.Type) throws -> Double { try decoding.double() }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoding.double()) }
    func decode(_ type: Int.Type) throws -> Int { try narrow(decoding.integer(type)) }
    func decode(_ type: Int8.Type) throws -> Int8 { try narrow(decoding.integer(type)) }
    func decode(_ type: Int16.Type) throws -> Int16 { try narrow(decoding.integer(type)) }
    func decode(_ type: Int32.Type) throws -> Int32 { try narrow(decoding.integer(type)) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoding.integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try narrow(decoding.unsigned(type)) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try narrow(decoding.unsigned(type)) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try narrow(decoding.unsigned(type)) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try narrow(decoding.unsigned(type)) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoding.unsigned(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoding.decode(type) }

    private func narrow<Wide: BinaryInteger, Narrow: FixedWidthInteger>(_ value: Wide) throws -> Narrow {
        guard let narrowed = Narrow(exactly: value) else { throw decoding.mismatch(Narrow.self) }
        return narrowed
    }
}
