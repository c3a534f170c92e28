import ArgumentParser
import Foundation
import LuamemStore

/// `luamem export`: the sites of a run's latest snapshot, for flame graphs and other tools.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's sites as folded stacks (flame graphs), JSON, CSV or a pprof profile.",
        discussion: """
            Folded stacks are one line per call stack, outermost frame first, frames as \
            file:line joined by ';', then a space and the weight: `main.lua:40;util.lua:12 4096`. \
            A C function the allocation happened in is the last frame. Feed them to \
            flamegraph.pl, inferno or speedscope. Stacks have as many frames as the run's \
            --depth. The figures are those of the latest snapshot of each state, added \
            together. pprof writes a gzipped profile (profile.proto) for go tool pprof, \
            Pyroscope and other pprof readers: sample types alloc_objects, alloc_space, \
            inuse_objects and inuse_space (the default; live bytes after GC, or at the snapshot \
            with --current), stacks leaf first, the object type and the state as labels.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case folded, json, csv, pprof
    }

    enum Weight: String, ExpressibleByArgument, CaseIterable {
        case live, alloc
    }

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions

    @Option(help: "Output format: folded, json, csv or pprof.")
    var format: Format = .folded

    @Option(name: [.short, .customLong("output")], help: "Write to this file; - is standard output.")
    var output = "-"

    @Flag(help: "pprof: in-use figures at the snapshot (garbage included), not after GC.")
    var current = false

    @Option(help: "Weight of a stack: live bytes, or bytes allocated since tracking began.")
    var weight: Weight = .live

    /// What is exported: one entry per (state, site, type), the frames its stacks name, and
    /// for pprof the time, length, sampling interval and comments.
    struct Contents {
        var entries: [PprofProfile.Entry] = []
        var frames: [Int64: FrameInfo] = [:]
        var timeMs: Int64 = 0
        var durationMs: Int64 = 0
        var period: Int64 = 0
        var comments: [String] = []
    }

    func run() throws {
        if format == .pprof && output == "-" && isatty(STDOUT_FILENO) == 1 {
            throw CommandError("a pprof profile is binary: give -o FILE (or redirect the output)")
        }
        let contents =
            ClickHouse.isURL(database.path)
            ? try fleetContents(ClickHouse.forReading(database.path)) : try fileContents()
        let target = output == "-" ? nil : try ReportCommand.writableFile(output)
        let entries = contents.entries, frames = contents.frames
        func folded(_ info: SiteInfo) -> String { Self.stack(info, frames).joined(separator: ";") }
        let data: Data
        switch format {
        case .pprof:
            let profile = PprofProfile(
                entries: entries, frames: frames, afterGC: !current, period: contents.period,
                timeMs: contents.timeMs, durationMs: contents.durationMs,
                comments: contents.comments)
            data = try profile.data()
        case .folded:
            var weights: [String: Int64] = [:]
            for entry in entries {
                let stack = folded(entry.info)
                weights[stack] = (weights[stack] ?? 0).saturatingAdd(
                    weight == .live ? entry.figures.liveBytes : entry.figures.allocBytes)
            }
            var text = ""
            for (stack, value) in weights.sorted(by: { $0.key < $1.key }) where value > 0 {
                text += "\(stack) \(value)\n"
            }
            data = Data(text.utf8)
        case .json, .csv:
            var listing = Listing(
                columns: [
                    "stack", "source", "line", "function", "c_function", "type", "live_bytes",
                    "live_count", "gc_live_bytes", "alloc_bytes", "alloc_count",
                ].map { Listing.Column(key: $0, title: $0, rightAligned: false) })
            // Largest first; ties in a fixed order (the order a file's rows are read in depends
            // on whether they came from a rollup).
            let ordered = entries.map { ($0, folded($0.info)) }.sorted {
                if $0.0.figures.liveBytes != $1.0.figures.liveBytes {
                    return $0.0.figures.liveBytes > $1.0.figures.liveBytes
                }
                return ($0.1, $0.0.type, $0.0.state) < ($1.1, $1.0.type, $1.0.state)
            }.map(\.0)
            for entry in ordered {
                let info = entry.info, figures = entry.figures
                listing.rows.append([
                    .text(folded(info)), .text(info.file), .integer(info.line),
                    .text(info.function), .text(info.cfunction.isEmpty ? nil : info.cfunction),
                    .text(entry.type), .integer(figures.liveBytes), .integer(figures.liveCount),
                    .integer(figures.gcLiveBytes), .integer(figures.allocBytes),
                    .integer(figures.allocCount),
                ])
            }
            data = Data(listing.render(format == .json ? .json : .csv).utf8)
        }
        if let target {
            do { try data.write(to: URL(fileURLWithPath: target), options: .atomic) } catch {
                throw CommandError("cannot write \(output): \(error.localizedDescription)")
            }
        } else {
            FileHandle.standardOutput.write(data)
        }
    }

    /// A file's run: the latest snapshot of each selected state.
    private func fileContents() throws -> Contents {
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let heads = try store.headSnapshots(runID: run.id, untilMs: nil).filter {
            selected($0.stateID)
        }
        let typeNames = try store.objectTypeNames()
        var contents = Contents(frames: try store.frames())
        for head in heads {
            let state = try store.stateName(id: head.stateID)
            for (info, entry) in try store.namedFigures(at: head) {
                contents.entries.append(
                    .init(state: state, info: info, type: typeNames[entry.type] ?? "?",
                        figures: entry.figures))
            }
        }
        contents.timeMs = heads.map { $0.timeMs }.max() ?? run.startedMs
        contents.durationMs = contents.timeMs - run.startedMs
        contents.period = Self.sampleInterval(try store.runFacts(id: run.id).options)
        contents.comments = [
            "luamem \(try selection.describe(run, in: store))",
            "latest snapshot of each state; inuse is live bytes "
                + (current ? "at the snapshot" : "after GC"),
        ]
        return contents
    }

    /// The run's sampling interval in bytes (`"sample"` in its options), 0 when none.
    static func sampleInterval(_ options: String) -> Int64 {
        guard let data = options.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let sample = object["sample"] as? NSNumber
        else { return 0 }
        return max(0, sample.int64Value)
    }

    /// A site's frames, outermost first, each "file:line", then its C function if any;
    /// semicolons and spaces, which folded stacks use as separators, are replaced.
    static func stack(_ info: SiteInfo, _ frames: [Int64: FrameInfo]) -> [String] {
        var parts = info.frameIDs.reversed().map { id in
            frames[id].map { SiteKey.isLineless($0.file) ? $0.file : "\($0.file):\($0.line)" } ?? "?"
        }
        if !info.cfunction.isEmpty { parts.append(info.cfunction) }
        // One line per stack, frames split by ";", the weight after the last space.
        return parts.map { folded(Listing.printable($0)) }
    }

    /// `name` with ";" as ":" and " " as "_", in one pass; most names have neither and come back
    /// as they are (Foundation's replacingOccurrences, twice over every frame, was a sixth of a
    /// large report's time).
    static func folded(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 == 0x3B || $0 == 0x20 }) else { return name }
        return Listing.replacingScalars(name) {
            switch $0 {
            case ";": ":"
            case " ": "_"
            default: nil
            }
        }
    }
}
