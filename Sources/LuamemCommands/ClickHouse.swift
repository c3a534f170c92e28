import Foundation
import LuamemMigrations

/// A ClickHouse server's HTTP interface, reached with plain HTTP/1.0 requests over a socket:
/// `clickhouse://HOST:PORT/DATABASE`, PORT being the HTTP port (8123 by default). No driver:
/// a statement goes in a POST body, or in the URL with the rows to insert in the body.
struct ClickHouse {
    let host: String
    let port: UInt16
    let database: String

    /// How long a request may wait for the server, connecting and reading.
    static let timeoutSeconds = 60

    /// Whether `text` names a ClickHouse server rather than a file.
    static func isURL(_ text: String) -> Bool { text.hasPrefix("clickhouse://") }

    init(url: String) throws {
        guard Self.isURL(url) else {
            throw CommandError("'\(url)' is not a clickhouse://HOST:PORT/DATABASE address")
        }
        let rest = url.dropFirst("clickhouse://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let database = slash < rest.endIndex ? String(rest[rest.index(after: slash)...]) : ""
        var host = String(authority), port: UInt16 = 8123
        if let colon = authority.lastIndex(of: ":") {
            guard let number = UInt16(authority[authority.index(after: colon)...]), number > 0
            else {
                throw CommandError("'\(url)': the port must be a number from 1 to 65535")
            }
            host = String(authority[..<colon])
            port = number
        }
        guard !host.isEmpty else { throw CommandError("'\(url)' names no host") }
        guard !database.isEmpty,
            database.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else {
            throw CommandError(
                "'\(url)': the database must be a name of letters, digits and _ (clickhouse://HOST:PORT/DATABASE)"
            )
        }
        self.host = host
        self.port = port
        self.database = database
    }

    var description: String { "clickhouse://\(host):\(port)/\(database)" }

    /// Creates the database and the tables (Migrations/clickhouse) when missing: the first file
    /// is idempotent; 0002 is applied when site_stats has no site_key yet.
    func createSchema() throws {
        for statement in Self.statements(1, database: database) { try execute(statement) }
        let hasKeys = try execute(
            """
            SELECT count() FROM system.columns
            WHERE database = \(Self.literal(database)) AND table = 'site_stats' AND name = 'site_key'
            FORMAT TabSeparated
            """
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        guard hasKeys == "0" else { return }
        for statement in Self.statements(2, database: database) {
            do {
                try execute(statement)
            } catch let error as CommandError
                where statement.hasPrefix("ALTER") && error.description.contains("already exists")
            {
                continue  // another ship added it first
            }
        }
    }

    /// A fleet store to read: refused with one line when the database holds none; a store made
    /// by the first schema gains its site keys (Migrations/clickhouse/0002) first.
    static func forReading(_ url: String) throws -> ClickHouse {
        let server = try ClickHouse(url: url)
        let tables = try server.execute(
            """
            SELECT name FROM system.tables WHERE database = \(literal(server.database))
            FORMAT TabSeparated
            """
        ).split(separator: "\n")
        guard ["runs", "snapshots", "site_stats"].allSatisfy({ tables.contains(Substring($0)) }) else {
            throw CommandError(
                "\(server.description) holds no luamem fleet store: `luamem ship --to` it first")
        }
        if !tables.contains("sites") { try server.createSchema() }
        return server
    }

    /// The statements of schema file `number`, for `database`.
    static func statements(_ number: Int32, database: String) -> [String] {
        guard let text = luamem_clickhouse_schema(number) else { return [] }
        // Comments run from -- to the end of the line (the schema has no -- in a string).
        return String(cString: text).replacingOccurrences(of: "{database}", with: database)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in line.range(of: "--").map { line[..<$0.lowerBound] } ?? line }
            .joined(separator: "\n").split(separator: ";")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Runs `sql`; with `rows`, `sql` is an INSERT … FORMAT TabSeparated and `rows` its data.
    /// Returns the response body.
    @discardableResult
    func execute(_ sql: String, rows: [UInt8]? = nil) throws -> String {
        let path: String, body: [UInt8]
        if let rows {
            path = "/?query=" + Self.percentEncoded(sql)
            body = rows
        } else {
            path = "/"
            body = Array(sql.utf8)
        }
        let head =
            "POST \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            + "Content-Length: \(body.count)\r\n\r\n"
        let response = try exchange(Array(head.utf8) + body)
        guard let split = Self.find([13, 10, 13, 10], in: response) else {
            throw CommandError("\(description): the server's answer was cut short")
        }
        let header = String(decoding: response[..<split], as: UTF8.self)
        var content = Array(response[(split + 4)...])
        if header.lowercased().contains("transfer-encoding: chunked") {
            content = Self.dechunked(content)
        }
        let status = header.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap {
            Int($0)
        }
        let text = String(decoding: content, as: UTF8.self)
        guard status == 200 else {
            let reason = text.split(separator: "\n").first.map(String.init) ?? header
            throw CommandError("\(description) refused a statement: \(reason)")
        }
        return text
    }

    /// Sends `request` and reads the whole answer (HTTP/1.0: the server closes when done).
    private func exchange(_ request: [UInt8]) throws -> [UInt8] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else {
            throw CommandError("\(description): cannot resolve \(host)")
        }
        defer { freeaddrinfo(found) }
        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let socket = Glibc.socket(
                address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
            guard socket >= 0 else { continue }
            defer { close(socket) }
            var timeout = timeval(tv_sec: Self.timeoutSeconds, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard connect(socket, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 else {
                lastError = String(cString: strerror(errno))
                continue
            }
            var sent = 0
            while sent < request.count {
                let count = request[sent...].withUnsafeBytes {
                    send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else {
                    throw CommandError("\(description): sending failed: \(String(cString: strerror(errno)))")
                }
                sent += count
            }
            var response: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else {
                    throw CommandError("\(description): no answer: \(String(cString: strerror(errno)))")
                }
                if count == 0 { break }
                response.append(contentsOf: buffer[..<count])
            }
            return response
        }
        throw CommandError("\(description): cannot connect: \(lastError)")
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    private static func dechunked(_ body: [UInt8]) -> [UInt8] {
        var result: [UInt8] = [], index = 0
        while let end = find([13, 10], in: Array(body[index...])).map({ $0 + index }) {
            let sizeText = String(decoding: body[index..<end], as: UTF8.self)
                .split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0,
                end + 2 + size <= body.count
            else { break }
            result.append(contentsOf: body[(end + 2)..<(end + 2 + size)])
            index = end + 2 + size + 2
            if index >= body.count { break }
        }
        return result
    }

    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "."), UInt8(ascii: "~"):
                result.append(Character(UnicodeScalar(byte)))
            default:
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    /// A value as a TabSeparated field: \ tab newline CR and NUL escaped.
    static func field(_ text: String) -> String {
        Listing.replacingScalars(text) {
            switch $0 {
            case "\\": "\\\\"
            case "\t": "\\t"
            case "\n": "\\n"
            case "\r": "\\r"
            case "\0": "\\0"
            default: nil
            }
        }
    }

    /// The fields of one TabSeparated line as text: `field`'s escapes undone, empty fields
    /// kept.
    static func fields(_ line: Substring) -> [String] {
        line.split(separator: "\t", omittingEmptySubsequences: false).map { field in
            guard field.contains("\\") else { return String(field) }
            var result = "", escaping = false
            for character in field {
                if escaping {
                    switch character {
                    case "t": result.append("\t")
                    case "n": result.append("\n")
                    case "r": result.append("\r")
                    case "0": result.append("\0")
                    default: result.append(character)
                    }
                    escaping = false
                } else if character == "\\" {
                    escaping = true
                } else {
                    result.append(character)
                }
            }
            return result
        }
    }

    /// A string literal for a statement: quotes and backslashes escaped.
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            + "'"
    }
}
