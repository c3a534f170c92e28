import Foundation
import Testing

/// What an operator installs: the archive and the .deb that scripts/package.sh writes, run
/// where the Swift toolchain (and the repository's build folders) cannot be seen: each
/// command runs in a mount namespace of its own with an empty tmpfs over those folders.
@Suite(.serialized) struct InstallTests {
    /// scripts/package.sh, run once for both tests (.ci/run runs it before the suite, so here
    /// it only finds everything built).
    static let packaged: Result<(archive: String, deb: String, version: String), PackageError> = {
        let root = Harness.repositoryRoot.path
        guard
            let output = try? Harness.run(
                "/bin/bash", [root + "/scripts/package.sh"], in: Harness.repositoryRoot),
            output.status == 0
        else { return .failure(PackageError(message: "scripts/package.sh failed")) }
        let lines = output.stdout.split(separator: "\n")
        func written(_ suffix: String) -> String? {
            lines.compactMap { line -> String? in
                guard line.hasPrefix("package.sh: dist/"), let end = line.range(of: " (") else {
                    return nil
                }
                let path = String(line[line.index(line.startIndex, offsetBy: 12)..<end.lowerBound])
                return path.hasSuffix(suffix) ? root + "/" + path : nil
            }.first
        }
        guard let archive = written(".tar.gz"), let deb = written(".deb"),
            let version = archive.split(separator: "/").last?.split(separator: "-").dropFirst()
                .first
        else { return .failure(PackageError(message: "package.sh named no archive: \(output.stdout)")) }
        return .success((archive, deb, String(version)))
    }()

    struct PackageError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The folders hidden from every command: the toolchain and the repository's builds.
    static let hidden: [String] = {
        let swift = (try? Harness.run("/bin/sh", ["-c", "readlink -f \"$(command -v swift)\""]))?
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let toolchain = URL(fileURLWithPath: swift).deletingLastPathComponent()
            .deletingLastPathComponent().path
        let root = Harness.repositoryRoot.path
        return [toolchain, root + "/.build", root + "/.build-dist"].filter {
            FileManager.default.fileExists(atPath: $0)
        }
    }()

    /// Runs a command line (sh -c) with the toolchain hidden.
    static func hiddenRun(_ command: String, in directory: URL, environment: [String: String] = [:])
        throws -> ProcessOutput
    {
        let mounts = hidden.map { "mount -t tmpfs tmpfs '\($0)'" }.joined(separator: " && ")
        let check = "! command -v swift >/dev/null"
        return try Harness.run(
            "/usr/bin/unshare", (getuid() == 0 ? ["-m"] : ["-r", "-m"])
                + ["/bin/sh", "-c", "\(mounts) && \(check) && \(command)"],
            in: directory, environment: environment)
    }

    private static func commit() throws -> String {
        try Harness.run("/usr/bin/git", ["rev-parse", "HEAD"], in: Harness.repositoryRoot).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theArchiveRunsWithTheToolchainHidden() throws {
        let (archive, _, version) = try Self.packaged.get()
        #expect(!Self.hidden.isEmpty)
        let directory = try Harness.temporaryDirectory()
        let unpacked = try Harness.run("/bin/tar", ["-xzf", archive, "-C", directory.path])
        try #require(unpacked.status == 0, "\(unpacked.stderr)")
        let prefix = directory.appendingPathComponent("luamem-\(version)").path
        for file in [
            "bin/luamem", "bin/luamem-run", "libexec/luamem/luamem-cli", "lib/libluamem-embed.so",
            "lib/lua/5.3/luamem.so",
            "include/luamem.h", "lib/pkgconfig/luamem.pc", "README.md", "LICENSE", "CHANGELOG.md",
            "share/bash-completion/completions/luamem",
        ] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/" + file), "\(file)")
        }

        // The version and the commit it was built from.
        let versionLine = try Self.hiddenRun("'\(prefix)/bin/luamem' --version", in: directory)
        #expect(versionLine.status == 0, "\(versionLine.stderr)")
        #expect(versionLine.stdout.hasPrefix("luamem \(version) (commit \(try Self.commit())"))

        // luamem run, then luamem query on what it wrote.
        let run = try Self.hiddenRun(
            "'\(prefix)/bin/luamem' run --db run.db '\(Harness.fixture("sites.lua"))'",
            in: directory)
        #expect(run.status == 0 && run.stderr.isEmpty, "\(run.stderr)")
        let query = try Self.hiddenRun(
            "'\(prefix)/bin/luamem' query --db run.db --format json --top 50", in: directory)
        #expect(query.status == 0, "\(query.stderr)")
        let rows = try Harness.jsonRows(query.stdout)
        #expect(
            rows.contains {
                ($0["source"] as? String)?.hasSuffix("sites.lua") == true
                    && $0["line"] as? Int == 5 && $0["live_bytes"] as? Int ?? 0 >= 300 * 56
            }, "\(rows)")

        // The module in a stock lua5.3, found through LUA_CPATH, both ways, and the signals it
        // catches and ignores are lua5.3's own.
        let cpath = ["LUA_CPATH": prefix + "/lib/lua/5.3/?.so", "LUAMEM_DB": "auto.db"]
        let auto = try Self.hiddenRun(
            "lua5.3 -l luamem.auto '\(Harness.fixture("sites.lua"))'"
                + " && lua5.3 -e 'local m = require \"luamem\" print(type(m.flush))'",
            in: directory, environment: cpath)
        #expect(auto.status == 0 && auto.stdout == "function\n", "\(auto.stdout) \(auto.stderr)")
        #expect(try Harness.integer(directory.appendingPathComponent("auto.db"), "SELECT count(*) FROM runs") == 1)
        let signals = try Self.hiddenRun(
            "lua5.3 '\(Harness.fixture("signal_mask.lua"))' && echo --"
                + " && lua5.3 -l luamem.auto '\(Harness.fixture("signal_mask.lua"))'",
            in: directory, environment: cpath)
        // Standard signals only: glibc keeps 32 and 33 for itself once a second thread starts.
        let masks = signals.stdout.components(separatedBy: "--\n").map { half in
            half.split(separator: "\n").map { line in
                (line.split(separator: "\t").last.flatMap { UInt64($0, radix: 16) } ?? .max)
                    & 0x7fff_ffff
            }
        }
        #expect(masks.count == 2 && masks[0].count == 2 && masks[0] == masks[1], "\(signals.stdout)")

        // The sample C host, compiled and linked through the archive's pkg-config file.
        let host = try Self.hiddenRun(
            "cc '\(Harness.repositoryRoot.path)/examples/host/host.c' -o host"
                + " $(pkg-config --cflags --libs luamem) -lpthread && ./host host.db"
                + " && '\(prefix)/bin/luamem' query --db host.db --state svc-3 --top 3",
            in: directory, environment: ["PKG_CONFIG_PATH": prefix + "/lib/pkgconfig"])
        #expect(host.status == 0, "\(host.stdout) \(host.stderr)")
        #expect(host.stdout.contains("svc-3"), "\(host.stdout)")
        #expect(
            try Harness.integer(
                directory.appendingPathComponent("host.db"),
                "SELECT count(*) FROM states WHERE closed_ms IS NOT NULL") == 4)
    }

    @Test func theDebInstallsUnderUsrAndRunsWithTheToolchainHidden() throws {
        let (_, deb, version) = try Self.packaged.get()
        // Every package it depends on is one Debian has (and this machine has it installed, so
        // `apt install ./luamem_*.deb` would pull nothing unknown).
        let depends = try Harness.run("/usr/bin/dpkg-deb", ["-f", deb, "Depends"]).stdout
        let packages = depends.split(separator: ",").map {
            String($0.split(separator: " ").first ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(packages.contains("liblua5.3-0") && packages.contains("libsqlite3-0"), "\(depends)")
        #expect(!packages.contains { $0.contains("swift") }, "\(depends)")
        for package in packages {
            let status = try Harness.run("/usr/bin/dpkg-query", ["-W", "-f=${Status}", package])
            #expect(status.stdout == "install ok installed", "\(package): \(status.stderr)")
        }

        // dpkg -i into a scratch root, with a dpkg database of its own.
        let root = try Harness.temporaryDirectory()
        let admin = root.appendingPathComponent("var/lib/dpkg")
        try FileManager.default.createDirectory(
            at: admin.appendingPathComponent("info"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: admin.appendingPathComponent("updates"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: admin.appendingPathComponent("status").path, contents: nil)
        let install = try Harness.run(
            "/usr/bin/dpkg",
            [
                "--instdir=\(root.path)", "--admindir=\(admin.path)", "--force-depends",
                "--force-not-root", "--force-script-chrootless", "-i", deb,
            ])
        try #require(install.status == 0, "\(install.stdout) \(install.stderr)")
        let usr = root.appendingPathComponent("usr").path
        let multiarch = try Harness.run("/usr/bin/dpkg-architecture", ["-qDEB_HOST_MULTIARCH"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for file in [
            "bin/luamem", "bin/luamem-run", "libexec/luamem/luamem-cli",
            "lib/\(multiarch)/libluamem-embed.so",
            "lib/\(multiarch)/lua/5.3/luamem.so", "lib/\(multiarch)/pkgconfig/luamem.pc",
            "include/luamem.h", "share/doc/luamem/copyright",
        ] {
            #expect(FileManager.default.fileExists(atPath: usr + "/" + file), "\(file)")
        }
        let work = try Harness.temporaryDirectory()
        let output = try Self.hiddenRun(
            "'\(usr)/bin/luamem' --version && '\(usr)/bin/luamem' run --db d.db"
                + " '\(Harness.fixture("tiny.lua"))' && '\(usr)/bin/luamem' runs --db d.db"
                + " && LUA_CPATH='\(usr)/lib/\(multiarch)/lua/5.3/?.so' LUAMEM_DB=d.db"
                + " lua5.3 -l luamem.auto -e 'x = {}'",
            in: work)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("luamem \(version) (commit \(try Self.commit())"), "\(output.stdout)")
        #expect(output.stdout.contains("exited 0"), "\(output.stdout)")
        #expect(try Harness.integer(work.appendingPathComponent("d.db"), "SELECT count(*) FROM runs") == 2)
    }
}
